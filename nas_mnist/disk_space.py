"""Free disk space: a search stops cleanly under a floor instead of filling the disk.

A full disk in the middle of a write tears it: a journal storage gets a half record, a SQLite
store a refused transaction ("database or disk is full"), a model half its files. So a search
checks the free space of every local place it writes to (the storage's folder, the MLflow store's
folder, the artifact folder) before each trial and before logging a trial's model, and stops
with ``DiskSpaceError`` when one of them has less than the floor (``check_free_space``): the
trial is failed with reason ``disk_full``, queued for one retry, and the search exits 1 with one
line. ``is_disk_full`` recognises the errors of a write that hit a full disk anyway, so that
they take the same path.

The floor, ``DEFAULT_MIN_FREE_MB`` (200 MiB), or ``NAS_MNIST_MIN_FREE_MB``: one trial writes its
MLflow model (a Keras file of 4 bytes per parameter: under 1 MiB for the small baselines, about
30 MiB for a 7-million-parameter spec), its learning curves and summary (under 1 MiB), and a few
hundred rows of metrics to the stores; ``--jobs N`` workers log N models at once, and SQLite needs
room for its rollback journal while it commits. 200 MiB covers several of the largest models and
the clean-up writes after the stop (closing runs, re-queueing the trial).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from nas_mnist.errors import DiskSpaceError, InputError

MIN_FREE_ENV_VAR = "NAS_MNIST_MIN_FREE_MB"
"""Environment variable overriding the free-space floor, in MiB (2**20 bytes); 0 turns the
check off."""

DEFAULT_MIN_FREE_MB = 200.0
"""The free-space floor in MiB when ``NAS_MNIST_MIN_FREE_MB`` is not set (see the module doc)."""

MIB = 2**20

_FILE_URL_PREFIXES = ("sqlite:///", "journal:///")
"""URLs of a storage in one file: the folder that holds the file is checked."""

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")
"""What a full disk says through SQLite, TensorFlow's and MLflow's wrappers (lower case)."""


def min_free_mb() -> float:
    """The free-space floor in MiB: ``NAS_MNIST_MIN_FREE_MB``, else ``DEFAULT_MIN_FREE_MB``.

    Raises:
        InputError: the variable is not a number >= 0.
    """
    value = os.environ.get(MIN_FREE_ENV_VAR, "").strip()
    if not value:
        return DEFAULT_MIN_FREE_MB
    try:
        floor = float(value)
    except ValueError:
        floor = -1.0
    if not floor >= 0 or floor == float("inf"):
        raise InputError(f"{MIN_FREE_ENV_VAR}={value[:40]!r}: expected a number of MiB >= 0 "
                         "(the free disk space a search keeps; 0 turns the check off)")
    return floor


def local_folder(location: str | os.PathLike[str]) -> Path | None:
    """The existing local folder that holds ``location``, or None for a place on a server.

    Args:
        location: a storage or tracking URL (``sqlite:///FILE``, ``journal:///FILE``: the
            file's folder), a ``file:`` URL or a plain path of a folder (an MLflow artifact
            location); server URLs (``postgresql://``, ``http://``, ``s3://``,
            ``mlflow-artifacts:``) give None.

    Returns:
        The folder, or its nearest existing parent when it does not exist yet (that is where
        it will be created, on the same file system).
    """
    text = os.fspath(location)
    for prefix in _FILE_URL_PREFIXES:
        if text.startswith(prefix):
            file = text[len(prefix):].split("?", 1)[0]
            return _existing(Path(file).expanduser().absolute().parent) if file else None
    if text.startswith("file:"):
        return _existing(Path(unquote(urlparse(text).path)))
    scheme = text.split(":", 1)[0] if ":" in text else ""
    if len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum():
        return None  # a server, or a scheme that is no local file
    return _existing(Path(text).expanduser().absolute())


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_free_space(locations: Iterable[str | os.PathLike[str] | None],
                     floor_mb: float | None = None) -> None:
    """Raise ``DiskSpaceError`` if a local folder of ``locations`` has less free space than the
    floor (``shutil.disk_usage``: the space an unprivileged process may use).

    Args:
        locations: storage or tracking URLs, artifact locations or paths (``local_folder``);
            None and server URLs are skipped.
        floor_mb: the floor in MiB; None: ``min_free_mb()``. 0 checks nothing.

    Raises:
        DiskSpaceError: the message names the folder, its free MiB and the floor.
        InputError: ``NAS_MNIST_MIN_FREE_MB`` is not a number >= 0.
    """
    floor = min_free_mb() if floor_mb is None else floor_mb
    if floor <= 0:
        return
    seen: set[Path] = set()
    for location in locations:
        folder = None if location is None else local_folder(location)
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        try:
            free = shutil.disk_usage(folder).free / MIB
        except OSError:  # cannot tell: the write itself will say
            continue
        if free < floor:
            raise DiskSpaceError(f"only {free:,.0f} MiB free on the disk of {folder}, under the "
                                 f"{floor:,.0f} MiB floor ({MIN_FREE_ENV_VAR})")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk (or quota) is full:
    an ``OSError`` with ``ENOSPC``/``EDQUOT``, SQLite's "database or disk is full", or that text
    in a library's wrapper (MLflow's ``MlflowException``, TensorFlow's errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskSpaceError):
            return True
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(current).lower()
        if any(words in text for words in _DISK_FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(exc: BaseException) -> DiskSpaceError:
    """A ``DiskSpaceError`` for a write that failed on a full disk (``is_disk_full``), with the
    first line of what the failed write said."""
    if isinstance(exc, DiskSpaceError):
        return exc
    said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return DiskSpaceError(f"a write failed because the disk is full ({type(exc).__name__}: "
                          f"{said})")
