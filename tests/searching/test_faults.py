"""Faults: kills, signals, NaN losses, oversized models, bad input, unreachable tracking, seeds.

Each test asserts the end state: trial states and reasons, counts, exit codes, messages, files.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import SMALL_SPACE, mlflow_runs, mlflow_uri, random_splits

from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten, OptimizerSpec
from nas_mnist.cli.main import main
from nas_mnist.searching.budget import run_trials
from nas_mnist.searching.objective import Objective, ObjectiveConfig
from nas_mnist.tracking.tracker import StudyRuns, Tracker

# Slow enough per epoch (2,000 images, 8-16 filters) that a signal lands inside a trial.
SIGNAL_SPACE = dict(SMALL_SPACE, conv=dict(SMALL_SPACE["conv"], filters=[16], padding=["same"]))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SIGNAL_SPACE))
    return tmp_path


def command(data: Path, trials: int, epochs: int = 3) -> list[str]:
    return [sys.executable, "-m", "nas_mnist", "search", "--trials", str(trials), "--epochs",
            str(epochs), "--max-train-samples", "2000", "--data", str(data), "--space",
            "space.yaml", "--baselines", "none", "--storage", "sqlite:///s.db", "--study-name",
            "demo", "--tracking-uri", mlflow_uri(), "--no-progress"]


def start_worker(args: list[str], **popen: object) -> subprocess.Popen:
    """Create the study's tables first (so that polling never races the worker creating them),
    then start the worker, which loads the study."""
    optuna.create_study(study_name="demo", storage="sqlite:///s.db", direction="maximize")
    return subprocess.Popen(args, **popen)


def wait_for_running_trial(process: subprocess.Popen, timeout: float = 240.0) -> int:
    """Poll the study until a trial has trained at least one epoch; return its number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if Path("s.db").exists():
            try:
                study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
            except Exception:  # the worker is still creating the study's tables
                study = None
            for trial in study.get_trials(states=(TrialState.RUNNING,)) if study else ():
                if trial.intermediate_values:
                    return trial.number
        time.sleep(0.5)
    raise AssertionError("no trial started training in time")



