"""``manifest.json``: the SHA-256 of every file of an export, and checking a folder against it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from nas_mnist.exporting.layout import (
    ExportError,
)

if TYPE_CHECKING:
    pass


MANIFEST_NAME = "manifest.json"


_HASH_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Relative POSIX paths of every file under ``folder`` except the manifest, sorted."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if not p.is_dir() and p.relative_to(folder).as_posix() != MANIFEST_NAME
    )


def write_manifest(folder: Path) -> dict[str, str]:
    """Write ``manifest.json``: {relative POSIX path: SHA-256 hex digest} of every other file.

    Returns:
        The manifest written.
    """
    manifest = {name: sha256_file(folder / name) for name in _files(folder)}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Re-check an export folder against its ``manifest.json``.

    Args:
        folder: an export folder.

    Returns:
        One line per problem, empty if every file matches: ``"changed: PATH (...)"`` for a file
        whose SHA-256 differs, ``"missing: PATH"`` for a listed file that is gone, ``"extra:
        PATH"`` for a file the manifest does not list, ``"unreadable: PATH (...)"`` for a file
        that cannot be read, or a line saying the manifest itself is missing or unreadable.

    Raises:
        ExportError: ``folder`` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder; pass the folder that 'nas-mnist export' wrote")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"missing: {MANIFEST_NAME} (not an export folder, or the manifest was deleted)"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"changed: {MANIFEST_NAME} is not readable JSON ({exc})"]
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        return [f"changed: {MANIFEST_NAME} is not a {{path: sha256}} object"]
    problems = []
    resolved_root = root.resolve()
    for name, expected in sorted(manifest.items()):
        target = root / name
        try:
            if Path(name).is_absolute() or not target.resolve().is_relative_to(resolved_root):
                problems.append(f"changed: {MANIFEST_NAME} lists {name!r}, outside the folder")
            elif not target.is_file():
                problems.append(f"missing: {name}")
            else:
                found = sha256_file(target)
                if found != expected:
                    problems.append(f"changed: {name} (sha256 {found}, manifest says {expected})")
        except (OSError, RuntimeError) as exc:  # no permission, a symlink loop (RuntimeError)
            problems.append(f"unreadable: {name} ({exc})")
    problems.extend(f"extra: {name}" for name in _files(root) if name not in manifest)
    return problems
