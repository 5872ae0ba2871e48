"""``--jobs N``: the supervisor's budget, replacement and GPU assignment (fake workers, no
training), the journal storage, and the settings' checks."""

from __future__ import annotations

import socket

import optuna
import pytest
from optuna.trial import TrialState

from nas_mnist.errors import InputError
from nas_mnist.processes.supervisor import (
    MAX_WORKER_CRASHES,
    Supervisor,
    SupervisorConfig,
    WorkersCrashingError,
    gpu_for_slot,
)
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.study.locks import StorageLockedError, one_search_per_storage, storage_lock
from nas_mnist.study.storage import (
    StorageError,
    load_existing_study,
    make_storage,
    validate_storage_url,
)
from nas_mnist.trial_attributes import WORKER_ATTR

HOST = socket.gethostname()


class FakeWorker:
    """Claims a trial when started, stays alive for ``polls`` looks, then ends it (or dies)."""

    def __init__(self, study: optuna.Study, pid: int, polls: int = 2, exitcode: int = 0,
                 state: TrialState = TrialState.COMPLETE) -> None:
        self.study, self.pid, self.polls, self._exit, self.state = (
            study, pid, polls, exitcode, state)
        self.exitcode: int | None = None
        self.trial = study.ask()
        self.trial.set_user_attr(WORKER_ATTR, f"{HOST}:{pid}")
        self.terminated = False

    def is_alive(self) -> bool:
        if self.exitcode is not None:
            return False
        self.polls -= 1
        if self.polls > 0:
            return True
        if self._exit == 0:
            self.study.tell(self.trial, 0.5 if self.state == TrialState.COMPLETE else None,
                            state=self.state)
        self.exitcode = self._exit  # a crash leaves the trial RUNNING
        return False

    def terminate(self) -> None:
        self.terminated = True
        self.study.tell(self.trial, state=TrialState.FAIL)
        self.exitcode = 130

    def kill(self) -> None:
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        pass


def supervise(study, jobs, trials, make=None, **config):
    started, concurrent, recovered, workers = [], [], [], []

    def start_worker(slot, serial, gpu):
        concurrent.append(len(supervisor.slots) + 1)
        worker = (make or FakeWorker)(study, 1000 + serial)
        started.append((slot, serial, gpu))
        workers.append(worker)
        return worker

    def recover():  # what recovery.recover_dead_trials does: fail the dead workers' trials
        for worker in workers:
            if worker.exitcode not in (None, 0) and worker.trial.number in {
                    t.number for t in study.get_trials(states=(TrialState.RUNNING,))}:
                study.tell(worker.trial, state=TrialState.FAIL)
        recovered.append(True)

    supervisor = Supervisor(study, SupervisorConfig(jobs=jobs, trials=trials, poll_seconds=0,
                                                    **config),
                            start_worker, recover=recover)
    return supervisor, started, concurrent, recovered


def test_the_budget_is_exact_and_never_more_than_jobs_workers_run():
    study = optuna.create_study(direction="maximize")
    supervisor, started, concurrent, _ = supervise(study, jobs=3, trials=7)
    outcome = supervisor.run()
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 7
    assert len(study.trials) == 7  # no surplus trial was even started
    assert outcome.started == 7 and max(concurrent) == 3
    assert len(set(outcome.pids)) == 7


def test_a_resumed_study_runs_only_the_remaining_trials():
    study = optuna.create_study(direction="maximize")
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(value=0.1))
    supervisor, started, _, _ = supervise(study, jobs=2, trials=5)
    supervisor.run()
    assert len(started) == 1 and len(study.trials) == 5


def test_gpus_go_round_robin_by_slot_and_replacements_keep_their_slots_gpu():
    assert [gpu_for_slot(("0", "1"), s) for s in range(5)] == ["0", "1", "0", "1", "0"]
    assert gpu_for_slot((), 3) is None
    study = optuna.create_study(direction="maximize")
    supervisor, started, _, _ = supervise(study, jobs=3, trials=9, gpus=("0", "1"))
    supervisor.run()
    assert {(slot, gpu) for slot, _, gpu in started} == {(0, "0"), (1, "1"), (2, "0")}


def test_a_crashed_worker_is_recovered_and_replaced():
    study = optuna.create_study(direction="maximize")
    crashed = []

    def make(study, pid):
        crash = not crashed
        crashed.append(pid)
        return FakeWorker(study, pid, exitcode=-9 if crash else 0)

    supervisor, started, _, recovered = supervise(study, jobs=2, trials=4, make=make)
    outcome = supervisor.run()
    assert outcome.crashed == 1 and recovered == [True]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert len(study.get_trials(states=(TrialState.FAIL,))) == 1


def test_workers_that_keep_crashing_stop_the_search():
    study = optuna.create_study(direction="maximize")
    supervisor, _, _, _ = supervise(
        study, jobs=1, trials=10, make=lambda s, pid: FakeWorker(s, pid, exitcode=1))
    with pytest.raises(WorkersCrashingError, match="died"):
        supervisor.run()
    assert supervisor.outcome.crashed == MAX_WORKER_CRASHES


def test_failed_trials_in_a_row_stop_the_search():
    study = optuna.create_study(direction="maximize")
    supervisor, started, _, _ = supervise(
        study, jobs=2, trials=50, max_consecutive_failures=3,
        make=lambda s, pid: FakeWorker(s, pid, state=TrialState.FAIL))
    outcome = supervisor.run()
    assert outcome.stopped_for_failures
    assert len(started) < 50


def test_an_interrupt_stops_every_worker():
    study = optuna.create_study(direction="maximize")
    workers = []

    def make(study, pid):
        workers.append(FakeWorker(study, pid, polls=10**9))
        if len(workers) == 2:
            raise KeyboardInterrupt
        return workers[-1]

    supervisor, _, _, _ = supervise(study, jobs=2, trials=4, make=make)
    with pytest.raises(KeyboardInterrupt):
        supervisor.run()
    assert workers[0].terminated and not supervisor.slots


def test_jobs_settings_are_checked():
    assert SearchSettings(gpus="0, 1").gpu_ids == ("0", "1")
    assert SearchSettings(gpus=[2]).gpu_ids == ("2",)
    with pytest.raises(InputError, match="--gpus"):
        SearchSettings(gpus="cuda:0")
    with pytest.raises(InputError, match="--jobs"):
        SearchSettings(jobs=0)
    with pytest.raises(InputError, match="--trials-per-worker"):
        SearchSettings(trials_per_worker=0)


def test_jobs_refuse_a_sqlite_storage_before_creating_anything(tmp_path, monkeypatch):
    import nas_mnist

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="journal:///"):
        nas_mnist.search(jobs=2, storage="sqlite:///s.db", tracking_uri="sqlite:///m.db")
    assert list(tmp_path.iterdir()) == []


def test_a_journal_storage_holds_a_study_and_takes_one_search(tmp_path):
    url = f"journal:///{tmp_path}/study.log"
    assert validate_storage_url(url) == url
    with pytest.raises(StorageError, match="does not exist"):
        validate_storage_url(url, must_exist=True)
    with pytest.raises(StorageError, match="folder"):
        validate_storage_url(f"journal:///{tmp_path}/missing/study.log")
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    study.add_trial(optuna.trial.create_trial(value=1.0))
    assert load_existing_study(url, "s").trials[0].value == 1.0
    with storage_lock(url, "seed:s", timeout=1):
        pass
    with one_search_per_storage(url, "s"):
        with pytest.raises(StorageLockedError, match="--jobs"):
            with one_search_per_storage(url, "s"):
                pass
