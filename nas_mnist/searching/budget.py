"""The study-wide trial budget: ``--trials`` finished trials in total, shared by every worker,
and a worker that stops after too many failures in a row (the counts: ``study.trial_counts``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from nas_mnist.searching.takeover import TrialTakenOver
from nas_mnist.study.trial_counts import (
    FailureStreak,
    ImpossibleStreak,
    TimeRefusalStreak,
    count_claimed,
    count_finished,
)

logger = logging.getLogger(__name__)

__all__ = ["count_claimed", "count_finished", "run_trials"]


class _StopAfterFailures:
    """An Optuna callback that stops the study after ``limit`` failed trials in a row in this
    process (``FailureStreak``: surplus trials do not count), or after
    ``trial_counts.IMPOSSIBLE_LIMIT`` impossible architectures in a row (logged). It also stops
    the study, without counting it as failures, after ``trial_counts.TIME_REFUSAL_LIMIT``
    sampled specs in a row that ``--time-budget`` refused (logged)."""

    def __init__(self, limit: int) -> None:
        self.streak = FailureStreak(limit)
        self.impossible = ImpossibleStreak()
        self.refused = TimeRefusalStreak()
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.refused.add(trial):
            logger.info("the last %d sampled specs all projected past --time-budget: "
                        "stopping", self.refused.limit)
            study.stop()
        if self.impossible.add(trial):
            logger.warning("the last %d sampled architectures were all impossible (they do not "
                           "fit a 28x28 image): stopping; widen the search space or raise "
                           "--max-params", self.impossible.limit)
            self.stopped = True
            study.stop()
        if self.streak.add(trial):
            self.stopped = True
            study.stop()


def _stop_when_finished(n_trials: int) -> Callable[[optuna.Study, Any], None]:
    """Optuna's ``MaxTrialsCallback``, counting as ``--trials`` does (``count_finished``:
    impossible architectures are not counted)."""

    def callback(study: optuna.Study, trial: Any) -> None:
        if count_finished(study) >= n_trials:
            study.stop()

    return callback


def _stop_when_claimed(n_trials: int) -> Callable[[optuna.Study, Any], None]:
    """A callback that stops this worker once finished plus running trials (of any worker)
    reach ``n_trials``: its next trial would only be a surplus one (a failed trial in the study)."""

    def callback(study: optuna.Study, trial: Any) -> None:
        if count_claimed(study) >= n_trials:
            study.stop()

    return callback


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    max_consecutive_failures: int = 10,
    max_trials_here: int | None = None,
) -> dict[str, Any]:
    """Run trials until the study holds ``n_trials`` finished trials in total.

    ``--trials`` is study-wide: after an interruption the same call runs only the remaining ones,
    and several workers share them. Failed trials are recorded and do not count; after
    ``max_consecutive_failures`` failures in a row this worker stops. ``max_trials_here`` bounds
    the trials this call starts (a ``--jobs`` worker process runs a few, then is replaced).
    A trial taken over by recovery while this process was stopped (``searching.takeover``) is
    logged in one line, counts nothing, and the next trial starts.

    Returns:
        {"ran": trials started here, "stopped_for_failures": bool}.
    """
    if count_claimed(study) >= n_trials:
        return {"ran": 0, "stopped_for_failures": False}
    before = len(study.get_trials(deepcopy=False))
    failures = _StopAfterFailures(max_consecutive_failures)
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        ran = len(study.get_trials(deepcopy=False)) - before
        left = None if max_trials_here is None else max_trials_here - ran
        seconds = None if end is None else end - time.monotonic()
        # No trial starts in the last second before the timeout (Optuna would start one on any
        # positive timeout; --time-budget sets a tiny one when no trial fits).
        if (left is not None and left <= 0) or (seconds is not None and seconds < 1.0):
            break
        try:
            study.optimize(
                objective,
                n_trials=left,
                timeout=seconds,
                catch=(Exception,),
                callbacks=[
                    _stop_when_finished(n_trials),
                    _stop_when_claimed(n_trials),
                    failures,
                    *callbacks,
                ],
                gc_after_trial=True,
            )
            break
        except TrialTakenOver as exc:  # its result dropped; the study counts the retry
            logger.warning("%s", exc)
            if failures.stopped or count_claimed(study) >= n_trials:
                break
    return {
        "ran": len(study.get_trials(deepcopy=False)) - before,
        "stopped_for_failures": failures.stopped,
    }
