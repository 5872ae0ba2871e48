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


@pytest.mark.parametrize("with_trials", [False, True])
def test_a_study_made_for_the_other_direction_is_refused(tmp_path, with_trials):
    """A ``minimize`` study made by plain Optuna has one direction, as val_accuracy has, but the
    wrong one: resuming it would make TPE look for low accuracy."""
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    foreign = optuna.create_study(storage=url, study_name="demo", direction="minimize")
    if with_trials:
        foreign.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    words = r"optimizes 1 objective\(s\) to minimize, not val_accuracy \(to maximize\)"
    with pytest.raises(StorageError, match=words):
        open_study(url, "demo")
    assert len(optuna.load_study(storage=url, study_name="demo").trials) == 2 * with_trials


def test_a_study_with_the_right_direction_but_no_objective_attribute_is_resumed(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="demo", direction="maximize")
    study, created = open_study(url, "demo")
    assert not created and study.directions == [optuna.study.StudyDirection.MAXIMIZE]


def test_search_on_a_minimize_study_exits_2_with_one_line(workdir, real_mnist_path, capsys):
    import optuna
    from support import search_args

    from nas_mnist.cli.main import main

    optuna.create_study(storage="sqlite:///s.db", study_name="demo", direction="minimize")
    assert main([*search_args(real_mnist_path, 1), "--space", "small.yaml",
                 "--baselines", "none"]) == 2
    err = capsys.readouterr().err
    assert "minimize" in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert optuna.load_study(storage="sqlite:///s.db", study_name="demo").trials == []
