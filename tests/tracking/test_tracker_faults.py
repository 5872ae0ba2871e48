"""A tracking server that goes away: bounded requests, the trial failed and re-queued, the search
stopped, and the runs it left RUNNING closed by the next search."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from support import random_splits

from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
from nas_mnist.searching.budget import run_trials
from nas_mnist.searching.objective import Objective, ObjectiveConfig
from nas_mnist.study.recovery import close_orphan_runs
from nas_mnist.tracking.tracker import (
    HTTP_DEFAULTS,
    StudyRuns,
    Tracker,
    TrackingUnavailableError,
    apply_http_defaults,
)
from nas_mnist.trial_attributes import RUN_ATTR

DEAD_URL = "http://127.0.0.1:5/api/2.0/mlflow/runs/log-batch"


def test_http_requests_are_bounded_unless_the_user_chose_otherwise(monkeypatch):
    for key in HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    settings = apply_http_defaults()
    assert settings["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"  # the user's
    assert settings["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 300


def test_a_closed_port_fails_the_call_within_seconds_then_every_call_at_once(monkeypatch):
    import time

    for key in HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    tracker = Tracker("http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match="server http://127.0.0.1:9 stopped"):
        tracker.experiment_id("demo")
    assert time.monotonic() - start < 30  # 3 refused tries and ~2 s of backoff
    with pytest.raises(TrackingUnavailableError):
        tracker.log_metrics("some-run", {"loss": 1.0})
    assert tracker.finish_parent_run("some-run") is False  # never raises


class DyingClient:
    """An MlflowClient that answers until ``dead``, then fails as MLflow's HTTP client does."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.dead = False

    def __getattr__(self, name: str) -> object:
        if not self.dead:
            return getattr(self.client, name)

        def fail(*args: object, **kwargs: object) -> None:
            from mlflow.exceptions import MlflowException

            raise MlflowException(f"API request to {DEAD_URL} failed with exception "
                                  "HTTPConnectionPool(host='127.0.0.1', port=5): Max retries "
                                  "exceeded (Caused by NewConnectionError(Connection refused))")

        return fail


class KillServerAfterFirstEpoch:
    def __init__(self, client: DyingClient) -> None:
        self.client = client

    def trial_started(self, number: int, epochs: int, label: str) -> None:
        pass

    def epoch_ended(self, number: int, epoch: int, logs: dict) -> None:
        self.client.dead = True

    def trial_ended(self, number: int, state: str, value: float | None) -> None:
        pass



def test_server_dies_mid_trial_trial_failed_and_requeued_search_stops_next_search_closes_runs(
        tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    study = optuna.create_study(study_name="dead", storage=f"sqlite:///{tmp_path / 's.db'}",
                                direction="maximize")
    tracker = Tracker(uri)
    parent = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    dying = DyingClient(tracker.client._client)
    tracker.client._client = dying
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)))
    data = random_splits()

    def spec_for_trial(trial: optuna.Trial) -> ArchitectureSpec:
        trial.suggest_categorical("units", [8])
        return spec

    objective = Objective(None, data, StudyRuns(tracker, experiment_id, parent),
                          ObjectiveConfig(epochs=2),
                          listener=KillServerAfterFirstEpoch(dying), spec_for_trial=spec_for_trial)
    run_trials(study, objective, 3)  # returns: the study was stopped, nothing raised

    first, retry = study.trials  # no second trial started
    assert first.state == TrialState.FAIL
    assert first.user_attrs["reason"].startswith(
        "tracking_unavailable: the MLflow tracking server " + uri)
    assert retry.state == TrialState.WAITING and retry.user_attrs["retry_of"] == 0
    assert isinstance(tracker.unavailable, TrackingUnavailableError)
    assert tracker.finish_parent_run(parent, "KILLED") is False

    # The server is back: the next search closes what was left RUNNING and finishes the study.
    later = Tracker(uri)
    left = {r.info.run_id for r in later.client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'")}
    assert left == {parent, first.user_attrs[RUN_ATTR]}
    new_parent = later.client.create_run(experiment_id, tags={"nas_mnist.role": "study"})
    closed = close_orphan_runs(study, later, new_parent.info.run_id)
    assert set(closed) == left
    run = later.client.get_run(first.user_attrs[RUN_ATTR])
    assert run.info.status == "FAILED" and run.data.tags["reason"].startswith(
        "tracking_unavailable")
    objective = Objective(None, data, StudyRuns(later, experiment_id, new_parent.info.run_id),
                          ObjectiveConfig(epochs=1), spec_for_trial=spec_for_trial)
    run_trials(study, objective, 3)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3 and finished[0].user_attrs.get("retry_of") == 0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_server(port: int) -> object:
    """``mlflow server`` on 127.0.0.1:port with the store m.db, in a session of its own (so that
    it can be killed whole); returns once it answers /health."""
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
         "sqlite:///m.db", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mlflow server did not start")


def kill_server(server: object) -> None:
    import os
    import signal

    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)


