"""One worker per SQLite storage (an OS lock, not a poll), stores that survive searches started
in the same second, and one parent run for workers that attach together."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import mlflow_runs

from nas_mnist.filelock import LockHeldError, file_lock
from nas_mnist.study import locks
from nas_mnist.study.locks import StorageLockedError, one_search_per_storage
from nas_mnist.study.trial_counts import count_finished


def test_single_worker_refuses_a_second_holder_at_once_and_removes_its_lock_file(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with one_search_per_storage(url, "demo"):
        assert (tmp_path / "s.db.lock").exists()
        with pytest.raises(StorageLockedError, match="use PostgreSQL|PostgreSQL storage"):
            with one_search_per_storage(url, "demo"):
                pass
    assert list(tmp_path.iterdir()) == []
    with one_search_per_storage(url, "demo"):  # free again
        pass


def test_single_worker_is_a_no_op_for_server_storages(tmp_path, monkeypatch):
    def no_file_lock(path, *args, **kwargs):
        raise AssertionError(f"a server storage took the file lock {path}")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locks, "file_lock", no_file_lock)
    url = "postgresql://u:p@127.0.0.1:1/db"  # nothing listens there: nothing may connect
    entered = []
    with one_search_per_storage(url, "demo"):
        with one_search_per_storage(url, "demo"):  # a second holder is not refused
            entered.append(url)
    assert entered == [url]
    assert list(tmp_path.iterdir()) == []  # no lock file


def test_a_lock_dies_with_its_holder_even_on_sigkill(tmp_path):
    lock = tmp_path / "s.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from nas_mnist.filelock import file_lock\n"
        f"with file_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError):
            with file_lock(lock):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with file_lock(lock, timeout=5):  # the kernel released it; the stale file is reused
        pass
    assert not lock.exists()


@pytest.mark.slow
def test_searches_started_together_keep_both_stores_usable_and_one_worker_per_study(
        workdir, real_mnist_path):
    """Five searches in the same second on fresh stores: two on one SQLite study (exactly one
    may run) and three on studies of their own; all five share one new MLflow SQLite store."""
    uri = f"sqlite:///{workdir / 'm.db'}"

    def command(storage: str, study: str) -> list[str]:
        return [sys.executable, "-m", "nas_mnist", "search", "--trials", "1", "--epochs", "1",
                "--max-train-samples", "500", "--data", str(real_mnist_path), "--space",
                "small.yaml", "--baselines", "none", "--storage", storage, "--study-name",
                study, "--tracking-uri", uri, "--no-progress"]

    commands = [command("sqlite:///s.db", "shared"), command("sqlite:///s.db", "shared"),
                *(command(f"sqlite:///s{i}.db", f"own{i}") for i in (1, 2, 3))]
    start = time.time() + 3  # each waits for the same instant after its interpreter started
    wrapper = ("import sys, time\nwhile time.time() < float(sys.argv[1]): time.sleep(0.005)\n"
               "import runpy; sys.argv = sys.argv[2:]; runpy.run_module('nas_mnist', "
               "run_name='__main__')")
    processes = [subprocess.Popen([sys.executable, "-c", wrapper, str(start), *c[2:]],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in commands]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    codes = [p.returncode for p in processes]
    log = "\n---\n".join(outputs)

    # The shared study: one search ran it, the other was refused at once with exit 2.
    assert sorted(codes[:2]) == [0, 2], log
    refused = outputs[codes.index(2)]
    assert "another search is running on sqlite:///s.db" in refused and "PostgreSQL" in refused
    assert codes[2:] == [0, 0, 0], log
    for storage, study_name in [("s.db", "shared"), ("s1.db", "own1"), ("s2.db", "own2"),
                                ("s3.db", "own3")]:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage}")
        states = [t.state for t in study.trials]
        assert count_finished(study) == 1, states  # impossible architectures uncounted
        assert TrialState.RUNNING not in states
        # The MLflow store is usable: every study's runs are there and closed.
        parents, children = mlflow_runs(uri, study_name)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert all(r.info.status != "RUNNING" for r in children)
    assert not list(Path(workdir).glob("*.lock"))


def test_workers_attaching_together_share_one_parent_run(tmp_path, real_mnist_path,
                                                         monkeypatch):
    # Two workers of one study (no parent run yet, as a study made by optuna.create_study)
    # attach at the same moment: they take turns under the storage's lock, so the second finds
    # the run the first created. A slow run creation widens the window in which both would see
    # none (without the lock, this makes two parent runs).
    import threading

    from nas_mnist.searching import runner
    from nas_mnist.searching.settings import SearchSettings
    from nas_mnist.study.storage import make_storage
    from nas_mnist.tracking.tracker import Tracker

    storage = f"journal:///{tmp_path / 's.log'}"
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    optuna.create_study(study_name="demo", storage=make_storage(storage), direction="maximize")
    Tracker(uri).check()  # the store's tables, made once
    create = Tracker.create_parent_run

    def slow_create(self, *args, **kwargs):
        time.sleep(1.0)
        return create(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "create_parent_run", slow_create)
    settings = SearchSettings(storage=storage, study_name="demo", tracking_uri=uri,
                              data=str(real_mnist_path), seed=0)
    start, parents, errors = threading.Barrier(2), [], []

    def worker() -> None:
        try:
            study = optuna.load_study(study_name="demo", storage=make_storage(storage))
            start.wait()
            parents.append(runner._attach_parent_run(settings, Tracker(uri), study).parent_run_id)
        except Exception as error:  # reported below, with the other worker's result
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(parents) == 2 and parents[0] == parents[1], (errors, parents)
    runs, _ = mlflow_runs(uri, "demo")
    assert [r.info.run_id for r in runs] == parents[:1]
