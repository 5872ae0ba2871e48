"""A study remembers its data and settings; MLflow gets classic-ML experiments, settings as the
parent run's params and each trial's model as an MLflow model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from support import mlflow_uri

import nas_mnist
from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.data import KERAS_SOURCE, DataFingerprint, data_fingerprint
from nas_mnist.errors import InputError
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.study.memory import remember_search, settings_record, space_sha256, study_data
from nas_mnist.tracking.models import global_tracking_uri
from nas_mnist.trial_attributes import (
    DATA_SHA256_ATTR,
    DATA_SOURCE_ATTR,
    SETTINGS_ATTR,
    SPACE_SHA256_ATTR,
    trial_spec_data,
    user_attr,
)


def _fake_data(folder: Path) -> Path:
    path = folder / "digits.npz"
    path.write_bytes(b"not really mnist, but hashed all the same")
    return path


def test_settings_record_holds_every_setting_with_the_data_fingerprint(tmp_path):
    settings = SearchSettings(trials=7, epochs=2, objective="val_accuracy,params",
                              max_train_samples=500, seed=3)
    record = settings_record(settings, DataFingerprint("/d/mnist.npz", "ab" * 32))
    assert record["trials"] == 7 and record["epochs"] == 2 and record["seed"] == 3
    assert record["pruner"] == "none" and record["objective"] == "val_accuracy,params"
    assert record["sampler"] == "tpe" and record["space"] == "default"
    assert record["engine"] == "optuna" and record["max_train_samples"] == 500
    assert record["data"] == "/d/mnist.npz" and record["data_sha256"] == "ab" * 32
    assert "progress" not in record and record["batch_size"] is None


def test_a_study_finds_its_own_data_and_refuses_a_changed_or_missing_file(tmp_path):
    path = _fake_data(tmp_path)
    study = optuna.create_study(study_name="s")
    remember_search(study, SearchSettings(data=path), data_fingerprint(path))
    assert study.user_attrs[DATA_SOURCE_ATTR] == str(path.resolve())
    assert len(study.user_attrs[DATA_SHA256_ATTR]) == 64
    assert study.user_attrs[SETTINGS_ATTR]["data"] == str(path.resolve())
    assert study_data(study, None) == str(path.resolve())
    assert study_data(study, "other.npz") == "other.npz"  # --data wins, unchecked

    path.write_bytes(b"changed")
    with pytest.raises(InputError, match=r"changed since .*pass --data PATH"):
        study_data(study, None)
    path.unlink()
    with pytest.raises(InputError, match=r"no longer exists; pass --data PATH"):
        study_data(study, None)


def test_keras_download_and_older_studies_mean_no_path(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_MNIST_DATA", raising=False)
    assert data_fingerprint(None) == DataFingerprint(KERAS_SOURCE, None)
    study = optuna.create_study()
    assert study_data(study, None) is None  # a study made before it remembered its data
    remember_search(study, SearchSettings(), data_fingerprint(None))
    assert study_data(study, None) is None and DATA_SHA256_ATTR not in study.user_attrs


def test_an_idx_folder_is_fingerprinted_by_its_files(tmp_path):
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(name.encode())
    first = data_fingerprint(tmp_path).sha256
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"other")
    assert data_fingerprint(tmp_path).sha256 != first


def test_a_study_remembers_its_space_by_content_the_same_by_name_path_or_format(tmp_path):
    import json

    import yaml

    from nas_mnist.search_space.space import SPACES_DIR

    small = space_sha256("small_cnn")
    assert len(small) == 64 and space_sha256(SPACES_DIR / "small_cnn.yaml") == small
    content = yaml.safe_load((SPACES_DIR / "small_cnn.yaml").read_text())
    renamed = tmp_path / "copy.json"  # another format, name and description: the same space
    renamed.write_text(json.dumps({**content, "name": "mine", "description": "a copy"}))
    assert space_sha256(renamed) == small
    assert space_sha256(None) == space_sha256("default") != small
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**content, "batch_size": [32]}))
    assert space_sha256(changed) != small

    study = optuna.create_study(study_name="s")
    remember_search(study, SearchSettings(space="small_cnn"), DataFingerprint(KERAS_SOURCE, None))
    assert study.user_attrs[SPACE_SHA256_ATTR] == small
    assert study.user_attrs[SETTINGS_ATTR]["space_sha256"] == small


def test_the_parameter_count_is_read_under_its_old_name_too():
    assert user_attr({"num_params": 5, "params": 9}, "num_params") == 5
    assert user_attr({"params": 9}, "num_params") == 9
    assert user_attr({}, "num_params") is None and user_attr({}, "depth", 0) == 0


@pytest.mark.slow
def test_a_search_is_remembered_and_logged_as_classic_ml_with_mlflow_models(
    workdir, real_mnist_path
):
    import mlflow

    data = Path(shutil.copy(real_mnist_path, workdir / "mnist.npz"))
    result = nas_mnist.search(trials=2, epochs=1, max_train_samples=500, data=data,
                              space="small.yaml", storage="sqlite:///s.db", study_name="demo",
                              tracking_uri=mlflow_uri(), baselines="none", progress=False)
    study = result.study
    assert study.metric_names == ["val_accuracy"]
    client = mlflow.MlflowClient(mlflow_uri())
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    params = client.get_run(result.parent_run_id).data.params
    assert params["trials"] == "2" and params["epochs"] == "1" and params["seed"] == "0"
    assert params["sampler"] == "tpe" and params["pruner"] == "median"
    assert params["objective"] == "val_accuracy" and params["max_train_samples"] == "500"
    assert params["data"] == str(data.resolve()) and len(params["data_sha256"]) == 64
    assert params["space"] == "small.yaml" and params["engine"] == "optuna"

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for trial in complete:
        assert trial.user_attrs["num_params"] > 0 and "params" not in trial.user_attrs
        # Short user attributes (optuna-dashboard's table): the spec is a system attribute,
        # and the run's spec.json artifact, which the trial names.
        assert "spec" not in trial.user_attrs and len(json.dumps(trial.user_attrs)) < 800
        spec = ArchitectureSpec.from_dict(trial_spec_data(trial))
        assert spec.num_params == trial.user_attrs["num_params"]
        assert trial.user_attrs["spec_uri"] == f"runs:/{trial.user_attrs['mlflow_run_id']}/spec.json"
        with global_tracking_uri(mlflow_uri()):
            text = mlflow.artifacts.load_text(trial.user_attrs["spec_uri"])
        assert json.loads(text) == trial_spec_data(trial)
        run_id = trial.user_attrs["mlflow_run_id"]
        mlflow.set_tracking_uri(mlflow_uri())  # as a user of MLflow's Python API does
        run_name = client.get_run(run_id).info.run_name  # e.g. trial-0001: the model's name
        assert run_name == f"trial-{trial.number:04d}"
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/{run_name}")
        mlflow.set_tracking_uri("sqlite:///elsewhere.db")  # nas-mnist must not depend on it
        predicted = model.predict(np.zeros((3, 28, 28, 1), np.float32))["probabilities"]
        assert predicted.shape == (3, 10) and np.allclose(predicted.sum(axis=1), 1, atol=1e-4)
        logged = client.get_logged_model(trial.user_attrs["model_uri"].split("/")[-1])
        assert logged.source_run_id == run_id and logged.experiment_id == result.experiment_id
        assert logged.name == run_name
        linked = {m.key: m.value for m in logged.metrics}
        assert linked["val_accuracy"] == pytest.approx(trial.value)
        assert linked["test_accuracy"] == pytest.approx(trial.user_attrs["test_accuracy"])
        assert client.get_run(run_id).info.status == "FINISHED"

    # export and report find the data themselves, and refuse once it changed.
    exported = nas_mnist.export(out="best", storage="sqlite:///s.db", study_name="demo")
    assert exported.verification.max_abs_difference < 1e-5
    written = nas_mnist.report(out="rep", storage="sqlite:///s.db", study_name="demo")
    assert (Path("rep") / "report.html").is_file() and not written.skipped.get("best model")
    with open(data, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match="changed since"):
        nas_mnist.export(out="best2", storage="sqlite:///s.db", study_name="demo")
    assert not Path("best2").exists()
