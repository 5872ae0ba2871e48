"""A trial taken over by recovery while its worker was stopped: its result is dropped.

A worker stopped (SIGSTOP, a frozen machine) past the heartbeat grace has its RUNNING trial failed
and re-queued by another process's recovery (``study.recovery``). When it continues, its trial is
FAIL in the storage: Optuna refuses every write to it (``UpdateFinishedTrialError``) and then its
own tell (``ValueError: Cannot tell a FAIL trial.``). The objective raises ``TrialTakenOver``
instead: a ``BaseException``, so that Optuna's ``study.optimize``, which tells the trial's state
after any ``Exception`` or ``KeyboardInterrupt``, tells nothing and lets it through;
``budget.run_trials`` logs one line and goes on with the next trial. The re-queued copy is trained
by whoever takes it, so the study counts the configuration once.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState


class TrialTakenOver(BaseException):
    """This process's trial was failed and re-queued by recovery while it ran; the message says
    which trial and that its result was dropped."""

    def __init__(self, number: int) -> None:
        super().__init__(
            f"trial {number} was taken over while this worker was stopped (failed and queued for "
            "one retry by recovery): its result is dropped")
        self.number = number


def is_taken_over(trial: Any) -> bool:
    """Whether ``trial`` (an ``optuna.Trial`` of this process) is no longer RUNNING in its
    storage: another process's recovery failed it. A storage that cannot be read says no."""
    try:
        state = trial.study._storage.get_trial(trial._trial_id).state
    except Exception:
        return False
    return state != TrialState.RUNNING
