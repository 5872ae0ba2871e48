"""The leaves of a space file and sampling one of them through a trial.

A leaf is a fixed scalar (not searched), a list (a categorical choice) or a range mapping
``{low, high[, log][, step][, type]}`` (an int range when ``low`` and ``high`` are both integers
or ``type: int``, else a float range). Plain Python: no Optuna, TensorFlow or Keras import.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas_mnist.search_space.trials import SuggestingTrial

ROUND_DIGITS = 4
"""Sampled rates and factors are rounded to this many decimals (0.35000000000000003 -> 0.35)."""


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_range(value: Any) -> bool:
    """A range leaf: a mapping with ``low`` and ``high``."""
    return isinstance(value, Mapping) and "low" in value and "high" in value


def range_kind(leaf: Mapping[str, Any]) -> str:
    """"int" or "float": the range's ``type``, else "int" when ``low`` and ``high`` are ints."""
    if leaf.get("type"):
        return leaf["type"]
    return "int" if all(is_int(leaf[k]) for k in ("low", "high")) else "float"


def sample(trial: SuggestingTrial, name: str, leaf: Any) -> Any:
    """Sample one leaf as the param ``name``: fixed scalar, categorical list, or int/float range.

    A one-element list and a scalar ask the trial nothing; a float range with a ``step`` is
    rounded onto its grid (``round_to_step``).
    """
    if isinstance(leaf, list):
        return leaf[0] if len(leaf) == 1 else trial.suggest_categorical(name, leaf)
    if is_range(leaf):
        kwargs = {k: leaf[k] for k in ("step", "log") if k in leaf}
        if range_kind(leaf) == "int":
            return trial.suggest_int(name, int(leaf["low"]), int(leaf["high"]), **kwargs)
        value = trial.suggest_float(name, float(leaf["low"]), float(leaf["high"]), **kwargs)
        return round_to_step(value, leaf["low"], leaf["step"]) if "step" in leaf else value
    return leaf


def _decimals(number: float) -> int:
    """Digits after the decimal point of a number as written (0.05 -> 2, 1e-3 -> 3, 2 -> 0)."""
    exponent = decimal.Decimal(repr(float(number))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_to_step(value: float, low: float, step: float) -> float:
    """``value`` on the grid ``low + k * step`` without binary noise: Optuna computes
    ``low + k * step`` in floating point (0.30000000000000004 for 0 + 6 * 0.05); this rounds it
    to the decimals of ``low`` and ``step`` (0.3), so specs, MLflow params and the dashboard
    show the grid's own numbers."""
    k = round((float(value) - float(low)) / float(step))
    return round(float(low) + k * float(step), max(_decimals(low), _decimals(step)))


def per_optimizer(leaf: Any, optimizer: str) -> Any:
    """A leaf that may be given per optimizer name ({adam: ..., sgd: ...}).

    Raises:
        KeyError: the leaf is given per optimizer and has no entry for ``optimizer``.
    """
    if isinstance(leaf, Mapping) and not is_range(leaf):
        return leaf[optimizer]
    return leaf


def sample_optional(trial: SuggestingTrial, name: str, leaf: Any, optimizer: str) -> Any:
    """Sample a per-optimizer leaf that may be absent: None without a leaf or an entry."""
    if leaf is None:
        return None
    if isinstance(leaf, Mapping) and not is_range(leaf):
        if optimizer not in leaf:
            return None
        leaf = leaf[optimizer]
    return sample(trial, name, leaf)
