"""Dead trials: worker ids that survive PID reuse, the heartbeat as the last word, re-queued
interrupts, and MLflow runs left RUNNING closed by the next search."""

from __future__ import annotations

import os
import socket
import time

import optuna
import pytest
from optuna.trial import TrialState
from support import mlflow_uri, random_splits

from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
from nas_mnist.cli.main import main
from nas_mnist.searching.budget import run_trials
from nas_mnist.searching.objective import Objective, ObjectiveConfig
from nas_mnist.study.recovery import (
    WORKER_ATTR,
    close_orphan_runs,
    live_workers,
    process_start_token,
    recover_dead_trials,
    worker_alive,
    worker_id,
)
from nas_mnist.study.trial_counts import is_impossible
from nas_mnist.tracking.tracker import FAIL_FAST, StudyRuns, Tracker
from nas_mnist.trial_attributes import RUN_ATTR

HOST = socket.gethostname()


def other_start_token(pid: int) -> str:
    """A start token for ``pid`` that is not its own: the same boot, another start time."""
    boot, ticks = process_start_token(pid).split(".")
    return f"{boot}.{int(ticks) + 12345}"


def test_worker_id_is_host_pid_and_start_token_and_alive():
    token = process_start_token(os.getpid())
    assert worker_id() == f"{HOST}:{os.getpid()}:{token}"
    assert worker_alive(worker_id()) is True


def test_a_live_process_with_the_recorded_pid_but_another_start_time_is_not_the_worker():
    parent = os.getppid()  # alive for as long as this test runs
    assert worker_alive(f"{HOST}:{parent}:{process_start_token(parent)}") is True
    assert worker_alive(f"{HOST}:{parent}:{other_start_token(parent)}") is False
    assert worker_alive(f"{HOST}:{parent}") is True  # written before start tokens: cannot tell
    assert worker_alive("elsewhere:1:abc.1") is None  # another host: only the heartbeat tells


def test_stale_heartbeat_is_the_last_word_even_for_a_live_worker(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1,
                                         grace_period=1)
    study = optuna.create_study(study_name="demo", storage=storage)
    trial = study.ask()
    parent = os.getppid()
    storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR,
                                f"{HOST}:{parent}:{process_start_token(parent)}")
    storage.record_heartbeat(trial._trial_id)
    assert live_workers(study)  # alive, heartbeat fresh: a live worker
    time.sleep(2.5)
    assert live_workers(study) == set()
    assert recover_dead_trials(study, None) == [0]
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL
    assert frozen.user_attrs["reason"].endswith("sent no heartbeat")
    assert study.trials[1].state == TrialState.WAITING and study.trials[1].user_attrs[
        "retry_of"] == 0


@pytest.mark.slow
def test_reused_pid_does_not_block_recovery_the_same_command_resumes(workdir, real_mnist_path,
                                                                      capsys):
    study = optuna.create_study(study_name="demo", storage="sqlite:///s.db",
                                direction="maximize")
    trial = study.ask({"batch_norm": optuna.distributions.CategoricalDistribution(
        ["none", "after_conv"])})
    parent = os.getppid()  # a live process that is not the worker: its PID was "reused"
    study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR,
                                       f"{HOST}:{parent}:{other_start_token(parent)}")
    args = ["search", "--trials", "2", "--epochs", "1", "--max-train-samples", "500", "--data",
            str(real_mnist_path), "--space", "small.yaml", "--baselines", "none", "--storage",
            "sqlite:///s.db", "--study-name", "demo", "--tracking-uri", mlflow_uri(),
            "--no-progress"]
    assert main(args) == 0, capsys.readouterr()
    assert "trial 0 was left running by a dead worker" in capsys.readouterr().out
    trials = optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["reason"].startswith(f"killed: its worker {HOST}:{parent}:")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].params["batch_norm"] == trials[0].params["batch_norm"]
    counted = [t for t in trials
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_impossible(t)]
    assert len(counted) == 2  # impossible architectures stay in the study uncounted
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


# --- interrupted trials, in-process ------------------------------------------------------------

