"""Checks of single search settings, made before anything exists: one function per value.

Every check raises an error whose message names the flag (the Python API's argument has the same
name without the dashes) and says what to pass instead; the CLI prints it on one line and exits
with status 2. Nothing here creates a file, a database or a run. Which checks a search runs, and
when, is decided in one place: ``settings`` (``SearchSettings`` and
``validate_search_settings``), which both ``nas-mnist search`` and ``nas_mnist.search`` use.

Search-space values are checked when the space is loaded (``search_space.space``); data files
when they are read (``data``).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from nas_mnist.errors import InputError

MAX_SEED = 2**31 - 1
"""Largest ``--seed``. Trial ``n`` trains with seed ``seed + n``, and a resumed study's sampler
gets ``seed + number of trials``; NumPy's seeds end at 2**32 - 1 (``np.random.seed``), so the flag
keeps 2**31 numbers of headroom for trials."""

MAX_STUDY_NAME_LENGTH = 128
"""Longest ``--study-name``: it also names the MLflow experiment and parent run, KerasTuner's
project folder and report titles (Optuna's own limit is 512 characters, MLflow's run names
250)."""


class SettingsError(InputError):
    """A search setting that cannot work; the message names the flag and says what to pass."""


def validate_seed(seed: int) -> int:
    """``--seed``: an integer from 0 to ``MAX_SEED``.

    Raises:
        SettingsError: out of range (NumPy would fail on the first trial past 2**32 - 1).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SettingsError(
            f"--seed {seed}: expected an integer from 0 to {MAX_SEED} (trial n trains with seed "
            "+ n, and NumPy's seeds end at 2**32 - 1)"
        )
    return seed


def validate_study_name(name: str) -> str:
    """``--study-name``: 1 to ``MAX_STUDY_NAME_LENGTH`` printable characters, not only spaces,
    without ``/`` (KerasTuner and the report make folders and files named after it).

    Raises:
        SettingsError: empty, too long, or holding a control character or ``/``.
    """
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"--study-name {name!r}: the name is empty; pass a name such as "
                            "nas-mnist")
    if len(name) > MAX_STUDY_NAME_LENGTH:
        raise SettingsError(f"--study-name: {len(name)} characters; use at most "
                            f"{MAX_STUDY_NAME_LENGTH}")
    bad = sorted({c for c in name if c == "/" or unicodedata.category(c).startswith("C")})
    if bad:
        raise SettingsError(f"--study-name {name!r}: contains {', '.join(map(repr, bad))}; use "
                            "letters, digits, '-', '_' or '.'")
    return name


def validate_tuner_dir(path: str | os.PathLike[str]) -> Path:
    """``--tuner-dir`` (KerasTuner's state): a folder, or a path where one can be made.

    Raises:
        SettingsError: the path, or the nearest existing part of it, is a file, or that part is
            not writable.
    """
    folder = Path(path).expanduser().absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SettingsError(f"--tuner-dir {path}: {existing} is a file, not a folder; pass a "
                            "folder (it is created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError(f"--tuner-dir {path}: {existing} is not writable")
    return folder
