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


MAX_SPACE_FILE_BYTES = 1_000_000
"""The largest search-space file read (bytes); the shipped ones are a few kB."""
MAX_PARSE_ERROR = 300
"""Characters of a parser's complaint quoted in an error (it can quote a whole long line)."""


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors (``&name``) and aliases (``*name``) as it meets
    them, before any node is composed: nested aliases expand exponentially (an "alias bomb"
    of 9 levels of 9 aliases is 387 million values), and a space file needs neither."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose the next node, unless it is an alias or carries an anchor.

        Raises:
            yaml.composer.ComposerError: an anchor or an alias, with its line and column.
        """
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not allowed in a "
                "search-space file; write the values out", event.start_mark)
        return super().compose_node(parent, index)


def read_space_file(path: Path) -> Any:
    """The parsed content of a .yaml/.yml, .json or .toml file (unchecked).

    Raises:
        SearchSpaceError: an unknown suffix, a file over ``MAX_SPACE_FILE_BYTES``, YAML anchors
            or aliases, or the file cannot be parsed (nesting too deep included); the message
            names the file and quotes at most ``MAX_PARSE_ERROR`` characters of the parser's
            complaint.
        OSError: the file cannot be read.
    """
    try:
        return _parse_file(path)
    except (
        yaml.YAMLError,
        json.JSONDecodeError,
        tomllib.TOMLDecodeError,
        UnicodeDecodeError,
        RecursionError,  # lists nested thousands deep
    ) as exc:
        complaint = " ".join(str(exc).split())
        if len(complaint) > MAX_PARSE_ERROR:
            complaint = complaint[: MAX_PARSE_ERROR - 3] + "..."
        raise SearchSpaceError(f"{path}: cannot parse the search-space file: {complaint}") \
            from None


def _parse_file(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_SPACE_FILE_BYTES:
        raise SearchSpaceError(f"{path}: {size} bytes; a search-space file has at most "
                               f"{MAX_SPACE_FILE_BYTES}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    raise SearchSpaceError(
        f"{path}: unknown search-space format {suffix!r}; use .yaml, .json or .toml"
    )
