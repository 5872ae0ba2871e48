"""The objective's per-epoch reports to Optuna's pruner (in-memory studies, nothing trains)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas_mnist.searching.objective import _NoListener, _pruning_rule, _TrialReporter
from nas_mnist.study.opening import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

PRUNERS = {
    "median": lambda: make_pruner("median", epochs=3),
    # Prunes every value below 1.0: a pruner that would prune at any step.
    "threshold": lambda: optuna.pruners.ThresholdPruner(lower=1.0),
}


def study_with_strong_trials(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Five finished trials at val_accuracy 0.99 after each of 3 epochs: the median's start-up
    is over, and a trial at 0.5 is below the median at every step."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(5):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.99,
                                     intermediate_values={0: 0.99, 1: 0.99, 2: 0.99}))
    return study


def reporter(trial: optuna.Trial, keras_params: bool) -> _TrialReporter:
    """A reporter for a 3-epoch training: told by the objective, or by Keras' ``params``."""
    if keras_params:
        callback = _TrialReporter(trial, _NoListener(), prune=True)
        callback.set_params({"epochs": 3, "verbose": 0, "steps": 1})
        return callback
    return _TrialReporter(trial, _NoListener(), prune=True, epochs=3)


@pytest.mark.parametrize("keras_params", [False, True])
@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_a_trial_is_never_pruned_at_its_last_epoch(pruner, keras_params):
    study = study_with_strong_trials(PRUNERS[pruner]())
    last = study.ask()
    reporter(last, keras_params).on_epoch_end(2, {"val_accuracy": 0.5})  # no TrialPruned
    frozen = study._storage.get_trial(last._trial_id)
    assert frozen.intermediate_values == {2: 0.5}  # reported: later trials compare with it
    assert study.pruner.prune(study, frozen)  # the pruner would have pruned it there

    earlier = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 2: val_accuracy 0.5000"):
        reporter(earlier, keras_params).on_epoch_end(1, {"val_accuracy": 0.5})


@pytest.mark.parametrize("pruner, rule", [
    ("median", "is below the median of earlier trials at this epoch"),
    ("threshold", "was stopped by the ThresholdPruner"),
])
def test_the_pruning_reason_names_the_rule_of_the_pruner_that_pruned(pruner, rule):
    """A Hyperband search's trials were said to be "below the median"; each pruner's own rule."""
    study = study_with_strong_trials(PRUNERS[pruner]())
    with pytest.raises(optuna.TrialPruned) as pruned:
        reporter(study.ask(), keras_params=False).on_epoch_end(1, {"val_accuracy": 0.5})
    assert str(pruned.value) == f"pruned after epoch 2: val_accuracy 0.5000 {rule}"


def test_hyperband_prunes_with_the_rule_of_its_brackets():
    rule = _pruning_rule(make_pruner("hyperband", epochs=9))
    assert rule == "is not in the top third of its Hyperband bracket's trials at this epoch"
    assert "median" not in rule


def test_without_pruning_nothing_is_reported():
    study = study_with_strong_trials(make_pruner("median", epochs=3))
    trial = study.ask()
    _TrialReporter(trial, _NoListener(), prune=False, epochs=3).on_epoch_end(
        0, {"val_accuracy": 0.5})
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {}


class _TrackerThatCannotClose:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def end_trial_run(self, run_id: str, state: str, reason: str) -> None:
        raise self.error


@pytest.mark.parametrize("error, one_line", [
    (RuntimeError("(sqlite3.OperationalError) database is locked\n(Background ...)"), True),
    (RuntimeError("an unexpected bug"), False),
])
def test_a_run_that_cannot_be_closed_is_one_line_when_its_store_is_locked(caplog, error,
                                                                          one_line):
    """Two stopping workers on one SQLite MLflow store: the run not closed is one warning (the
    next search closes it); an unknown error keeps its traceback."""
    from types import SimpleNamespace

    from nas_mnist.searching.objective import Objective

    trial = optuna.trial.FixedTrial({})
    owner = SimpleNamespace(tracker=_TrackerThatCannotClose(error), listener=_NoListener())
    with caplog.at_level("WARNING", logger="nas_mnist.searching.objective"):
        Objective._end(owner, trial, "run-1", "killed", "interrupted")
    assert trial.user_attrs["reason"] == "interrupted"
    (record,) = caplog.records
    assert "could not close MLflow run run-1" in record.getMessage()
    assert (record.exc_info is None) is one_line
    if one_line:
        assert "database is locked" in record.getMessage()
        assert "Background" not in record.getMessage()
