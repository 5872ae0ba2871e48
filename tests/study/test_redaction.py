"""No password is shown or recorded: storage and tracking URIs are redacted (``nas:***@``) in
the settings record (the study's ``search_settings`` and the parent run's params), the study's
``mlflow_tracking_uri``, the printed lines, ``nas-mnist ui``'s server command line and the
dashboard's errors; commands that read a study get the password back from ``--tracking-uri`` or
``$MLFLOW_TRACKING_URI``. The end-to-end test needs the CI PostgreSQL
(``scripts/start_postgres.sh``, ``NAS_MNIST_POSTGRES_URL``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import optuna
import pytest
import yaml
from support import SMALL_SPACE, mlflow_runs

from nas_mnist.data import DataFingerprint
from nas_mnist.errors import InputError
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.study.memory import settings_record, study_tracking_uri
from nas_mnist.tracking.redaction import hide_password, is_redacted, redact_uri
from nas_mnist.trial_attributes import TRACKING_URI_ATTR

SECRET = "s3cr3t-pw"
STORAGE = f"postgresql+psycopg://nas:{SECRET}@db.invalid:5432/nas_optuna"
TRACKING = f"postgresql+psycopg://nas:{SECRET}@db.invalid:5432/nas_mlflow"


@pytest.mark.parametrize(("uri", "shown"), [
    (STORAGE, "postgresql+psycopg://nas:***@db.invalid:5432/nas_optuna"),
    ("http://user:p%40ss@mlflow.example:5000", "http://user:***@mlflow.example:5000"),
    ("mysql://u:p@ss@h/db", "mysql://u:***@h/db"),  # an unencoded '@' is hidden whole
    ("postgresql://h/db?user=u&password=pw&sslmode=require",
     "postgresql://h/db?user=u&password=***&sslmode=require"),
    ("postgresql://nas@h/db", "postgresql://nas@h/db"),
    ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
    ("journal:///j.log", "journal:///j.log"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
])
def test_redact_uri_hides_only_the_password(uri, shown):
    assert redact_uri(uri) == shown and redact_uri(shown) == shown
    assert is_redacted(shown) == (shown != uri) and not is_redacted(uri)


def test_hide_password_cleans_an_error_message():
    text = f"connection to {STORAGE} failed for password {SECRET!r}"
    assert SECRET not in hide_password(text, STORAGE)
    assert hide_password(text, "sqlite:///m.db") == text


def test_the_settings_record_holds_no_password():
    settings = SearchSettings(storage=STORAGE, tracking_uri=TRACKING, study_name="s")
    record = settings_record(settings, DataFingerprint("/d/mnist.npz", None))
    assert SECRET not in json.dumps(record)
    assert record["storage"] == redact_uri(STORAGE)
    assert record["tracking_uri"] == redact_uri(TRACKING)


def test_a_redacted_tracking_uri_is_completed_from_the_environment_or_refused(monkeypatch):
    study = optuna.create_study(study_name="s")
    study.set_user_attr(TRACKING_URI_ATTR, redact_uri(TRACKING))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(InputError, match="pass --tracking-uri") as refused:
        study_tracking_uri(study, None)
    assert SECRET not in str(refused.value) and "nas:***@" in str(refused.value)
    assert study_tracking_uri(study, "sqlite:///other.db") == "sqlite:///other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", TRACKING)
    assert study_tracking_uri(study, None) == TRACKING
    monkeypatch.setenv("MLFLOW_TRACKING_URI", TRACKING.replace("nas_mlflow", "another"))
    with pytest.raises(InputError, match="pass --tracking-uri"):
        study_tracking_uri(study, None)
    study.set_user_attr(TRACKING_URI_ATTR, "sqlite:///m.db")  # no password: used as it is
    assert study_tracking_uri(study, None) == "sqlite:///m.db"


def test_ui_hands_the_store_to_mlflow_server_by_environment(monkeypatch):
    import nas_mnist.cli.ui as ui

    started = {}
    monkeypatch.setattr(ui.subprocess, "Popen", lambda command, env, **kw: started.update(
        command=command, env=env))
    ui._start_server(TRACKING, "127.0.0.1", 5000)
    assert not any(SECRET in part for part in started["command"])
    assert "--backend-store-uri" not in started["command"]
    assert started["env"]["MLFLOW_BACKEND_STORE_URI"] == TRACKING
    with pytest.raises(InputError) as served:
        ui._check_store(f"http://u:{SECRET}@mlflow.example:5000")
    assert SECRET not in str(served.value)


def test_the_dashboard_error_shows_no_password():
    from nas_mnist.reporting.dashboard import _require_optuna_tables
    from nas_mnist.study.storage import StorageError

    # Port 1 of this machine: the connection is refused at once (nothing is reached).
    with pytest.raises(StorageError, match="cannot read the storage") as refused:
        _require_optuna_tables(f"postgresql+psycopg://nas:{SECRET}@127.0.0.1:1/nas_optuna")
    assert SECRET not in str(refused.value) and "nas:***@127.0.0.1:1" in str(refused.value)


POSTGRES = os.environ.get("NAS_MNIST_POSTGRES_URL")
POSTGRES_MLFLOW = os.environ.get("NAS_MNIST_POSTGRES_MLFLOW_URL")


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="set NAS_MNIST_POSTGRES_URL (scripts/start_postgres.sh) "
                    "to run")
def test_a_postgresql_search_shows_and_records_no_password(tmp_path, real_mnist_path,
                                                           monkeypatch):
    storage = POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1)
    tracking = POSTGRES_MLFLOW or f"sqlite:///{tmp_path / 'm.db'}"
    password = f":{storage.split(':')[2].split('@')[0]}@"  # ":nas@" on CI
    study_name = f"redaction-{uuid.uuid4().hex[:8]}"
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    done = subprocess.run(
        [sys.executable, "-m", "nas_mnist", "search", "--trials", "1", "--epochs", "1",
         "--max-train-samples", "300", "--data", str(real_mnist_path), "--space", "small.yaml",
         "--baselines", "none", "--no-progress", "--storage", storage, "--study-name",
         study_name, "--tracking-uri", tracking],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert password not in output and "Traceback" not in output
    assert f"study:  {study_name!r} in postgresql+psycopg://nas:***@" in done.stdout
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert password not in json.dumps(study.user_attrs)
    assert study.user_attrs["search_settings"]["storage"] == redact_uri(storage)
    (parent,), _ = mlflow_runs(tracking, study_name)
    assert parent.data.params["storage"] == redact_uri(storage)
    recorded = json.dumps([parent.data.params, parent.data.tags])
    assert password not in recorded and redact_uri(tracking) in recorded
    if is_redacted(study.user_attrs[TRACKING_URI_ATTR]):  # commands that read the study
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with pytest.raises(InputError, match="pass --tracking-uri"):
            study_tracking_uri(study, None)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert study_tracking_uri(study, None) == tracking
