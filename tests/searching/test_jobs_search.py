"""``nas-mnist search --jobs 2`` end to end on a journal storage: an exact budget trained by
several worker processes, one MLflow parent run, and a SIGKILLed worker's trial recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import REPO_ROOT, TINY_SPACE, mlflow_runs

from nas_mnist.processes.quiet_start import TENSORFLOW_STARTUP_NOISE
from nas_mnist.study.storage import make_storage
from nas_mnist.trial_attributes import REASON_ATTR, RUN_ATTR, WORKER_ATTR

pytestmark = pytest.mark.slow

# every trial trains (no invalid architectures), in seconds: support's tiny space, 2 conv layers
TINY = {**TINY_SPACE, "conv": {**TINY_SPACE["conv"], "depth": [2]}}


def _search(folder: Path, data: Path, trials: int, epochs: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "nas_mnist", "search", "--jobs", "2", "--trials",
               str(trials), "--trials-per-worker", "2", "--epochs", str(epochs),
               "--max-train-samples", "2000", "--data", str(data), "--space", "tiny.yaml",
               "--storage", "journal:///s.log", "--study-name", "demo", "--baselines", "none",
               "--tracking-uri", f"sqlite:///{folder / 'm.db'}", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="demo",
                             storage=make_storage(f"journal:///{folder / 's.log'}"))


def _worker_pid(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs[WORKER_ATTR].split(":")[1])


def test_jobs_share_an_exact_budget_and_survive_a_killed_worker(tmp_path, real_mnist_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    search = _search(tmp_path, real_mnist_path, 6)
    output = search.communicate(timeout=600)[0]
    assert search.returncode == 0, output
    study = _study(tmp_path)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 6
    # Nothing else, but for a rare "surplus" trial (two workers asked for the last trial at once;
    # the one with the higher number gives way before training, engine/budget.py).
    others = [t for t in study.trials if t not in finished]
    assert all(str(t.user_attrs.get(REASON_ATTR)).startswith("surplus") for t in others)
    assert len({_worker_pid(t) for t in finished}) >= 2
    assert search.pid not in {_worker_pid(t) for t in finished}  # the search trains nothing
    parents, children = mlflow_runs(f"sqlite:///{tmp_path / 'm.db'}", "demo")
    assert len(parents) == 1 and len(children) == 6
    assert {r.data.tags.get("mlflow.parentRunId") for r in children} == {parents[0].info.run_id}
    assert all(r.info.status != "RUNNING" for r in parents + children)
    assert all(len(r.inputs.dataset_inputs) == 1 for r in parents + children)  # workers' too

    # Resume to 9 and SIGKILL a worker in the middle of its trial.
    search = _search(tmp_path, real_mnist_path, 9)
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline and search.poll() is None:
        running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
        # Its MLflow run exists, and its model is being built or trained: kill the worker now.
        if running and RUN_ATTR in running[0].user_attrs:
            victim = running[0]
            os.kill(_worker_pid(victim), signal.SIGKILL)
        time.sleep(0.2)
    output = search.communicate(timeout=600)[0]
    assert victim is not None, output
    assert search.returncode == 0, output
    study = _study(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 9
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs[REASON_ATTR].startswith("killed: its worker")
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    parents, children = mlflow_runs(f"sqlite:///{tmp_path / 'm.db'}", "demo")
    # 9 finished + the killed one, closed as KILLED (surplus trials get no run)
    assert len(children) == 10
    assert all(r.info.status != "RUNNING" for r in parents + children)


def _workers_of(pid: int) -> list[int]:
    """The PIDs of the "spawn" worker processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stop_when_their_supervisor_is_sigkilled(tmp_path, real_mnist_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    # 4 epochs: a 1-epoch trial (2 s) once completed between being seen RUNNING and the kill,
    # on a loaded machine (the study is read and the workers listed in between).
    search = _search(tmp_path, real_mnist_path, 3, epochs=4)
    deadline = time.monotonic() + 300
    victim, workers = None, []
    while victim is None and time.monotonic() < deadline and search.poll() is None:
        running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,)) \
            if (tmp_path / "s.log").exists() else []
        if running and RUN_ATTR in running[0].user_attrs:
            workers = _workers_of(search.pid)
            victim = running[0]
            search.kill()  # as the out-of-memory killer would
        time.sleep(0.2)
    output = search.communicate(timeout=120)[0]  # EOF: the workers, which share its stdout, ended
    assert victim is not None and _worker_pid(victim) in workers, output
    # No traceback here either (conftest's rule): a worker that finds the SQLite MLflow store
    # locked by another one tries again (docs/reliability.md, row 9).
    deadline = time.monotonic() + 60  # a worker's clean-up: re-queue, close its MLflow run
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]
    interrupted = _study(tmp_path).trials[victim.number]
    assert interrupted.state == TrialState.FAIL  # closed by its own worker, not trained on
    assert interrupted.user_attrs[REASON_ATTR] == "interrupted"

    search = _search(tmp_path, real_mnist_path, 3, epochs=4)  # the same command finishes it
    output = search.communicate(timeout=600)[0]
    assert search.returncode == 0, output
    assert "Traceback" not in output
    # The workers hide TensorFlow's C++ start-up lines, as the single process does.
    assert not [n for n in TENSORFLOW_STARTUP_NOISE if n in output]
    study = _study(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    parents, children = mlflow_runs(f"sqlite:///{tmp_path / 'm.db'}", "demo")
    left = [(r.info.run_id, r.data.tags) for r in parents + children if r.info.status == "RUNNING"]
    # the dead parent's too; what is left, with the trials, says why when it fails
    assert not left, (left, [(t.number, t.state, t.user_attrs) for t in study.trials], output)
