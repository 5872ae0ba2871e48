"""Folders written aside and renamed into place: a hidden partial folder next to the target,
left-overs of dead writers removed, the old folder swapped out only once the new one is complete.
Exports and reports use it."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from pathlib import Path

from nas_mnist.environment import pid_alive

logger = logging.getLogger(__name__)


def partial_prefix(path: Path) -> str:
    """Name prefix of the hidden folder an export to ``path`` is written into."""
    return f".{path.name}.partial-"


def replaced_prefix(path: Path) -> str:
    """Name prefix of an earlier export moved aside while ``--force`` replaces it."""
    return f".{path.name}.replaced-"


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove leftovers of killed exports to ``path``: ``.NAME.partial-<pid>-*`` folders.

    Only folders whose process ``<pid>`` no longer runs are removed, so a concurrent export to the
    same folder is left alone. ``.NAME.replaced-<pid>-*`` (the previous export, moved aside
    during ``--force``) is removed only once ``path`` exists again.

    Returns:
        The folders removed.
    """
    removed = []
    for prefix in (partial_prefix(path), replaced_prefix(path)):
        if prefix == replaced_prefix(path) and not path.is_dir():
            continue
        pattern = re.compile(re.escape(prefix) + r"(\d+)-")
        for candidate in path.parent.glob(prefix + "*"):
            match = pattern.match(candidate.name)
            if match is None or not candidate.is_dir() or pid_alive(int(match.group(1))):
                continue
            shutil.rmtree(candidate, ignore_errors=True)
            logger.info("removed %s, left by an export that was killed", candidate)
            removed.append(candidate)
    return removed


def current_umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def move_into_place(partial: Path, path: Path) -> None:
    """Rename ``partial`` to ``path``; an existing ``path`` (``--force``) is moved aside first."""
    if not (path.exists() or path.is_symlink()):
        os.rename(partial, path)
        return
    aside = path.parent / f"{replaced_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(path, aside)
    try:
        os.rename(partial, path)
    except BaseException:
        os.rename(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)
