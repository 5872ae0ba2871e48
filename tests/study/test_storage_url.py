"""Storage URLs that SQLAlchemy or Optuna would misread are refused before anything is created:
a ``~`` in a SQLite URL (the check would expand it, SQLAlchemy does not) and a journal URL on a
file that is not an Optuna journal (a SQLite database gave ``UnicodeDecodeError``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nas_mnist.cli.main import main
from nas_mnist.study.storage_url import StorageError, StorageURL
from nas_mnist.tracking.tracker import TrackingError, validate_tracking_uri


def _search(data: Path, storage: str) -> list[str]:
    return ["search", "--trials", "1", "--epochs", "1", "--max-train-samples", "500", "--data",
            str(data), "--space", "small.yaml", "--baselines", "none", "--no-progress",
            "--storage", storage, "--tracking-uri", f"sqlite:///{Path.cwd() / 'm.db'}"]


def _sqlite_database(path: Path) -> bytes:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    connection.close()
    return path.read_bytes()


def test_a_tilde_in_a_sqlite_url_is_refused_with_the_path_written_out():
    home = Path("~").expanduser()
    with pytest.raises(StorageError, match=f"write the path out: sqlite:///{home}/t.db"):
        StorageURL.parse("sqlite:///~/t.db")
    with pytest.raises(TrackingError, match="SQLAlchemy does not expand '~'"):
        validate_tracking_uri("sqlite:///~/m.db")
    assert StorageURL.parse(f"sqlite:///{home}/t.db").path == home / "t.db"


def test_search_with_a_tilde_sqlite_url_exits_2_and_creates_nothing(workdir, real_mnist_path,
                                                                     capsys):
    before = sorted(workdir.rglob("*"))
    assert main(_search(real_mnist_path, "sqlite:///~/nas-mnist-tilde-test.db")) == 2
    err = capsys.readouterr().err
    assert "does not expand '~'" in err and len(err.strip().splitlines()) == 1
    assert sorted(workdir.rglob("*")) == before  # no MLflow store, no folder named '~'
    assert not Path("~/nas-mnist-tilde-test.db").expanduser().exists()


def test_a_journal_url_on_a_sqlite_database_is_refused(tmp_path):
    database = tmp_path / "m.db"
    content = _sqlite_database(database)
    with pytest.raises(StorageError, match=f"is a SQLite database, not an Optuna journal; pass "
                                           f"--storage sqlite:///{database}"):
        StorageURL.parse(f"journal:///{database}")
    assert database.read_bytes() == content


def test_a_journal_url_on_another_file_is_refused_but_an_empty_or_real_journal_passes(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    other = tmp_path / "notes.txt"
    other.write_bytes(b"\xff\xfe not json")
    with pytest.raises(StorageError, match="is not an Optuna journal"):
        StorageURL.parse(f"journal:///{other}")
    empty = tmp_path / "empty.log"
    empty.touch()
    assert StorageURL.parse(f"journal:///{empty}").path == empty
    journal = tmp_path / "j.log"
    optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))), study_name="s")
    assert StorageURL.parse(f"journal:///{journal}", must_exist=True).path == journal


def test_search_with_a_journal_url_on_a_sqlite_file_exits_2_and_creates_nothing(
        workdir, real_mnist_path, capsys):
    content = _sqlite_database(workdir / "s.db")
    before = sorted(workdir.rglob("*"))
    assert main(_search(real_mnist_path, "journal:///s.db")) == 2
    out, err = capsys.readouterr()
    assert "is a SQLite database, not an Optuna journal" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert sorted(workdir.rglob("*")) == before and (workdir / "s.db").read_bytes() == content
