"""Initializers in a space file: their text form (``"he_normal"``, ``"constant(value=0.1)"``)."""

from __future__ import annotations

import math
import re
from typing import Any

from nas_mnist.architecture.spec import Initializer, SpecError

_INITIALIZER_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def parse_initializer(text: str | Initializer) -> Initializer:
    """An initializer from its text form, as ``str(Initializer)`` writes it.

    Examples: ``"he_normal"``, ``"truncated_normal(mean=0, stddev=0.01)"``,
    ``"constant(value=0.1)"``.

    Raises:
        SpecError: not of the form ``name`` or ``name(argument=number, ...)``.
    """
    if isinstance(text, Initializer):
        return text
    match = _INITIALIZER_PATTERN.match(str(text))
    if not match:
        raise SpecError(f"initializer {text!r} is not 'name' or 'name(argument=number, ...)'")
    name, body = match.group(1), match.group(2)
    arguments = []
    for part in filter(None, (p.strip() for p in (body or "").split(","))):
        key, sep, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key.strip().isidentifier() or not math.isfinite(number):
            raise SpecError(
                f"initializer {text!r}: argument {part!r} is not 'name=number'"
            )
        arguments.append((key.strip(), number))
    return Initializer(name, tuple(arguments))


def initializer_choice(leaf: Any, wanted: Initializer) -> Any:
    """The leaf's choice that parses to the initializer ``wanted`` (else its plain name).

    The reverse of ``parse_initializer`` for reading params off a spec: the param value is the
    text as the space file writes it (``"truncated_normal(mean=0, stddev=0.01)"``).
    """
    for value in leaf if isinstance(leaf, list) else [leaf]:
        try:
            if parse_initializer(value) == wanted:
                return value
        except SpecError:
            continue
    return str(wanted)
