"""Every flag checked before anything exists: exit 2, one line naming the flag or file, nothing
created. The same checks serve the Python API (``settings.validate_search_settings``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nas_mnist.cli.main import main
from nas_mnist.searching.settings import SearchSettings, validate_search_settings
from nas_mnist.searching.validation import (
    MAX_SEED,
    SettingsError,
    validate_seed,
    validate_study_name,
)
from nas_mnist.study.storage import StorageError
from nas_mnist.tracking.tracker import TrackingError


def search(data: Path, *flags: str) -> list[str]:
    return ["search", "--trials", "1", "--epochs", "1", "--max-train-samples", "500", "--data",
            str(data), "--space", "small.yaml", "--baselines", "none", "--no-progress",
            "--tracking-uri", f"sqlite:///{Path.cwd() / 'm.db'}", *flags]


BAD_SEARCH_FLAGS = {
    "storage_is_a_folder": (["--storage", "sqlite:///folder"], "--storage sqlite:///folder"),
    "storage_not_sqlite": (["--storage", "sqlite:///notes.txt"], "is not a SQLite database"),
    "storage_driver_missing": (["--storage", "mysql://user:secret@127.0.0.1/db"],
                               "driver for mysql is not installed"),
    "tracking_scheme": (["--tracking-uri", "foo://bar"], "--tracking-uri foo://bar: unknown"),
    "tracking_folder_missing": (["--tracking-uri", "sqlite:////nonexistent/dir/m.db"],
                                "the folder /nonexistent/dir does not exist"),
    "seed_huge": (["--seed", "99999999999"], "--seed 99999999999"),
    "seed_numpy_limit": (["--seed", "4294967295"], f"from 0 to {MAX_SEED}"),
    "seed_negative": (["--seed", "-1"], "--seed -1"),
    "study_name_empty": (["--study-name", ""], "--study-name '': the name is empty"),
    "study_name_long": (["--study-name", "x" * 600], "--study-name: 600 characters"),
    "tuner_dir_file": (["--engine", "keras-tuner", "--tuner-dir", "notes.txt"],
                       "--tuner-dir notes.txt"),
    # Issue 19: a named pipe waited for a writer without limit; a GPU id without a GPU behind
    # it trained on the CPU, silently (no machine here has 100 GPUs).
    "data_is_a_fifo": (["--data", "pipe"], "pipe is not a regular file"),
    "gpus_not_visible": (["--gpus", "99"], "--gpus 99: "),
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCH_FLAGS))
def test_bad_search_flag_exits_2_with_one_line_and_creates_nothing(workdir, real_mnist_path,
                                                                   capsys, case):
    flags, words = BAD_SEARCH_FLAGS[case]
    (workdir / "folder").mkdir()
    (workdir / "notes.txt").write_text("not a database\n")
    os.mkfifo(workdir / "pipe")
    before = sorted(workdir.rglob("*"))
    argv = search(real_mnist_path, *flags)
    if "--storage" not in flags:
        argv += ["--storage", "sqlite:///s.db"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert sorted(workdir.rglob("*")) == before  # no study, no MLflow store, no tuner folder
    assert not Path("/nonexistent").exists()


def test_read_only_storage_folder_exits_2_before_anything(workdir, real_mnist_path, capsys,
                                                          monkeypatch):
    """Tests run as root, for whom every folder is writable: ``os.access`` is what decides, so
    it answers as it would for another user."""
    import nas_mnist.sqlite_files as sqlite_files

    read_only = workdir / "read_only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(sqlite_files.os, "access", lambda path, mode: (
        False if Path(path) == read_only and mode & os.W_OK else real_access(path, mode)))
    assert main(search(real_mnist_path, "--storage", f"sqlite:///{read_only}/s.db")) == 2
    assert f"the folder {read_only} is not writable" in capsys.readouterr().err
    assert list(read_only.iterdir()) == [] and not (workdir / "m.db").exists()


def test_report_on_a_missing_sqlite_file_does_not_create_it(workdir, capsys):
    assert main(["report", "--storage", "sqlite:///typo.db", "--format", "json"]) == 2
    assert "typo.db does not exist" in capsys.readouterr().err
    assert not (workdir / "typo.db").exists()


def test_export_verify_with_an_unreadable_file_reports_it_without_a_traceback(
        workdir, capsys, monkeypatch):
    import json

    import nas_mnist.exporting.manifest as manifest

    folder = workdir / "export"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"weights")
    (folder / "manifest.json").write_text(json.dumps({"model.keras": "0" * 64}))

    def unreadable(path: Path) -> str:  # what a non-root user gets for a chmod 000 file
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(manifest, "sha256_file", unreadable)
    assert main(["export", "--verify", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert "unreadable: model.keras" in out and "Permission denied" in out
    assert "Traceback" not in out + err


def test_python_api_shares_the_checks():
    with pytest.raises(SettingsError, match="--seed"):
        validate_seed(2**32 - 1)
    assert validate_seed(MAX_SEED) == MAX_SEED
    with pytest.raises(SettingsError, match="contains '/'"):
        validate_study_name("a/b")
    assert validate_study_name("nas-mnist.v2_1") == "nas-mnist.v2_1"
    with pytest.raises(StorageError, match="unknown storage scheme"):
        validate_search_settings(SearchSettings(storage="redis://x", study_name="s", seed=0))
    with pytest.raises(TrackingError, match="unknown scheme"):
        validate_search_settings(SearchSettings(storage="sqlite:///s.db", study_name="s", seed=0,
                                                tracking_uri="foo://bar"))
