"""How many trials of a study count towards ``--trials``: finished ones, and claimed ones (finished
or running), which several workers share; and how many failed in a row (``FailureStreak``).

An impossible architecture (a sampled point of the space whose layers do not fit a 28x28 image,
pruned in milliseconds before anything is built, reason ``invalid_architecture: ...``) stays in
the study, so the sampler learns to avoid its region, but does not count towards ``--trials``:
with the default space about half of the random points are impossible, and counting them spent
half of a small budget on nothing. ``ImpossibleStreak`` ends a search whose space gives almost
nothing else. A sampled spec that ``--time-budget`` refused before it trained (pruned, reason
``time_budget: ...``) does not count either: the sampler proposes another in its place."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas_mnist.trial_attributes import REASON_ATTR, TOO_COSTLY_REASON, TOO_LARGE_REASON

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
"""States that count towards ``--trials``: a failed trial is retried, not counted."""

IMPOSSIBLE_REASON = "invalid_architecture"
"""The reason prefix of a trial pruned as an impossible architecture (not counted)."""

TIME_BUDGET_REASON = "time_budget"
"""The reason prefix of a trial that ``--time-budget`` did not let start."""

TIME_REFUSAL_LIMIT = 5
"""Sampled specs in a row refused by ``--time-budget`` after which a search stops: each is
pruned in about a second and the sampler proposes another, but when so many in a row do not fit
the time left, few that fit are left to find (a choice of this project)."""

IMPOSSIBLE_LIMIT = 200
"""Impossible architectures in a row after which a search stops: its space (or
``--max-params``) leaves almost nothing that trains."""


def is_impossible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` was pruned as an impossible architecture."""
    return (trial.state == TrialState.PRUNED
            and str(trial.user_attrs.get(REASON_ATTR, "")).startswith(IMPOSSIBLE_REASON))


def is_refused_for_time(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` was pruned before training because its spec projected past
    ``--time-budget``."""
    return (trial.state == TrialState.PRUNED
            and str(trial.user_attrs.get(REASON_ATTR, "")).startswith(TIME_BUDGET_REASON))


def counts_towards_trials(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished or running ``trial`` counts towards ``--trials``: not an impossible
    architecture, nor a sampled spec refused by ``--time-budget``."""
    return not (is_impossible(trial) or is_refused_for_time(trial))


def count_finished(study: optuna.Study) -> int:
    """Number of trials that count towards ``--trials``: complete or pruned, impossible
    architectures and specs refused by ``--time-budget`` excepted."""
    return sum(counts_towards_trials(t)
               for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))


def count_claimed(study: optuna.Study, before_number: int | None = None) -> int:
    """Finished trials plus RUNNING ones (only those numbered below ``before_number`` if given).

    With several workers, a trial may start only while this count is below ``--trials``: the
    trial with the lower number goes first, so the study ends with exactly ``--trials`` finished.
    """
    claimed = 0
    for t in study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING)):
        if not counts_towards_trials(t):
            continue
        if t.state != TrialState.RUNNING or before_number is None or t.number < before_number:
            claimed += 1
    return claimed


class ImpossibleStreak:
    """Impossible architectures in a row, as trials finish; ``add`` is True at ``limit``.

    Args:
        limit: impossible trials in a row that stop the search (>= 1).
    """

    def __init__(self, limit: int = IMPOSSIBLE_LIMIT) -> None:
        self.limit = limit
        self.count = 0

    def add(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Count a finished trial; True when it makes ``limit`` impossible ones in a row."""
        self.count = self.count + 1 if is_impossible(trial) else 0
        return self.count >= self.limit


class TimeRefusalStreak:
    """Sampled specs refused by ``--time-budget`` in a row, as trials finish; ``add`` is True
    at ``limit``. A trial pruned before training for another reason (an impossible
    architecture, one over ``--max-params`` or ``--max-mflops``) neither counts nor breaks the
    streak.

    Args:
        limit: refused trials in a row that stop the search (>= 1).
    """

    def __init__(self, limit: int = TIME_REFUSAL_LIMIT) -> None:
        self.limit = limit
        self.count = 0

    def add(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Count a finished trial; True when it makes ``limit`` refused ones in a row."""
        if is_refused_for_time(trial):
            self.count += 1
        elif not (is_impossible(trial)
                  or str(trial.user_attrs.get(REASON_ATTR, "")).startswith(
                      (TOO_LARGE_REASON, TOO_COSTLY_REASON))):
            self.count = 0
        return self.count >= self.limit


class FailureStreak:
    """Failed trials in a row, as they finish; a search stops once there are ``limit`` of them.

    A complete or pruned trial ends the streak. Surplus trials (failed at once because the
    budget was claimed by other workers, ``count_claimed``) neither count nor end it. Used by the
    in-process search (an Optuna callback) and by the ``--jobs`` supervisor.

    Args:
        limit: failures in a row that stop the search (>= 1).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def add(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Count a finished trial; True when it makes ``limit`` failures in a row (never for a
        surplus trial, nor for one that did not start for lack of --time-budget)."""
        if str(trial.user_attrs.get(REASON_ATTR, "")).startswith(("surplus", "time_budget")):
            return False
        self.count = self.count + 1 if trial.state == TrialState.FAIL else 0
        return self.count >= self.limit
