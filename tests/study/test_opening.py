"""Opening and resuming studies (SQLite in a temporary folder, no training)."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from nas_mnist.study.opening import open_study
from nas_mnist.study.recovery import requeue_trial
from nas_mnist.study.storage import StorageError, load_existing_study, validate_storage_url
from nas_mnist.trial_attributes import BASELINE_ATTR, RETRY_OF_ATTR


def test_a_study_is_created_once_and_then_resumed(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study, created = open_study(url, "demo", seed=0)
    assert created and study.user_attrs["objective"] == ["val_accuracy"]
    again, created_again = open_study(url, "demo", seed=0)
    assert not created_again and again._study_id == study._study_id


def test_resuming_with_other_objectives_is_refused_with_the_way_out(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, "demo", objectives=("val_accuracy", "params"), pruner="none")
    with pytest.raises(StorageError, match="optimizes val_accuracy,params, not val_accuracy"):
        open_study(url, "demo")


def test_a_multi_objective_study_cannot_have_a_pruner(tmp_path):
    with pytest.raises(ValueError, match="cannot prune"):
        open_study(f"sqlite:///{tmp_path / 's.db'}", "demo",
                   objectives=("val_accuracy", "params"), pruner="median")
    assert not (tmp_path / "s.db").exists()


def test_load_existing_study_names_the_studies_that_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, "alpha")
    with pytest.raises(StorageError, match="studies there: alpha"):
        load_existing_study(url, "beta")


@pytest.mark.parametrize(("url", "message"), [
    ("redis://localhost/0", "unknown storage scheme 'redis'"),
    ("sqlite://", "in-memory SQLite database"),
    ("sqlite:////no/such/folder/s.db", "does not exist"),
])
def test_bad_storage_urls_are_refused(url, message):
    with pytest.raises(StorageError, match=message):
        validate_storage_url(url)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell outside optimize
def test_a_queued_retry_runs_before_the_other_queued_trials_also_on_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study, _ = open_study(url, "demo", seed=0)
    for name in ("a", "b", "c"):  # seeded baselines, queued as trials 0, 1, 2
        study.enqueue_trial({}, user_attrs={BASELINE_ATTR: name})
    interrupted = study.ask()
    assert interrupted.number == 0
    study.tell(interrupted, state=TrialState.FAIL)
    requeue_trial(study, 0, interrupted.params, interrupted.user_attrs, "interrupted")  # trial 3

    resumed, _ = open_study(url, "demo", seed=0)  # the next search
    order = []
    for _ in range(3):
        trial = resumed.ask()
        order.append((trial.number, trial.user_attrs.get(BASELINE_ATTR)))
        resumed.tell(trial, 1.0)
    assert order == [(3, "a"), (1, "b"), (2, "c")]  # the retry of trial 0 first
    assert resumed.trials[3].user_attrs[RETRY_OF_ATTR] == 0
    assert resumed.ask().number == 4  # the queue is empty: the sampler's turn
