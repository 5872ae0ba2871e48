"""MLflow stores nas-mnist cannot use (issue 19, defect 11): MLflow 3's file store, a store made
by another MLflow version, and a study whose experiment was deleted are refused with one line
(exit 2) before anything is created; no MlflowException traceback."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest

from nas_mnist.cli.main import main
from nas_mnist.tracking.tracker import Tracker, TrackingError, validate_tracking_uri
from nas_mnist.trial_attributes import EXPERIMENT_ATTR


def _search(data: Path, tracking_uri: str) -> list[str]:
    return ["search", "--trials", "1", "--epochs", "1", "--max-train-samples", "500", "--data",
            str(data), "--space", "small.yaml", "--baselines", "none", "--no-progress",
            "--storage", "sqlite:///s.db", "--study-name", "demo", "--tracking-uri",
            tracking_uri]


# --- MLflow 3's file store ------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["mlruns", "file://{tmp}/mlruns", "{tmp}/existing", "./m.db"])
def test_a_folder_or_file_uri_is_refused_as_the_file_store_and_nothing_is_created(
        tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    uri = uri.format(tmp=tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for check in (validate_tracking_uri, Tracker):
        with pytest.raises(TrackingError, match="MLflow 3's file store .* is not supported; "
                                                "pass e.g. --tracking-uri sqlite:///"):
            check(uri)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("source", ["environment", "default"])
def test_a_file_store_from_the_environment_or_mlflows_default_is_refused_too(
        tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    # MLflow's process-wide URI, pinned by earlier tests (mlflow.set_tracking_uri), unset.
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if source == "environment":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path))
        words = f"{tmp_path} \\(\\$MLFLOW_TRACKING_URI\\): MLflow 3's file store"
    else:  # MLflow 3 keeps its file store as the default where ./mlruns holds an experiment
        (tmp_path / "mlruns" / "0").mkdir(parents=True)
        (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
        words = f"file://{tmp_path}/mlruns \\(MLflow's default where ./mlruns holds runs\\)"
    with pytest.raises(TrackingError, match=words):
        Tracker(None)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_database_file_written_as_a_path_gets_its_sqlite_uri_suggested(tmp_path):
    with pytest.raises(TrackingError, match=f"sqlite:///{tmp_path}/m.db"):
        validate_tracking_uri(str(tmp_path / "m.db"))


# --- a store made by another MLflow version -------------------------------------------------------


def _old_store(tmp_path: Path, revision: str = "451aebb31d03") -> Path:
    """A SQLite MLflow store whose schema revision is ``revision`` (another MLflow's).

    MLflow caches one store per URI in a process: the store is made under one name and copied
    to another, which this process has never opened."""
    made = tmp_path / "made.db"
    Tracker(f"sqlite:///{made}").check()
    old = tmp_path / "old.db"
    shutil.copy(made, old)
    with sqlite3.connect(old) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    return old


@pytest.mark.parametrize("revision", ["451aebb31d03", "ffffffffffff"])  # older, unknown
def test_a_store_of_another_mlflow_version_says_to_run_mlflow_db_upgrade(tmp_path, revision):
    old = _old_store(tmp_path, revision)
    content = old.read_bytes()
    uri = f"sqlite:///{old}"
    with pytest.raises(TrackingError) as raised:
        Tracker(uri)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert f"schema {revision}" in message
    assert f"back it up, then run: mlflow db upgrade {uri}" in message
    assert old.read_bytes() == content


# --- the study's experiment deleted between two searches ------------------------------------------


def test_a_deleted_experiment_of_a_study_is_refused_not_restored(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    study = optuna.create_study(study_name="gone", direction="maximize")
    parent = tracker.attach_parent_run(study)
    tracker.finish_parent_run(parent)
    experiment_id = study.user_attrs[EXPERIMENT_ATTR]
    tracker.client.delete_experiment(experiment_id)

    restore = (f"MLFLOW_TRACKING_URI={tracker.tracking_uri} mlflow experiments restore "
               f"--experiment-id {experiment_id}")
    for call in (lambda: tracker.check_experiment("gone"), lambda: tracker.attach_parent_run(study),
                 lambda: tracker.create_parent_run("gone"), lambda: tracker.experiment_id("gone")):
        with pytest.raises(TrackingError, match="the MLflow experiment 'gone'") as raised:
            call()
        assert restore in str(raised.value)
    assert str(raised.value).endswith(restore)  # experiment_id: any experiment, not a study's
    with pytest.raises(TrackingError, match=f"{restore}, or pass another --study-name$"):
        tracker.attach_parent_run(study)
    assert tracker.client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    tracker.check_experiment("never-made")  # no experiment yet: nothing to refuse


def test_search_with_an_unusable_store_exits_2_in_one_line_and_creates_nothing(
        workdir, real_mnist_path, capsys):
    (workdir / "mlruns").mkdir()
    old = _old_store(workdir)
    (workdir / "made.db").unlink()
    before = sorted(workdir.rglob("*"))
    for uri, words in (("mlruns", "MLflow 3's file store"),
                       (f"sqlite:///{old}", "mlflow db upgrade")):
        capsys.readouterr()
        assert main(_search(real_mnist_path, uri)) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert sorted(workdir.rglob("*")) == before  # no study, no store, no run
    assert main(["ui", "--tracking-uri", "mlruns"]) == 2
    assert "MLflow 3's file store" in capsys.readouterr().err


def test_loading_a_model_from_an_unusable_store_says_why_in_one_line(tmp_path):
    from nas_mnist.tracking.models import load_logged_model

    (tmp_path / "mlruns").mkdir()
    with pytest.raises(TrackingError, match="MLflow 3's file store"):
        load_logged_model("models:/m-0123", str(tmp_path / "mlruns"))
    with pytest.raises(TrackingError, match="mlflow db upgrade"):
        load_logged_model("models:/m-0123", f"sqlite:///{_old_store(tmp_path)}")
