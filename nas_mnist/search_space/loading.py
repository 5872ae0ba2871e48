"""Finding and parsing space files: the shipped spaces, ``--space`` resolution, and the YAML, JSON
and TOML formats. Checking the parsed content is ``checks.py``'s job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomllib
import yaml

from nas_mnist.search_space.checks import SearchSpaceError

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
"""The search spaces shipped with the package (``search_spaces/`` in a checkout links here)."""
DEFAULT_SPACE_PATH = SPACES_DIR / "default.yaml"
"""The shipped ``default`` space (the blocks layout)."""


def shipped_spaces() -> tuple[str, ...]:
    """Names of the search spaces shipped with the package (``default``, ``small_cnn``, ...)."""
    return tuple(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))


def resolve_space_path(path: str | Path | None) -> Path:
    """The file behind ``--space``: a path, else the name of a shipped space, else the default.

    Raises:
        SearchSpaceError: neither an existing file nor a shipped space's name.
    """
    if path is None:
        return DEFAULT_SPACE_PATH
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    if str(path) in shipped_spaces():
        return SPACES_DIR / f"{path}.yaml"
    raise SearchSpaceError(
        f"{path}: search-space file not found; pass --space FILE or the name of a shipped "
        f"space ({', '.join(shipped_spaces())}; see search_spaces/default.yaml for the format)"
    )


def read_space_file(path: Path) -> Any:
    """The parsed content of a .yaml/.yml, .json or .toml file (unchecked).

    Raises:
        SearchSpaceError: an unknown suffix, or the file cannot be parsed; the message names
            the file.
        OSError: the file cannot be read.
    """
    try:
        return _parse_file(path)
    except (
        yaml.YAMLError,
        json.JSONDecodeError,
        tomllib.TOMLDecodeError,
        UnicodeDecodeError,
    ) as exc:
        raise SearchSpaceError(f"{path}: cannot parse the search-space file: {exc}") from None


def _parse_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    raise SearchSpaceError(
        f"{path}: unknown search-space format {suffix!r}; use .yaml, .json or .toml"
    )
