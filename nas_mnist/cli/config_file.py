"""``--config FILE`` for ``search``, ``retrain`` and ``export``: a command's flags kept in a YAML or
TOML file, as KerasTuner, Ray Tune and Hydra users keep a search's settings.

The file's keys are the command's long flags, with ``-`` or ``_`` (``max-train-samples: 10000``,
``max_train_samples = 10000``); a flag without a value is ``true`` (``no-progress: true``), and
``false`` leaves it out; a list is one value per item for a flag that takes several, else joined
with commas (``baselines: [s002_m1, s002_m9]``). The file becomes flags placed right after the
command, before the command line's own: argparse then checks every value as usual, and a flag
given on the command line wins over the file.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomllib

from nas_mnist.errors import InputError

CONFIG_COMMANDS = ("search", "retrain", "export")
"""The commands that take ``--config``."""
CONFIG_FLAG = "--config"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` (read by ``expand_config`` before argparse sees the command line)."""
    parser.add_argument(
        CONFIG_FLAG, metavar="FILE",
        help="YAML (.yaml, .yml) or TOML (.toml) file of this command's flags, keys named as the "
        "flags (max-train-samples or max_train_samples); flags on the command line win")


def expand_config(argv: Sequence[str], root: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the flags of its ``--config FILE`` inserted right after the command.

    Args:
        argv: the command line without the program name.
        root: the ``nas-mnist`` parser (its subcommands know their flags).

    Returns:
        ``argv`` unchanged when it names no config file or no command that takes one.

    Raises:
        InputError: the file is missing, unreadable, not YAML/TOML, not a mapping, or has a key
            that is not a flag of the command (the closest flag is suggested); one line.
    """
    argv = list(argv)
    commands = _subcommands(root)
    position = next((i for i, token in enumerate(argv) if token in commands), None)
    if position is None or argv[position] not in CONFIG_COMMANDS:
        return argv
    path, rest = _take_config(argv[position + 1:])
    if path is None:
        return argv
    tokens = _as_flags(_read(path), commands[argv[position]], path)
    return [*argv[:position + 1], *tokens, *rest]


def _subcommands(root: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _take_config(tokens: list[str]) -> tuple[str | None, list[str]]:
    """(the ``--config`` value, the tokens without it)."""
    for i, token in enumerate(tokens):
        if token == CONFIG_FLAG:
            if i + 1 >= len(tokens):
                raise InputError(f"{CONFIG_FLAG} needs a FILE")
            return tokens[i + 1], tokens[:i] + tokens[i + 2:]
        if token.startswith(CONFIG_FLAG + "="):
            return token.split("=", 1)[1], tokens[:i] + tokens[i + 1:]
    return None, tokens


def _read(path: str) -> dict[str, Any]:
    """The file's mapping (YAML by PyYAML's safe loader, TOML by the standard library)."""
    import yaml

    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise InputError(f"{CONFIG_FLAG} {path}: name a .yaml, .yml or .toml file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{CONFIG_FLAG} {path}: cannot read it ({reason})") from None
    try:
        content = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{CONFIG_FLAG} {path}: not valid {suffix[1:].upper()}: "
                         f"{first}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise InputError(f"{CONFIG_FLAG} {path}: expected a mapping of flags to values, got a "
                         f"{type(content).__name__}")
    return content


def _as_flags(content: dict[str, Any], parser: argparse.ArgumentParser, path: str) -> list[str]:
    """The command-line tokens that ``content`` stands for."""
    actions = {option: action for action in parser._actions for option in action.option_strings
               if option.startswith("--")}
    tokens: list[str] = []
    for key, value in content.items():
        flag = "--" + str(key).replace("_", "-")
        if flag not in actions or flag == CONFIG_FLAG:
            close = difflib.get_close_matches(flag, [f for f in actions if f != CONFIG_FLAG], 1)
            hint = f" (did you mean {close[0][2:]}?)" if close else ""
            raise InputError(f"{CONFIG_FLAG} {os.fspath(path)}: {key!r} is not a flag of this "
                             f"command{hint}")
        if actions[flag].nargs == 0 and not isinstance(value, bool):
            raise InputError(f"{CONFIG_FLAG} {os.fspath(path)}: {key!r} is a flag without a "
                             f"value: write true or false, not {value!r}")
        tokens.extend(_tokens(flag, value, actions[flag]))
    return tokens


def _tokens(flag: str, value: Any, action: argparse.Action) -> list[str]:
    """``flag`` and its value as tokens (see the module doc for booleans and lists)."""
    if action.nargs == 0:  # store_true / store_false / count: true means "given"
        return [flag] if value is True else []
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, list):
        if action.nargs in ("+", "*") or isinstance(action.nargs, int):
            return [flag, *map(str, value)]
        return [flag, ",".join(map(str, value))]
    return [flag, str(value)]
