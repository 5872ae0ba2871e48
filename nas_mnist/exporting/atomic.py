"""Export folders: checks before writing; hidden partial folders renamed into place
(``nas_mnist.atomic_folders``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nas_mnist.exporting.layout import (
    SAVED_MODEL_NAME,
    ExportError,
)
from nas_mnist.exporting.manifest import MANIFEST_NAME

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
