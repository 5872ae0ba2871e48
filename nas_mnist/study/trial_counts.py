"""How many trials of a study count towards ``--trials``: finished ones, and claimed ones (finished
or running), which several workers share."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

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
