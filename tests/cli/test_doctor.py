"""``nas-mnist doctor`` (issue 19, defects 2 and 3): healthy storages are reported and left
alone; a torn journal record is cut and a half-made SQLite schema completed, each after a backup;
a corrupt middle line needs ``--drop-from-line``; each refusal is one line with exit 2."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import optuna
import pytest
from damaged_storages import TORN, make_half_made_sqlite, make_journal
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas_mnist.cli.main import main
from nas_mnist.study.locks import one_search_per_storage
from nas_mnist.study.trial_counts import count_finished


def _doctor(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["doctor", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


def _one_line(err: str) -> str:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_healthy_journal_and_sqlite_are_reported_and_not_written(tmp_path, capsys):
    journal = tmp_path / "j.log"
    content = make_journal(journal)
    records = content.count(b"\n")
    status, out, err = _doctor(capsys, "--storage", f"journal:///{journal}")
    assert status == 0 and err == "" and f"is healthy: {records} records" in out
    assert journal.read_bytes() == content and _backups(journal) == []
    database = tmp_path / "s.db"
    optuna.create_study(storage=f"sqlite:///{database}", study_name="s")
    before = database.read_bytes()
    status, out, _ = _doctor(capsys, "--storage", f"sqlite:///{database}")
    assert status == 0 and "Optuna's tables and indexes are in place" in out
    assert database.read_bytes() == before and _backups(database) == []


def test_a_torn_journal_is_refused_then_backed_up_and_cut_and_the_study_goes_on(
        tmp_path, capsys):
    journal = tmp_path / "j.log"
    content = make_journal(journal)
    lines = content.count(b"\n")
    with open(journal, "ab") as handle:
        handle.write(TORN)
    url = f"journal:///{journal}"
    status = main(["dashboard", "--storage", url])  # any command that opens the storage
    err = _one_line(capsys.readouterr().err)
    assert status == 2 and f"line {lines + 1} has no newline" in err
    assert f"nas-mnist doctor --storage {url}" in err
    status, out, err = _doctor(capsys, "--storage", url)
    assert status == 0 and err == ""
    [backup] = _backups(journal)
    assert backup.read_bytes() == content + TORN and journal.read_bytes() == content
    assert f"Backed up {journal} to {backup}" in out
    assert f"Dropped line {lines + 1} ({len(TORN)} bytes)" in out
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(
        str(journal))))
    study.add_trial(optuna.trial.create_trial(value=7.0))  # appends on a whole line now
    assert len(optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(
        str(journal)))).trials) == 5
    assert _doctor(capsys, "--storage", url)[0] == 0 and len(_backups(journal)) == 1


def test_a_corrupt_middle_line_needs_drop_from_line(tmp_path, capsys):
    journal = tmp_path / "j.log"
    records = make_journal(journal).splitlines(keepends=True)
    records[2] = b"garbage\n"
    damaged = b"".join(records)
    journal.write_bytes(damaged)
    url = f"journal:///{journal}"
    status, out, err = _doctor(capsys, "--storage", url)
    assert status == 2 and out == "" and "line 3 of" in _one_line(err)
    assert f"'nas-mnist doctor --storage {url} --drop-from-line 3'" in err
    assert journal.read_bytes() == damaged and _backups(journal) == []
    status, _, err = _doctor(capsys, "--storage", url, "--drop-from-line", "4")
    assert status == 2 and "pass --drop-from-line 3 or a smaller line" in _one_line(err)
    assert journal.read_bytes() == damaged and _backups(journal) == []
    status, out, err = _doctor(capsys, "--storage", url, "--drop-from-line", "3")
    assert status == 0 and err == "" and f"Dropped lines 3-{len(records)}" in out
    assert "2 records kept" in out
    assert journal.read_bytes() == b"".join(records[:2])
    assert _backups(journal)[0].read_bytes() == damaged
    status, _, err = _doctor(capsys, "--storage", url, "--drop-from-line", "1")
    assert status == 2 and "is healthy" in _one_line(err)  # never writes to a healthy file
    assert journal.read_bytes() == b"".join(records[:2])


def test_a_half_made_sqlite_storage_gets_its_index_after_a_backup(tmp_path, capsys):
    database = tmp_path / "s.db"
    make_half_made_sqlite(database)
    url = f"sqlite:///{database}"
    status = main(["dashboard", "--storage", url])
    err = _one_line(capsys.readouterr().err)
    assert status == 2 and "without the index ix_studies_study_name" in err
    status, out, err = _doctor(capsys, "--storage", url)
    assert status == 0 and err == "" and "Created the index(es) ix_studies_study_name" in out
    assert len(_backups(database)) == 1
    optuna.create_study(storage=url, study_name="s")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(storage=url, study_name="s")


def test_a_half_made_sqlite_storage_with_a_duplicate_study_is_refused(tmp_path, capsys):
    database = tmp_path / "s.db"
    make_half_made_sqlite(database)
    with sqlite3.connect(database) as connection:  # what two workers then made
        connection.executemany("INSERT INTO studies (study_name) VALUES (?)",
                               [("twice",), ("twice",), ("once",)])
    connection.close()
    before = database.read_bytes()
    status, out, err = _doctor(capsys, "--storage", f"sqlite:///{database}")
    assert status == 2 and out == "" and "'twice' appear more than once" in _one_line(err)
    assert database.read_bytes() == before and _backups(database) == []


def test_doctor_refuses_missing_files_wrong_flags_and_a_running_search(tmp_path, capsys):
    status, _, err = _doctor(capsys, "--storage", f"journal:///{tmp_path / 'none.log'}")
    assert status == 2 and "does not exist" in _one_line(err)
    database = tmp_path / "s.db"
    optuna.create_study(storage=f"sqlite:///{database}", study_name="s")
    status, _, err = _doctor(capsys, "--storage", f"sqlite:///{database}", "--drop-from-line",
                             "2")
    assert status == 2 and "--drop-from-line is for journal storages" in _one_line(err)
    journal = tmp_path / "j.log"
    make_journal(journal)
    with open(journal, "ab") as handle:
        handle.write(TORN)
    with one_search_per_storage(f"journal:///{tmp_path / 'other.log'}", "s"), \
            one_search_per_storage(f"sqlite:///{database}", "s"):
        pass  # locks of other files do not matter
    with one_search_per_storage(f"sqlite:///{database}", "s"):
        status, _, err = _doctor(capsys, "--storage", f"sqlite:///{database}")
    assert status == 2 and "a search (or retrain) is running on" in _one_line(err)
    assert journal.read_bytes().endswith(TORN)


def test_a_backup_that_cannot_be_written_changes_nothing(tmp_path, capsys, monkeypatch):
    journal = tmp_path / "j.log"
    make_journal(journal)
    with open(journal, "ab") as handle:
        handle.write(TORN)
    before = journal.read_bytes()

    def full_disk(source, target, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("shutil.copy2", full_disk)
    status, out, err = _doctor(capsys, "--storage", f"journal:///{journal}")
    assert status == 1 and "(No space left on device); nothing was changed" in _one_line(err)
    assert journal.read_bytes() == before and list(tmp_path.glob("j.log.bak-*")) == []


@pytest.mark.slow
def test_search_on_a_torn_journal_exits_2_then_resumes_after_doctor(workdir, real_mnist_path,
                                                                    capsys):
    """The issue's sequence: a search's journal torn, the same command again. It is refused
    before anything is written, and after ``doctor`` the same command finishes the study."""
    journal = workdir / "j.log"

    def search(trials: int) -> int:
        return main(["search", "--trials", str(trials), "--epochs", "1", "--max-train-samples",
                     "500", "--data", str(real_mnist_path), "--space", "small.yaml",
                     "--baselines", "none", "--no-progress", "--final-top-k", "0",
                     "--storage", "journal:///j.log", "--study-name", "s",
                     "--tracking-uri", f"sqlite:///{workdir / 'm.db'}"])

    assert search(1) == 0
    with open(journal, "ab") as handle:
        handle.write(TORN)
    capsys.readouterr()
    before = {path: path.stat().st_mtime_ns for path in workdir.rglob("*")}
    assert search(2) == 2
    out, err = capsys.readouterr()
    assert "ends in a torn record" in _one_line(err) and "Traceback" not in out
    assert {path: path.stat().st_mtime_ns for path in workdir.rglob("*")} == before
    assert main(["doctor", "--storage", "journal:///j.log"]) == 0
    assert search(2) == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(
        str(journal))))
    assert count_finished(study) == 2  # the study-wide budget, as nas-mnist counts it
    assert all(t.state.is_finished() for t in study.trials)


def test_server_storages_are_checked_with_sqlalchemys_inspector(tmp_path):
    """The PostgreSQL/MySQL path of doctor (run here on SQLite URLs): a whole schema is
    healthy, a missing index is reported with the statement that creates it."""
    from nas_mnist.study.storage_repair import _doctor_server
    from nas_mnist.study.storage_url import StorageError, StorageURL

    whole = tmp_path / "whole.db"
    optuna.create_study(storage=f"sqlite:///{whole}", study_name="s")
    assert _doctor_server(StorageURL.parse(f"sqlite:///{whole}")).healthy
    half = tmp_path / "half.db"
    make_half_made_sqlite(half)
    before = half.read_bytes()
    url = StorageURL.parse(f"sqlite:///{half}", check_content=False)
    with pytest.raises(StorageError, match="Create it in the database: CREATE UNIQUE INDEX "
                                           r"ix_studies_study_name ON studies \(study_name\)"):
        _doctor_server(url)
    assert half.read_bytes() == before