def in_memory_search(tmp_path: Path, specs: list[ArchitectureSpec], trials: int,
                     config: ObjectiveConfig | None = None) -> optuna.Study:
    """Run ``trials`` finished trials; trial n trains ``specs[min(n, len-1)]``."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = tracker.experiment_id("faults")
    study = optuna.create_study(direction="maximize")
    data = random_splits(600, test=50, validation=100)
    objective = Objective(None, data, StudyRuns(tracker, experiment_id),
                          config or ObjectiveConfig(epochs=1),
                          spec_for_trial=lambda t: specs[min(t.number, len(specs) - 1)])
    run_trials(study, objective, trials)
    return study


SMALL_DENSE = ArchitectureSpec(layers=(Flatten(), Dense(16)))


@pytest.mark.slow
def test_sigkill_then_same_command_resumes_fails_and_retries_the_killed_trial(
        workdir, real_mnist_path):
    process = start_worker(command(real_mnist_path, 3), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    killed = wait_for_running_trial(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    rerun = subprocess.run(command(real_mnist_path, 3), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    trial = study.trials[killed]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["reason"].startswith("killed")
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed]
    assert len(retries) == 1 and retries[0].params == trial.params
    assert len([t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 3
    parents, children = mlflow_runs(mlflow_uri(), "demo")
    assert all(r.info.status != "RUNNING" for r in parents + children)
    killed_run = next(r for r in children if r.info.run_id == trial.user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "KILLED" and killed_run.data.tags["state"] == "killed"


def ignore_sigint() -> None:
    """What a worker started with '&' from a non-interactive script inherits (POSIX: the shell
    sets SIGINT to ignored in asynchronous commands), so Python installs no KeyboardInterrupt
    handler of its own. Used as ``preexec_fn``: the test does not depend on how pytest was
    started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_fail_the_trial_requeue_it_close_its_run_and_say_how_to_resume(
        workdir, real_mnist_path, signum, status):
    # The clean-up path, not the watchdog's forced exit (test_interrupts.py tests that one).
    env = dict(os.environ, NAS_MNIST_INTERRUPT_GRACE_SECONDS="120")
    process = start_worker(command(real_mnist_path, 2, epochs=20), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint, env=env)
    number = wait_for_running_trial(process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "Run the same command again to resume" in err
    assert "Traceback" not in err and "failed with parameters" not in err, err
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    trial = study.trials[number]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["reason"] == "interrupted"
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING
    assert retries[0].system_attrs["fixed_params"] == trial.params  # run with these when resumed
    parents, children = mlflow_runs(mlflow_uri(), "demo")
    runs = {r.info.run_id: r for r in children}
    assert trial.user_attrs["mlflow_run_id"] in runs, (trial.user_attrs, list(runs), err)
    assert runs[trial.user_attrs["mlflow_run_id"]].info.status == "KILLED"
    assert parents[0].info.status == "KILLED"
    assert not Path("s.db.lock").exists()  # the worker lock went with the worker


def test_nan_loss_fails_the_trial_with_reason_and_the_study_continues(tmp_path):
    exploding = ArchitectureSpec(layers=(Flatten(), Dense(32, activation="linear")),
                                 optimizer=OptimizerSpec("sgd", 1e9))
    study = in_memory_search(tmp_path, [exploding, SMALL_DENSE], trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["reason"].startswith("nan_loss: training loss is nan after "
                                                           "epoch 1")


def test_too_many_params_is_pruned_before_training_and_next_trials_run(tmp_path):
    big = ArchitectureSpec(layers=(Flatten(), Dense(512)))
    study = in_memory_search(tmp_path, [big, SMALL_DENSE], trials=2,
                             config=ObjectiveConfig(epochs=1, max_params=100_000))
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["reason"].startswith("too_large: 407,050 params exceed")
    assert "train_seconds" not in study.trials[0].user_attrs


def test_too_many_mflops_is_pruned_before_training_and_next_trials_run(tmp_path):
    # Flatten, Dense(2048), output: 2 * (784 * 2048 + 2048 * 10) FLOPs, 3.25 MFLOPs per image;
    # SMALL_DENSE's Dense(16): 0.03.
    costly = ArchitectureSpec(layers=(Flatten(), Dense(2048)))
    study = in_memory_search(tmp_path, [costly, SMALL_DENSE], trials=2,
                             config=ObjectiveConfig(epochs=1, max_mflops=1))
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["reason"] == (
        "too_costly: 3.3 MFLOPs per image exceed --max-mflops 1")
    assert "train_seconds" not in study.trials[0].user_attrs


def test_out_of_memory_fails_the_trial_with_its_reason_and_next_trials_run(tmp_path, monkeypatch):
    import nas_mnist.model.training as training

    real_train = training.train_spec
    calls = []

    class ResourceExhaustedError(RuntimeError):  # the name TensorFlow's OOM error has
        pass

    def train_or_oom(spec, *args, **kwargs):
        calls.append(spec)
        if len(calls) == 1:
            raise ResourceExhaustedError("OOM when allocating tensor with shape [4096, 4096]")
        return real_train(spec, *args, **kwargs)

    monkeypatch.setattr(training, "train_spec", train_or_oom)
    study = in_memory_search(tmp_path, [SMALL_DENSE], trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["reason"].startswith("out_of_memory: ResourceExhaustedError")


def write_npz(path: Path, **overrides: object) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 5, dtype=np.uint8)}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def bad_data(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, words the error message must contain)."""
    good = write_npz(tmp / "good.npz")
    truncated = tmp / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    idx = tmp / "idx"
    idx.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (idx / name).write_bytes(b"\0\0\x08\x03")
    overflow = tmp / "overflow"  # dimensions whose product wraps to 0 in int64 (2**64)
    overflow.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (overflow / name).write_bytes(struct.pack(">IIII", 0x803, 2**21, 2**21, 2**22))
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (overflow / name).write_bytes(struct.pack(">II", 0x801, 0))
    return {
        "idx_overflow": (overflow, "train-images-idx3-ubyte has 16 bytes"),
        "missing": (tmp / "nope.npz", "nope.npz"),
        "truncated": (truncated, "truncated.npz"),
        "object": (write_npz(tmp / "object.npz", y_train=np.array([object()] * 20)), "pickle"),
        "shape": (write_npz(tmp / "shape.npz", x_train=np.zeros((20, 27, 28), np.uint8)), "28"),
        "labels": (write_npz(tmp / "labels.npz", y_train=np.full(20, 11)), "0..9"),
        "nan": (write_npz(tmp / "nan.npz", x_test=np.full((5, 28, 28), np.nan)), "NaN"),
        "lengths": (write_npz(tmp / "lengths.npz", y_test=np.zeros(4, np.uint8)), "length"),
        "three_idx": (idx, "t10k-labels-idx1-ubyte"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "object", "shape", "labels", "nan",
                                  "lengths", "three_idx", "idx_overflow"])
def test_bad_data_exits_2_naming_file_and_problem_before_anything_exists(tmp_path, monkeypatch,
                                                                         capsys, case):
    path, words = bad_data(tmp_path)[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["search", "--data", str(path), "--storage", "sqlite:///s.db",
                 "--tracking-uri", mlflow_uri()]) == 2
    err = capsys.readouterr().err
    assert path.name in err and words.lower() in err.lower(), err
    assert list(work.iterdir()) == []


def test_unreachable_tracking_server_fails_fast_before_any_study(tmp_path, monkeypatch, capsys,
                                                                 real_mnist_path):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    assert main(["search", "--data", str(real_mnist_path), "--storage", "sqlite:///s.db",
                 "--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert time.monotonic() - start < 60
    assert "cannot reach the MLflow tracking store 'http://127.0.0.1:9'" in capsys.readouterr().err
    assert not Path("s.db").exists()


def test_second_worker_on_sqlite_is_refused(tmp_path, monkeypatch, capsys, real_mnist_path):
    """A RUNNING trial of a live worker that holds no lock (written before the lock existed):
    still refused by the poll behind the lock."""
    from nas_mnist.study.recovery import WORKER_ATTR

    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="demo", storage="sqlite:///s.db", direction="maximize")
    trial = study.ask()  # a RUNNING trial of a live worker on this host (the parent process)
    study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR,
                                       f"{os.uname().nodename}:{os.getppid()}")
    assert main(["search", "--data", str(real_mnist_path), "--storage", "sqlite:///s.db",
                 "--study-name", "demo", "--tracking-uri", mlflow_uri()]) == 2
    assert "SQLite locks under concurrent writers" in capsys.readouterr().err


def test_search_while_another_holds_the_sqlite_storage_exits_2_and_creates_nothing(
        tmp_path, monkeypatch, capsys, real_mnist_path):
    from nas_mnist.study.locks import one_search_per_storage

    monkeypatch.chdir(tmp_path)
    with one_search_per_storage("sqlite:///s.db", "demo"):  # as a running search holds it
        assert main(["search", "--data", str(real_mnist_path), "--storage", "sqlite:///s.db",
                     "--study-name", "demo", "--tracking-uri", mlflow_uri()]) == 2
    err = capsys.readouterr().err
    assert "another search is running on sqlite:///s.db" in err and "PostgreSQL" in err, err
    assert list(tmp_path.iterdir()) == []  # no study, no MLflow store; the lock file is gone


@pytest.mark.slow
def test_same_seed_gives_same_trial_parameters_and_metrics(tmp_path, monkeypatch, real_mnist_path):
    results = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        monkeypatch.chdir(folder)
        (folder / "space.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
        assert main(["search", "--trials", "3", "--epochs", "1", "--max-train-samples", "500",
                     "--data", str(real_mnist_path), "--space", "space.yaml", "--baselines",
                     "none", "--storage", "sqlite:///s.db", "--tracking-uri", mlflow_uri(),
                     "--seed", "7", "--no-progress"]) == 0
        study = optuna.load_study(study_name="nas-mnist", storage="sqlite:///s.db")
        results.append([(json.dumps(t.params, sort_keys=True), t.state.name,
                         t.user_attrs.get("val_accuracy")) for t in study.trials])
    assert results[0] == results[1]


@pytest.mark.slow
def test_memory_growth_over_30_trials_stays_within_the_stated_bound(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from memory_across_trials import measure

    sizes = measure(30, str(tmp_path))
    assert len(sizes) == 30
    # docs/results.md: about 6 MiB per small trial inside TensorFlow; bound 300 MiB for 30 trials.
    assert sizes[-1] - sizes[5] < 300, sizes


def test_an_error_raised_after_a_stop_signal_ends_the_trial_as_interrupted(tmp_path, monkeypatch):
    # TensorFlow once turned the Terminated raised by the signal handler into "TypeError: Cannot
    # find maximum value of <dtype: 'int32'>": after a stop signal, an error is the interruption.
    import nas_mnist.searching.objective as objective_module
    from nas_mnist.processes import signals
    from nas_mnist.processes.signals import Terminated

    def torn_by_signal(*args, **kwargs):
        signals._STOP_SIGNALS.append(signal.SIGTERM)  # what the handler records before raising
        raise TypeError("Cannot find maximum value of <dtype: 'int32'>.")

    monkeypatch.setattr(objective_module, "train_trial", torn_by_signal)
    monkeypatch.setattr(signals, "_STOP_SIGNALS", [])
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(direction="maximize")
    objective = Objective(None, random_splits(600, test=50, validation=100),
                          StudyRuns(tracker, tracker.experiment_id("faults")),
                          ObjectiveConfig(epochs=1), spec_for_trial=lambda t: SMALL_DENSE)
    with pytest.raises(Terminated):
        run_trials(study, objective, 1)
    interrupted, retry = study.trials
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["reason"] == "interrupted"
    assert retry.state == TrialState.WAITING  # queued for one retry, as after Ctrl-C


def test_an_error_without_a_stop_signal_stays_a_failure(tmp_path, monkeypatch):
    import nas_mnist.searching.objective as objective_module
    from nas_mnist.processes import signals

    def broken(*args, **kwargs):
        raise TypeError("a real bug")

    monkeypatch.setattr(objective_module, "train_trial", broken)
    monkeypatch.setattr(signals, "_STOP_SIGNALS", [])
    study = in_memory_search(tmp_path, [SMALL_DENSE], 1)
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["reason"] == "TypeError: a real bug"
