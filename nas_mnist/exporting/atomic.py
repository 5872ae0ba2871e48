"""Atomic export folders: checks before writing, hidden partial folders, rename into place."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from nas_mnist.environment import pid_alive
from nas_mnist.exporting.layout import (
    SAVED_MODEL_NAME,
    ExportError,
)
from nas_mnist.exporting.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

def check_out_dir(out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Check that an export can be written to ``out_dir``, without writing anything.

    Args:
        out_dir: the export folder to create.
        force: allow replacing an existing folder, if it is empty or a previous export (holds
            ``manifest.json`` or ``saved_model.pb``); anything else is never replaced.

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        ExportError: ``out_dir`` exists (without ``force``, or is not a previous export), its
            parent folder does not exist or is not a folder, or the parent is not writable.
    """
    path = Path(out_dir).expanduser().absolute()
    if path.name in ("", ".", ".."):
        raise ExportError(f"--out {os.fspath(out_dir)!r} names no new folder; pass e.g. --out best")
    if path.exists() or path.is_symlink():
        if not force:
            raise ExportError(
                f"{path} already exists; pass --force to replace it, or choose another --out"
            )
        if path.is_symlink() or not path.is_dir():
            raise ExportError(f"{path} exists and is not a folder; refusing to replace it")
        if any(path.iterdir()) and not (
            (path / MANIFEST_NAME).is_file() or (path / SAVED_MODEL_NAME).is_file()
        ):
            raise ExportError(
                f"refusing to replace {path}: it is not empty and is not a nas-mnist export "
                f"(no {MANIFEST_NAME}); choose another --out"
            )
    parent = path.parent
    if not parent.exists():
        raise ExportError(f"the parent folder {parent} of --out does not exist; create it first")
    if not parent.is_dir():
        raise ExportError(f"{parent} is not a folder, so --out {path} cannot be created in it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(
            f"cannot write to {parent} (permission denied); choose --out in a writable folder"
        )
    return path


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
