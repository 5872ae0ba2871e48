"""How many trials of a study count towards ``--trials``: finished ones, and claimed ones (finished
or running), which several workers share; and how many failed in a row (``FailureStreak``)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas_mnist.trial_attributes import REASON_ATTR

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
"""States that count towards ``--trials``: a failed trial is retried, not counted."""


def count_finished(study: optuna.Study) -> int:
    """Number of trials that count towards ``--trials`` (complete or pruned)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def count_claimed(study: optuna.Study, before_number: int | None = None) -> int:
    """Finished trials plus RUNNING ones (only those numbered below ``before_number`` if given).

    With several workers, a trial may start only while this count is below ``--trials``: the
    trial with the lower number goes first, so the study ends with exactly ``--trials`` finished.
    """
    claimed = 0
    for t in study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING)):
        if t.state != TrialState.RUNNING or before_number is None or t.number < before_number:
            claimed += 1
    return claimed


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
        surplus trial)."""
        if str(trial.user_attrs.get(REASON_ATTR, "")).startswith("surplus"):
            return False
        self.count = self.count + 1 if trial.state == TrialState.FAIL else 0
        return self.count >= self.limit
