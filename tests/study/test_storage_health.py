"""A damaged storage file is refused before anything writes to it (issue 19, defects 2 and 3):
a journal with a torn last record or a corrupt line, and a SQLite file whose schema creation
was cut (``studies`` without its unique index ``ix_studies_study_name``)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import optuna
import pytest
from damaged_storages import TORN, make_half_made_sqlite, make_journal
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas_mnist.study.storage import TornJournalError, load_existing_study, make_storage
from nas_mnist.study.storage_health import (
    OPTUNA_INDEXES,
    OPTUNA_TABLES,
    scan_journal,
    scan_journal_settled,
)
from nas_mnist.study.storage_repair import doctor
from nas_mnist.study.storage_url import StorageError, StorageURL


def test_optuna_alone_destroys_a_journal_by_appending_after_a_torn_record(tmp_path):
    """The defect, reproduced with Optuna alone: the torn record is skipped, the next append
    joins it, and from then on every read fails."""
    journal = tmp_path / "j.log"
    make_journal(journal)
    with open(journal, "ab") as handle:
        handle.write(TORN)
    storage = JournalStorage(JournalFileBackend(str(journal)))  # reads: the torn line skipped
    study = optuna.load_study(study_name="s", storage=storage)
    study.set_user_attr("a", 1)  # appended onto the torn line: a line that is not JSON
    with pytest.raises(json.JSONDecodeError):
        study.set_user_attr("b", 2)  # a line after it: the reader raises from now on
    with pytest.raises(json.JSONDecodeError):
        optuna.load_study(study_name="s",
                          storage=JournalStorage(JournalFileBackend(str(journal))))


def test_a_torn_last_journal_record_is_refused_naming_the_file_and_line(tmp_path):
    journal = tmp_path / "j.log"
    lines = make_journal(journal).count(b"\n")
    with open(journal, "ab") as handle:
        handle.write(TORN)
    before = journal.read_bytes()
    url = f"journal:///{journal}"
    for opening in (lambda: StorageURL.parse(url), lambda: make_storage(url),
                    lambda: load_existing_study(url, "s")):
        with pytest.raises(StorageError) as refused:
            opening()
        message = str(refused.value)
        assert f"{journal} ends in a torn record (line {lines + 1} has no newline" in message
        assert f"Run 'nas-mnist doctor --storage {url}'" in message
        assert "\n" not in message
    assert journal.read_bytes() == before  # nothing appended after the torn record


def test_a_corrupt_middle_journal_line_is_refused_naming_the_line(tmp_path):
    journal = tmp_path / "j.log"
    records = make_journal(journal).splitlines(keepends=True)
    records[2] = b'{"op_code": 5, "broken\n'
    journal.write_bytes(b"".join(records))
    with pytest.raises(StorageError, match=f"line 3 of {journal} is not a JSON record, and "
                                           f"{len(records) - 3} line\\(s\\) follow it"):
        StorageURL.parse(f"journal:///{journal}", must_exist=True)
    records[2] = b"\n"  # a blank line is no record either (Optuna's reader fails on it)
    journal.write_bytes(b"".join(records))
    with pytest.raises(StorageError, match="line 3 of"):
        StorageURL.parse(f"journal:///{journal}")


def test_a_healthy_journal_passes_and_damage_after_an_earlier_scan_is_still_found(tmp_path):
    journal = tmp_path / "j.log"
    make_journal(journal)
    url = f"journal:///{journal}"
    assert StorageURL.parse(url).path == journal
    study = optuna.load_study(study_name="s", storage=make_storage(url))
    study.add_trial(optuna.trial.create_trial(value=5.0))  # grows past the scanned bytes
    assert StorageURL.parse(url).path == journal  # scans only the new records
    good = journal.read_bytes()
    assert scan_journal(journal).good_bytes == len(good)
    with open(journal, "ab") as handle:
        handle.write(TORN)
    with pytest.raises(StorageError, match="torn record"):
        StorageURL.parse(url)
    journal.write_bytes(good[:-1] + b"X\n")  # same size and more, last record changed
    with pytest.raises(StorageError, match="its last, is not a JSON record"):
        StorageURL.parse(url)


def test_optuna_indexes_are_those_of_a_new_optuna_storage(tmp_path):
    database = tmp_path / "s.db"
    optuna.storages.RDBStorage(f"sqlite:///{database}").engine.dispose()
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    connection.close()
    named = {name: (table, sql.startswith("CREATE UNIQUE"), sql)
             for kind, name, table, sql in rows if kind == "index" and sql}
    assert named == OPTUNA_INDEXES
    assert {name for kind, name, _, _ in rows if kind == "table"} == OPTUNA_TABLES


def test_a_sqlite_storage_without_its_unique_study_index_is_refused(tmp_path):
    database = tmp_path / "s.db"
    make_half_made_sqlite(database)
    before = database.read_bytes()
    url = f"sqlite:///{database}"
    for opening in (lambda: StorageURL.parse(url), lambda: make_storage(url)):
        with pytest.raises(StorageError) as refused:
            opening()
        message = str(refused.value)
        assert f"{database} has Optuna's tables without the index ix_studies_study_name" in message
        assert f"Run 'nas-mnist doctor --storage {url}'" in message and "\n" not in message
    assert database.read_bytes() == before


def test_new_empty_whole_and_foreign_sqlite_files(tmp_path):
    new = tmp_path / "new.db"
    assert StorageURL.parse(f"sqlite:///{new}").path == new and not new.exists()
    make_storage(f"sqlite:///{new}").engine.dispose()  # created normally
    assert StorageURL.parse(f"sqlite:///{new}").path == new  # whole: passes
    empty = tmp_path / "empty.db"
    empty.touch()
    assert StorageURL.parse(f"sqlite:///{empty}").path == empty
    mlflow_like = tmp_path / "m.db"
    with sqlite3.connect(mlflow_like) as connection:
        connection.execute("CREATE TABLE runs (id TEXT)")
    connection.close()
    with pytest.raises(StorageError, match=r"holds no Optuna study \(no 'studies' table; its "
                                           r"tables: runs\): it is not an Optuna storage"):
        StorageURL.parse(f"sqlite:///{mlflow_like}")


def _creation_statements(tmp_path: Path) -> list[str]:
    """The CREATE statements, in order, that a new Optuna SQLite storage is made with."""
    import sqlalchemy

    statements: list[str] = []

    def record(connection, cursor, statement, *args):
        if statement.lstrip().upper().startswith("CREATE"):
            statements.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'whole.db'}").engine.dispose()
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    return statements


def test_a_sqlite_storage_cut_after_any_creation_statement_is_usable_or_refused_then_repaired(
        tmp_path):
    """Ctrl-C between any two of Optuna's CREATE statements: the file is either used (the rest
    is created, one study per name) or refused and repaired by ``doctor``; never two studies
    of one name."""
    statements = _creation_statements(tmp_path)
    assert len(statements) >= 10
    refused_after = []
    for cut in range(len(statements) + 1):
        database = tmp_path / f"cut{cut}.db"
        with sqlite3.connect(database) as connection:
            for statement in statements[:cut]:
                connection.execute(statement)
        connection.close()
        url = f"sqlite:///{database}"
        try:
            StorageURL.parse(url)
        except StorageError:
            refused_after.append(cut)
            assert not doctor(url).healthy
        storage = make_storage(url)
        optuna.create_study(storage=storage, study_name="s")
        with pytest.raises(optuna.exceptions.DuplicatedStudyError):
            optuna.create_study(storage=storage, study_name="s")
        assert [s.study_name for s in optuna.get_all_study_summaries(storage, False)] == ["s"]
        storage.engine.dispose()
    assert [statements[cut - 1].split("(")[0].strip() for cut in refused_after] == [
        "CREATE TABLE studies", "CREATE TABLE trials"]


def test_a_record_being_appended_under_optunas_lock_is_not_taken_for_a_torn_one(tmp_path):
    """A worker of a running search may be half-way through an append when another process
    opens the journal: while Optuna's lock file is there, the scan waits for the newline."""
    import threading

    journal = tmp_path / "j.log"
    make_journal(journal)
    record = json.dumps({"op_code": 1, "worker_id": "w", "study_id": 0}).encode() + b"\n"
    lock = Path(f"{journal}.lock")
    lock.symlink_to(journal)  # what JournalFileSymlinkLock holds while appending
    with open(journal, "ab") as handle:
        handle.write(record[:10])

    def finish() -> None:
        with open(journal, "ab") as handle:
            handle.write(record[10:])
        lock.unlink()

    writer = threading.Timer(0.3, finish)
    writer.start()
    try:
        assert StorageURL.parse(f"journal:///{journal}").path == journal
    finally:
        writer.join()
    assert scan_journal_settled(journal).healthy
    lock.symlink_to(journal)  # a lock left by a writer killed mid-append: torn after the wait
    with open(journal, "ab") as handle:
        handle.write(TORN)
    started = time.monotonic()
    assert scan_journal_settled(journal, wait=0.2).torn_end
    assert 0.2 <= time.monotonic() - started < 2


def test_an_open_journal_storage_never_appends_after_a_record_torn_later(tmp_path):
    """A record torn after the storage was opened (a full disk on this very process's write,
    another process killed mid-write): the next append is refused, nothing is written."""
    journal = tmp_path / "j.log"
    make_journal(journal)
    study = optuna.load_study(study_name="s", storage=make_storage(f"journal:///{journal}"))
    study.set_user_attr("before", 1)  # appends while whole
    with open(journal, "ab") as handle:
        handle.write(TORN)
    torn = journal.read_bytes()
    with pytest.raises(TornJournalError, match="ends in a torn record") as refused:
        study.set_user_attr("after", 2)
    assert f"nas-mnist doctor --storage journal:///{journal}" in refused.value.hint
    assert journal.read_bytes() == torn and not Path(f"{journal}.lock").exists()