SMALL_DENSE = ArchitectureSpec(layers=(Flatten(), Dense(8)))



def interrupting_objective(tmp_path, interrupt_numbers: set[int]) -> tuple[Objective, Tracker]:
    """An objective whose trials in ``interrupt_numbers`` get Ctrl-C while choosing their spec."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = tracker.experiment_id("interrupts")

    def spec_for_trial(trial: optuna.Trial) -> ArchitectureSpec:
        trial.suggest_categorical("units", [8])
        if trial.number in interrupt_numbers:
            raise KeyboardInterrupt
        return SMALL_DENSE

    objective = Objective(None, random_splits(), StudyRuns(tracker, experiment_id),
                          ObjectiveConfig(epochs=1), spec_for_trial=spec_for_trial)
    return objective, tracker


def test_interrupted_trial_is_requeued_once_with_its_params_and_baseline(tmp_path, monkeypatch):
    for key in FAIL_FAST:  # the interrupt path sets them for the rest of the process
        monkeypatch.delenv(key, raising=False)
    objective, tracker = interrupting_objective(tmp_path, interrupt_numbers={0, 1})
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"units": 8}, user_attrs={"baseline": "s004_linear", "in_space": False})
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, objective, 1)
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["reason"] == "interrupted"
    retry = study.trials[1]
    assert retry.state == TrialState.WAITING
    assert retry.params == {} and retry.system_attrs["fixed_params"] == {"units": 8}
    assert retry.user_attrs == {"baseline": "s004_linear", "in_space": False, "retry_of": 0}
    run = tracker.client.get_run(first.user_attrs[RUN_ATTR])
    assert run.info.status == "KILLED" and run.data.tags["reason"] == "interrupted"

    with pytest.raises(KeyboardInterrupt):  # the retry is interrupted too: not retried again
        run_trials(study, objective, 1)
    assert study.trials[1].state == TrialState.FAIL
    assert len(study.trials) == 2

    objective.spec_for_trial = lambda trial: SMALL_DENSE
    run_trials(study, objective, 1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL,
                                               TrialState.COMPLETE]


# --- MLflow runs left RUNNING --------------------------------------------------------------------


def test_close_orphan_runs_closes_trial_and_parent_runs_of_finished_trials(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(study_name="orphans")
    old_parent = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    failed, running = study.ask(), study.ask()
    for trial in (failed, running):
        run_id = tracker.start_trial_run(experiment_id, old_parent, trial.number, "orphans")
        trial.set_user_attr(RUN_ATTR, run_id)
    failed.set_user_attr("reason", "tracking_unavailable: the MLflow tracking server went away")
    study.tell(failed, state=TrialState.FAIL)
    new_parent = tracker.client.create_run(
        experiment_id, tags={"nas_mnist.role": "study"}).info.run_id

    closed = close_orphan_runs(study, tracker, parent_run_id=new_parent)
    assert sorted(closed) == sorted([old_parent, failed.user_attrs[RUN_ATTR]])
    status = {r.info.run_id: r for r in tracker.client.search_runs([experiment_id])}
    assert status[failed.user_attrs[RUN_ATTR]].info.status == "FAILED"
    assert status[failed.user_attrs[RUN_ATTR]].data.tags["reason"].startswith(
        "tracking_unavailable")
    assert status[old_parent].info.status == "KILLED"
    assert status[running.user_attrs[RUN_ATTR]].info.status == "RUNNING"  # its trial runs
    assert status[new_parent].info.status == "RUNNING"


def test_close_orphan_runs_closes_the_run_its_finished_trial_never_recorded(tmp_path):
    """A worker stopped between creating a trial's run and recording it on the trial (CI's
    sigkilled-supervisor test, 1 run in 5 here): the trial ended, its run was left RUNNING."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(study_name="orphans")
    parent = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    interrupted, running = study.ask(), study.ask()
    unrecorded = tracker.start_trial_run(experiment_id, parent, interrupted.number, "orphans")
    still_starting = tracker.start_trial_run(experiment_id, parent, running.number, "orphans")
    other_study = tracker.start_trial_run(experiment_id, parent, interrupted.number, "other")
    study.tell(interrupted, state=TrialState.FAIL)

    assert close_orphan_runs(study, tracker, parent_run_id=parent) == [unrecorded]
    status = {r.info.run_id: r for r in tracker.client.search_runs([experiment_id])}
    assert status[unrecorded].info.status == "KILLED"
    assert status[unrecorded].data.tags["reason"].startswith("interrupted before its trial")
    assert status[still_starting].info.status == "RUNNING"  # its trial may record it yet
    assert status[other_study].info.status == "RUNNING"  # not this study's


