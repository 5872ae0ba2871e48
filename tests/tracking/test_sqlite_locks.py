"""A SQLite tracking store that another process holds locked (``search --jobs N``): the call is
made again, and MLflow's traceback of the lock error is not printed."""

from __future__ import annotations

import logging
import sqlite3

import pytest
import sqlalchemy.exc
from mlflow.exceptions import MlflowException

from nas_mnist.tracking import sqlite_locks
from nas_mnist.tracking.sqlite_locks import call_retrying_locks, is_database_locked
from nas_mnist.tracking.tracker import Tracker


def _locked_error() -> MlflowException:
    """The error MLflow's session maker raises for SQLite's "database is locked"."""
    raw = sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError(
        "database is locked"))
    try:
        raise MlflowException(message=raw) from raw
    except MlflowException as exc:
        return exc


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(sqlite_locks.time, "sleep", slept.append)
    return slept


def test_is_database_locked_looks_through_the_causes():
    assert is_database_locked(_locked_error())
    assert is_database_locked(sqlite3.OperationalError("database is locked"))
    assert not is_database_locked(sqlite3.OperationalError("no such table: runs"))
    assert not is_database_locked(None)


def test_a_call_that_found_the_store_locked_is_made_again(no_sleep):
    calls = []

    def log(value):
        calls.append(value)
        if len(calls) < 3:
            raise _locked_error()
        return value

    assert call_retrying_locks(log, 7) == 7
    assert calls == [7, 7, 7] and no_sleep == list(sqlite_locks.LOCK_RETRY_DELAYS[:2])


def test_other_errors_and_a_lock_outlasting_the_retries_are_raised(no_sleep):
    def broken():
        raise ValueError("bad metric")

    with pytest.raises(ValueError):
        call_retrying_locks(broken)
    assert no_sleep == []

    def locked():
        raise _locked_error()

    with pytest.raises(MlflowException, match="database is locked"):
        call_retrying_locks(locked)
    assert no_sleep == list(sqlite_locks.LOCK_RETRY_DELAYS)
    no_sleep.clear()
    with pytest.raises(MlflowException):
        call_retrying_locks(locked, retry=False)  # a clean-up after a stop signal
    assert no_sleep == []


def test_the_tracker_retries_a_locked_store_and_mlflow_prints_no_traceback(
        tmp_path, no_sleep, monkeypatch, caplog):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = tracker.client.create_experiment("demo")
    run_id = tracker.client.create_run(experiment_id).info.run_id
    real_log_batch = tracker.client._client.log_batch
    tries = []

    def log_batch(*args, **kwargs):  # as MLflow does: log the error with traceback, raise
        tries.append(1)
        if len(tries) == 1:
            error = _locked_error()
            try:
                raise error
            except MlflowException:
                logging.getLogger(sqlite_locks.MLFLOW_DB_LOGGER).exception(
                    "SQLAlchemy database error. The following exception is caught.\n%s", error)
            raise error
        return real_log_batch(*args, **kwargs)

    monkeypatch.setattr(tracker.client._client, "log_batch", log_batch)
    with caplog.at_level(logging.WARNING):
        tracker.log_metrics(run_id, {"val_accuracy": 0.5})
    assert len(tries) == 2
    assert tracker.client.get_run(run_id).data.metrics == {"val_accuracy": 0.5}
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]

    tracker.fail_fast()  # a clean-up after a stop signal: one try
    tries.clear()
    with pytest.raises(MlflowException):
        monkeypatch.setattr(tracker.client._client, "log_batch",
                            lambda *a, **k: tries.append(1) or (_ for _ in ()).throw(
                                _locked_error()))
        tracker.log_metrics(run_id, {"val_accuracy": 0.6})
    assert len(tries) == 1
