"""Storage files damaged the way issue 19 found them: a journal with a torn last record, an
Optuna SQLite file whose creation was cut before ``ix_studies_study_name``. Shared by
``tests/study/test_storage_health.py`` and ``tests/cli/test_doctor.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

TORN = b'{"op_code":6,"worker_id":"w","trial_id":0,"state":1,"val'
"""The start of a record, cut as a full disk cuts a write (no closing brace, no newline)."""


def make_journal(path: Path, trials: int = 4) -> bytes:
    """A journal with one study ``s`` and ``trials`` complete trials; its bytes."""
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))),
                                study_name="s")
    for number in range(trials):
        study.add_trial(optuna.trial.create_trial(value=float(number)))
    return path.read_bytes()


def make_half_made_sqlite(path: Path) -> None:
    """An Optuna SQLite storage without ``ix_studies_study_name``, as a cut creation leaves it."""
    optuna.storages.RDBStorage(f"sqlite:///{path}").engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("DROP INDEX ix_studies_study_name")
    connection.close()