# --- MLflow logged models left PENDING ------------------------------------------------------------


def _pending_model(tracker: Tracker, experiment_id: str, run_id: str) -> str:
    """A logged model of ``run_id`` left PENDING, as by a worker killed inside ``log_model``
    (MLflow creates it PENDING, uploads its files, then finalizes it READY)."""
    return tracker.client.create_logged_model(experiment_id, name="model",
                                              source_run_id=run_id).model_id


def test_recovery_fails_the_pending_model_of_a_dead_workers_trial(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(study_name="half-logged", direction="maximize")
    parent = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    dead, alive = study.ask(), study.ask()
    models = {}
    for trial, worker in ((dead, f"{HOST}:{os.getppid()}:{other_start_token(os.getppid())}"),
                          (alive, worker_id())):
        run_id = tracker.start_trial_run(experiment_id, parent, trial.number, "half-logged")
        trial.set_user_attr(RUN_ATTR, run_id)
        trial.set_user_attr(WORKER_ATTR, worker)
        models[trial.number] = _pending_model(tracker, experiment_id, run_id)
    ready = _pending_model(tracker, experiment_id, dead.user_attrs[RUN_ATTR])
    tracker.client.finalize_logged_model(ready, "READY")

    assert recover_dead_trials(study, tracker) == [dead.number]
    status = {n: tracker.client.get_logged_model(m).status.value for n, m in models.items()}
    assert status == {dead.number: "FAILED", alive.number: "PENDING"}  # its worker still logs
    assert tracker.client.get_logged_model(ready).status.value == "READY"
    assert tracker.client.get_run(dead.user_attrs[RUN_ATTR]).info.status == "KILLED"


def test_close_orphan_runs_fails_the_pending_models_of_the_runs_it_closes(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(study_name="orphan-models", direction="maximize")
    old_parent = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    trial = study.ask()
    run_id = tracker.start_trial_run(experiment_id, old_parent, trial.number, "orphan-models")
    trial.set_user_attr(RUN_ATTR, run_id)
    study.tell(trial, state=TrialState.FAIL)
    model = _pending_model(tracker, experiment_id, run_id)
    parent_model = _pending_model(tracker, experiment_id, old_parent)  # export killed mid-log
    new_parent = tracker.client.create_run(
        experiment_id, tags={"nas_mnist.role": "study"}).info.run_id
    current = _pending_model(tracker, experiment_id, new_parent)

    assert sorted(close_orphan_runs(study, tracker, new_parent)) == sorted([old_parent, run_id])
    assert tracker.client.get_logged_model(model).status.value == "FAILED"
    assert tracker.client.get_logged_model(parent_model).status.value == "FAILED"
    assert tracker.client.get_logged_model(current).status.value == "PENDING"  # left alone


def test_a_run_closed_as_interrupted_fails_its_pending_model_and_never_raises(tmp_path, caplog):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = tracker.experiment_id("interrupted")
    run_id = tracker.start_trial_run(experiment_id, None, 0, "interrupted")
    model = _pending_model(tracker, experiment_id, run_id)  # Ctrl-C inside log_model
    tracker.end_trial_run(run_id, "killed", "interrupted")  # as the objective closes it
    assert tracker.client.get_logged_model(model).status.value == "FAILED"
    assert f"MLflow run {run_id} left 1 model(s) half-logged" in caplog.text
    assert tracker.fail_pending_models("no-such-run") == []  # a warning, not an error
    assert "could not finalize the half-logged models of MLflow run no-such-run" in caplog.text
