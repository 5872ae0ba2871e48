"""A trial taken over by recovery while its worker was stopped (SIGSTOP past the heartbeat grace):
when the worker continues, its result is dropped in one line and counted nowhere, instead of
Optuna's ``ValueError: Cannot tell a FAIL trial.`` traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import random_splits

from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
from nas_mnist.processes.signals import quiet_expected_failures
from nas_mnist.searching.budget import run_trials
from nas_mnist.searching.objective import Objective, ObjectiveConfig
from nas_mnist.tracking.tracker import StudyRuns, Tracker

SPEC = ArchitectureSpec(layers=(Flatten(), Dense(8)))


def _take_over(trial: optuna.Trial) -> None:
    """What another process's recovery does to a stopped worker's trial: fail it, queue a copy."""
    study = trial.study
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


class _TakeOverWhenDone:
    """A listener that takes trial 0 over just before the objective returns its value."""

    def trial_started(self, number, epochs, label):
        pass

    def epoch_ended(self, number, epoch, logs):
        pass

    def trial_ended(self, number, state, value):
        if number == 0:
            _take_over(self.trial)


def _search(tmp_path: Path, when: str) -> optuna.Study:
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(direction="maximize")
    listener = None

    def spec_for_trial(trial: optuna.Trial) -> ArchitectureSpec:
        trial.suggest_int("x", 0, 3)
        if trial.number == 0 and when == "while training":
            _take_over(trial)
        if listener is not None:
            listener.trial = trial
        return SPEC

    if when == "before its value is told":
        listener = _TakeOverWhenDone()
    objective = Objective(None, random_splits(300, test=50, validation=100),
                          StudyRuns(tracker, tracker.experiment_id("taken-over")),
                          ObjectiveConfig(epochs=1), listener=listener,
                          spec_for_trial=spec_for_trial)
    with quiet_expected_failures():
        run_trials(study, objective, 2)
    return study


@pytest.mark.parametrize("when", ["while training", "before its value is told"])
def test_a_taken_over_trial_is_dropped_in_one_line_and_counted_once(tmp_path, caplog, when):
    caplog.set_level(logging.WARNING)
    study = _search(tmp_path, when)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["retry_of"] == 0  # the copy ran, once
    assert study.trials[1].params == study.trials[0].params
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith(("nas_mnist", "optuna"))]
    assert [r.getMessage() for r in warnings] == [
        "trial 0 was taken over while this worker was stopped (failed and queued for one retry "
        "by recovery): its result is dropped"]
    assert not any(r.exc_info for r in warnings)
