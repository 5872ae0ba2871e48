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
    parser = commands[argv[position]]
    path, rest = _take_config(argv[position + 1:], _long_options(parser))
    if path is None:
        return argv
    tokens = _as_flags(_read(path), parser, path)
    return [*argv[:position + 1], *tokens, *rest]


def _subcommands(root: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings
            if option.startswith("--")}


def _is_config(name: str, options: Sequence[str]) -> bool:
    """Whether argparse reads the option ``name`` as ``--config``: the flag itself or, as
    argparse allows, a prefix that no other long flag starts with (``--conf``)."""
    if name == CONFIG_FLAG:
        return True
    return len(name) > 2 and [o for o in options if o.startswith(name)] == [CONFIG_FLAG]


def _take_config(tokens: list[str], options: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the ``--config`` value, the tokens without it); up to ``--``, where argparse stops
    reading flags."""
    found: list[tuple[int, int, str]] = []  # (first token, tokens taken, value)
    for i, token in enumerate(tokens):
        if token == "--":
            break
        name, equals, value = token.partition("=")
        if not name.startswith("--") or not _is_config(name, options):
            continue
        if equals:
            found.append((i, 1, value))
        elif i + 1 < len(tokens):
            found.append((i, 2, tokens[i + 1]))
        else:
            raise InputError(f"{CONFIG_FLAG} needs a FILE")
    if not found:
        return None, tokens
    if len(found) > 1:
        raise InputError(f"{CONFIG_FLAG} given twice: give one file (flags on the command line "
                         "override it)")
    i, taken, value = found[0]
    return value, tokens[:i] + tokens[i + taken:]


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
    actions = _long_options(parser)
    tokens: list[str] = []
    for key, value in content.items():
        flag = "--" + str(key).replace("_", "-")
        where = f"{CONFIG_FLAG} {os.fspath(path)}: {key!r}"
        if flag not in actions or flag == CONFIG_FLAG:
            close = difflib.get_close_matches(flag, [f for f in actions if f != CONFIG_FLAG], 1)
            hint = f" (did you mean {close[0][2:]}?)" if close else ""
            raise InputError(f"{where} is not a flag of this command{hint}")
        if actions[flag].nargs == 0 and not isinstance(value, bool):
            raise InputError(f"{where} is a flag without a value: write true or false, not "
                             f"{value!r}")
        if value is None:
            raise InputError(f"{where} has no value: give it one or remove the key")
        if isinstance(value, dict) or (isinstance(value, list)
                                       and any(isinstance(v, dict | list) for v in value)):
            raise InputError(f"{where} takes a value or a list, not a mapping or nested list")
        tokens.extend(_tokens(flag, value, actions[flag]))
    return tokens


def _tokens(flag: str, value: Any, action: argparse.Action) -> list[str]:
    """``flag`` and its value as tokens (see the module doc for booleans and lists); one value
    as ``--flag=value``, so that a value starting with ``-`` is not read as a flag."""
    if action.nargs == 0:  # store_true / store_false / count: true means "given"
        return [flag] if value is True else []
    if isinstance(value, list):
        if action.nargs in ("+", "*") or isinstance(action.nargs, int):
            return [flag, *map(_text, value)]
        value = ",".join(map(_text, value))
    return [f"{flag}={_text(value)}"]


def _text(value: Any) -> str:
    """A YAML/TOML scalar as the command line writes it (``true``, not ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
