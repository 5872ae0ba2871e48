"""Optuna's samplers, with the float parameters they store on their step.

A float parameter with a step (dropout rates: ``suggest_float("dropout", 0.0, 0.5, step=0.05)``)
is sampled by Optuna as ``low + k * step`` in floating point, and stored so: 0.30000000000000004
for 0 + 6 * 0.05, in the study, the dashboard and ``optuna trials``. The samplers here are
Optuna's own (subclasses: ``isinstance(sampler, optuna.samplers.TPESampler)`` holds, their
arguments and behaviour are Optuna's) whose sampled values of such parameters are rounded to
the nearest ``low + k * step`` and then to 12 significant digits (0.3), before Optuna stores them.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution

SIGNIFICANT_DIGITS = 12
"""Digits kept of a stepped float: far below any step a search space uses, far above float
noise (about 16 digits)."""


def on_step(value: Any, distribution: BaseDistribution) -> Any:
    """``value`` on the grid of ``distribution`` when it is a ``FloatDistribution`` with a step,
    written with ``SIGNIFICANT_DIGITS`` digits and kept in ``[low, high]``; any other value as
    it is."""
    if not isinstance(distribution, FloatDistribution) or distribution.step is None:
        return value
    low, step = distribution.low, distribution.step
    snapped = low + round((float(value) - low) / step) * step
    plain = float(f"{snapped:.{SIGNIFICANT_DIGITS}g}")
    return min(max(plain, low), distribution.high)


class OnStepSampling(optuna.samplers.BaseSampler):
    """Mixin, before an Optuna sampler class: stepped float values on their step (``on_step``)."""

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        values = super().sample_relative(study, trial, search_space)
        return {name: on_step(value, search_space[name]) if name in search_space else value
                for name, value in values.items()}

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        value = super().sample_independent(study, trial, param_name, param_distribution)
        return on_step(value, param_distribution)


class TPESampler(OnStepSampling, optuna.samplers.TPESampler):
    """Optuna's ``TPESampler``, stepped floats on their step."""


class RandomSampler(OnStepSampling, optuna.samplers.RandomSampler):
    """Optuna's ``RandomSampler``, stepped floats on their step."""


class NSGAIISampler(OnStepSampling, optuna.samplers.NSGAIISampler):
    """Optuna's ``NSGAIISampler``, stepped floats on their step."""


class GPSampler(OnStepSampling, optuna.samplers.GPSampler):
    """Optuna's ``GPSampler`` (needs PyTorch), stepped floats on their step."""