@pytest.mark.slow
def test_killed_mlflow_server_mid_trial_stops_the_search_and_the_same_command_resumes(
        workdir, real_mnist_path):
    import subprocess
    import sys
    import time

    import yaml
    from support import SMALL_SPACE, mlflow_runs

    # 'same' padding only: no trial is pruned as impossible before the server dies.
    space = dict(SMALL_SPACE, conv=dict(SMALL_SPACE["conv"], filters=[16], padding=["same"]))
    (workdir / "same.yaml").write_text(yaml.safe_dump(space))
    port = free_port()
    server = start_mlflow_server(port)
    uri = f"http://127.0.0.1:{port}"

    def search(epochs: int) -> list[str]:
        return [sys.executable, "-m", "nas_mnist", "search", "--trials", "1", "--epochs",
                str(epochs), "--max-train-samples", "2000", "--data", str(real_mnist_path),
                "--space", "same.yaml", "--baselines", "none", "--storage", "sqlite:///s.db",
                "--study-name", "demo", "--tracking-uri", uri, "--no-progress"]

    try:
        worker = subprocess.Popen(search(epochs=30), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until a trial has trained an epoch
            assert worker.poll() is None, worker.communicate()[0]
            try:
                study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
                if any(t.intermediate_values for t in study.get_trials(
                        states=(TrialState.RUNNING,))):
                    break
            except Exception:  # the worker is still creating the study
                pass
            time.sleep(0.5)
        kill_server(server)
        killed_at = time.monotonic()
        output = worker.communicate(timeout=300)[0]
        (workdir / "worker.log").write_text(output)
        seconds = time.monotonic() - killed_at
        assert worker.returncode == 1, output
        assert f"the MLflow tracking server {uri} stopped answering" in output, output
        assert "run the same command to resume" in output, output
        assert "Traceback" not in output, output
        print(f"the search stopped {seconds:.0f} s after the server was killed")
        trials = optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials
        assert trials[0].state == TrialState.FAIL
        assert trials[0].user_attrs["reason"].startswith("tracking_unavailable")
        assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["retry_of"] == 0

        server = start_mlflow_server(port)  # back, on the same store
        rerun = subprocess.run(search(epochs=1), capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    finally:
        if server.poll() is None:
            kill_server(server)
    trials = optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials
    assert [t.state for t in trials][:1] == [TrialState.FAIL]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 1
    assert trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)  # the retry ran
    parents, children = mlflow_runs("sqlite:///m.db", "demo")  # the server's own store
    assert all(r.info.status != "RUNNING" for r in parents + children)
    dead = next(r for r in children if r.info.run_id == trials[0].user_attrs[RUN_ATTR])
    assert dead.info.status == "FAILED" and dead.data.tags["reason"].startswith(
        "tracking_unavailable")
