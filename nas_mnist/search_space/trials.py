"""The trial objects a search space samples from: the ``SuggestingTrial`` protocol and the two
stand-ins the package answers ``suggest_*`` calls with itself.

``optuna.Trial``, ``optuna.trial.FixedTrial``, ``CheckingTrial``, ``SpecValuesTrial``,
``LeastShrinkingTrial`` and
``nas_mnist.searching.keras_tuner.HyperParametersTrial`` all satisfy ``SuggestingTrial``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from optuna.distributions import CategoricalChoiceType


def _choice_kind(value: Any) -> str:
    """"bool", "number" or the type's name: how a categorical choice compares."""
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


@runtime_checkable
class SuggestingTrial(Protocol):
    """The part of ``optuna.Trial``'s interface that a search space samples through (same
    signatures): one call per param, named by ``name``; a name asked twice must get the same
    answer."""

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        """One of ``choices``."""
        ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An int in ``[low, high]`` on the grid ``low + k * step`` (log-uniform if ``log``)."""
        ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """A float in ``[low, high]`` (on the step's grid with a step; log-uniform if ``log``)."""
        ...


class CheckingTrial:
    """Answers from ``params`` and notes whether any answer lies outside what was asked.

    Used to check params read off a spec: after sampling, ``used`` holds exactly the params that
    were asked for, and ``outside`` is true if any of them is not one of the choices, not in its
    range or not on its step.

    Raises (from ``suggest_*``):
        KeyError: a param that ``params`` does not hold.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.used: dict[str, Any] = {}
        self.outside = False

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(name)
        self.used[name] = self.params[name]
        return self.params[name]

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        """The param's value; outside unless equal to a choice of the same kind."""
        value = self._get(name)
        # Equal and of the same kind: False == 0 in Python, but a flag is not a number.
        self.outside |= not any(
            _choice_kind(value) == _choice_kind(c) and value == c for c in choices
        )
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """The param's value; outside unless an int in ``[low, high]`` on the step's grid."""
        value = self._get(name)
        self.outside |= not (
            isinstance(value, int) and not isinstance(value, bool)
            and low <= value <= high and (value - low) % step == 0
        )
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """The param's value; outside unless a number in ``[low, high]`` on the step's grid."""
        value = self._get(name)
        inside = isinstance(value, (int, float)) and low <= value <= high
        if inside and step:
            k = (value - low) / step
            inside = abs(k - round(k)) < 1e-8  # Optuna's FloatDistribution._contains
        self.outside |= not inside
        return value


class SpecValuesTrial:
    """Answers each ``suggest_*`` with a spec's own value (``values``), noting which answers lie
    in what was asked (``inside``); for the names in ``forward``, asks ``trial`` instead (an
    ``optuna.Trial`` whose enqueued params hold those values), so that Optuna records them.

    Used for a baseline outside the space: its shared params that lie in the space (optimizer,
    learning_rate, ...) are its honest Optuna params (``sampling.shared_params_for_spec``).

    Raises (from ``suggest_*``):
        KeyError: a param that ``values`` does not hold.
    """

    def __init__(self, values: dict[str, Any], trial: SuggestingTrial | None = None,
                 forward: Sequence[str] = ()) -> None:
        self.values = values
        self.trial = trial
        self.forward = set(forward)
        self.inside: dict[str, bool] = {}

    def _answer(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name not in self.values:
            raise KeyError(name)
        check = CheckingTrial({name: self.values[name]})
        getattr(check, kind)(name, *args, **kwargs)
        self.inside[name] = not check.outside
        if self.trial is not None and name in self.forward:
            return getattr(self.trial, kind)(name, *args, **kwargs)
        return self.values[name]

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        """The spec's value (``trial``'s for a forwarded name)."""
        return self._answer("suggest_categorical", name, choices)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """The spec's value (``trial``'s for a forwarded name)."""
        return self._answer("suggest_int", name, low, high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """The spec's value (``trial``'s for a forwarded name)."""
        return self._answer("suggest_float", name, low, high, step=step, log=log)


class LeastShrinkingTrial:
    """Answers every ``suggest_*`` with the choice that shrinks the feature map least.

    Used once when a space is loaded: if even this point is impossible, every point is (sizes
    only shrink more with fewer 'same' paddings, larger kernels and strides, more blocks and
    more pools), and the file is refused. Parameters that do not affect sizes take their first
    choice or their low bound.
    """

    # (parameter-name suffix, preference): "min", "max", or values in order of preference.
    _RULES: tuple[tuple[str, Any], ...] = (
        ("num_blocks", "min"),
        ("depth", "min"),
        ("num_convs", "min"),
        ("kernel_size", "min"),
        ("strides", "min"),
        ("pool_size", "min"),
        ("pool_every", "max"),
        ("padding", ("same", "valid")),
        ("pool", ("none", "same", "valid")),
    )

    def _rule(self, name: str) -> Any:
        for suffix, preference in self._RULES:
            if name == suffix or name.endswith(f"_{suffix}"):
                return preference
        return None

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        """The least shrinking choice by the param's name, else the first choice."""
        rule = self._rule(name)
        values: list[Any] = list(choices)  # a rule's choices are all numbers or all strings
        if rule == "min":
            return min(values)
        if rule == "max":
            return max(values)
        if rule:
            return min(choices, key=lambda v: rule.index(v) if v in rule else len(rule))
        return choices[0]

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """The highest grid point for params preferring "max", else ``low``."""
        return high - (high - low) % step if self._rule(name) == "max" else low

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """``low``."""
        return low
