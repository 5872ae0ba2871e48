"""Tests of ``nas-mnist export``: the SavedModel, its manifest, MLflow, the refusals, and the
champion once the study has final models.

The slow tests share one small study (3 trials, 1 epoch, 500 training images) built once per
module, and one export of its best trial. The final models are made by hand (a final study whose
trials reuse the search trials' logged models), not by ``nas-mnist retrain``.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from nas_mnist.atomic_folders import remove_stale_partials
from nas_mnist.cli.main import main
from nas_mnist.exporting.atomic import check_out_dir
from nas_mnist.exporting.layout import ExportError
from nas_mnist.exporting.manifest import sha256_file, verify_manifest, write_manifest
from nas_mnist.exporting.selection import pick_trial
from nas_mnist.trial_attributes import trial_spec_data

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every architecture of this space is valid ('same' padding) and trains in a second or two.
SMALL_SPACE = {
    "name": "tiny",
    "conv": {"depth": [3], "filters": [4, 8], "kernel_size": [3, 5], "padding": ["same"]},
    "pooling": {"every": [1], "pool_size": 2, "padding": "valid"},
    "batch_norm": ["none"],
    "dense": {"num_layers": 1, "units": [16]},
    "optimizer": {
        "name": ["adam"],
        "learning_rate": {"adam": {"low": 1e-3, "high": 1e-2, "log": True}},
    },
    "batch_size": [128],
}
SAVED_MODEL_FILES = ("saved_model.pb", "fingerprint.pb", "variables/variables.index")
SIDE_FILES = ("model.keras", "spec.json", "metrics.json", "manifest.json")


def _mnist_path() -> Path:
    path = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not path.exists():
        pytest.skip(f"real MNIST not found at {path}; set NAS_MNIST_DATA to run this test")
    return path


class Study:
    """Where the module's study lives, and the export arguments that point at it."""

    def __init__(self, root: Path, data: Path) -> None:
        self.root = root
        self.data = data
        self.storage = f"sqlite:///{root / 's.db'}"
        self.tracking_uri = f"sqlite:///{root / 'm.db'}"

    def export_args(self, *extra: str, study_name: str = "demo") -> list[str]:
        return ["export", "--storage", self.storage, "--study-name", study_name,
                "--data", str(self.data), *extra]

    def load(self) -> optuna.Study:
        return optuna.load_study(study_name="demo", storage=self.storage)

    def listing(self) -> set[str]:
        return {p.name for p in self.root.iterdir()}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    data = _mnist_path()
    root = tmp_path_factory.mktemp("export")
    (root / "tiny.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    s = Study(root, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow puts the artifacts of a sqlite store under ./mlruns
        assert main(["search", "--trials", "3", "--epochs", "1", "--max-train-samples", "500",
                     "--data", str(data), "--storage", s.storage, "--study-name", "demo",
                     "--tracking-uri", s.tracking_uri, "--space", "tiny.yaml",
                     "--baselines", "none", "--no-progress"]) == 0
    completed = [t for t in s.load().trials if t.state.name == "COMPLETE"]
    assert len(completed) >= 2, "the tiny space should complete every trial"
    return s


@pytest.fixture(scope="module")
def exported(study: Study) -> Path:
    """The study's best trial exported once to <root>/best."""
    out = study.root / "best"
    assert main(study.export_args("--out", str(out))) == 0
    return out


def _best_trial(study: Study) -> optuna.trial.FrozenTrial:
    completed = [t for t in study.load().trials if t.state.name == "COMPLETE"]
    return max(completed, key=lambda t: (t.user_attrs["val_accuracy"], -t.number))


def _serving_predict(folder: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return serve(image=tf.constant(x))["output_0"].numpy()


def _test_set(study: Study) -> tuple[np.ndarray, np.ndarray]:
    with np.load(study.data) as data:
        x, y = data["x_test"], data["y_test"]
    return (x.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1), y.astype(np.int64)


# --- the export --------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_is_a_savedmodel_that_predicts_as_the_keras_file(study, exported):
    import keras

    for name in (*SAVED_MODEL_FILES, *SIDE_FILES):
        assert (exported / name).is_file(), name
    assert not [p for p in study.root.iterdir() if ".partial-" in p.name]

    x, y = _test_set(study)
    served = _serving_predict(exported, x[:100])
    assert served.shape == (100, 10) and served.dtype == np.float32
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)
    from_keras = keras.saving.load_model(exported / "model.keras").predict(x[:100], verbose=0)
    assert np.abs(served - from_keras).max() < 1e-5

    # The exported model is the trial's model: the same test_accuracy, on all 10,000 images.
    trial = _best_trial(study)
    accuracy = float((_serving_predict(exported, x).argmax(axis=1) == y).mean())
    assert abs(accuracy - trial.user_attrs["test_accuracy"]) <= 0.001

    metrics = json.loads((exported / "metrics.json").read_text())
    assert metrics["trial_number"] == trial.number and metrics["retrained"] is False
    assert metrics["final_model"] is False and "final" not in metrics  # no final study
    assert metrics["training"]["epochs"] == 1 and metrics["training"]["max_train_samples"] == 500
    assert metrics["val_accuracy"] == trial.user_attrs["val_accuracy"]
    assert metrics["export"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert metrics["export"]["max_abs_difference"] < 1e-5
    assert json.loads((exported / "spec.json").read_text()) == trial_spec_data(trial)


@pytest.mark.slow
def test_manifest_lists_every_file_with_its_sha256(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    files = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert set(manifest) == files - {"manifest.json"}
    for name, digest in manifest.items():
        assert sha256_file(exported / name) == digest
    assert verify_manifest(exported) == []


@pytest.mark.slow
def test_tflite_converter_accepts_the_export(exported):
    import tensorflow as tf

    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(exported)).convert()
    assert len(flatbuffer) > 1000


@pytest.mark.slow
def test_the_example_script_classifies_test_images(study, exported, capsys, monkeypatch):
    script = REPO_ROOT / "scripts" / "classify_with_savedmodel.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(exported), "--data", str(study.data),
                                      "--count", "5"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    x, y = _test_set(study)
    predicted = _serving_predict(exported, x[:5]).argmax(axis=1)
    assert f"{int((predicted == y[:5]).sum())} of 5 correct" in out


@pytest.mark.slow
def test_model_is_logged_to_the_parent_run_and_loads_back(study, exported):
    import mlflow

    study_attrs = study.load().user_attrs
    parent_run_id = study_attrs["mlflow_parent_run_id"]
    client = mlflow.MlflowClient(study.tracking_uri)
    run = client.get_run(parent_run_id)
    assert run.info.status == "FINISHED"  # restored after logging
    assert run.data.tags["best_trial"] == str(_best_trial(study).number)

    x, _ = _test_set(study)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(study.tracking_uri)
    try:
        logged = mlflow.pyfunc.load_model(f"runs:/{parent_run_id}/best_model")
    finally:
        mlflow.set_tracking_uri(previous)
    served = logged.predict(x[:100])  # the served contract: label and probabilities
    assert np.abs(served["probabilities"] - _serving_predict(exported, x[:100])).max() < 1e-5
    assert (served["label"] == served["probabilities"].argmax(axis=1)).all()


# --- --verify ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_verify_passes_then_names_each_tampered_file(exported, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    assert main(["export", "--verify", str(copy)]) == 0
    assert "every file matches" in capsys.readouterr().out

    with open(copy / "variables" / "variables.data-00000-of-00001", "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    (copy / "spec.json").unlink()
    (copy / "notes.txt").write_text("added later")
    assert main(["export", "--verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "changed: variables/variables.data-00000-of-00001" in out
    assert "missing: spec.json" in out
    assert "extra: notes.txt" in out
    assert "saved_model.pb" not in out  # untouched files are not named


def test_verify_manifest_reports_a_bad_or_absent_manifest(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    assert verify_manifest(tmp_path) == [
        "missing: manifest.json (not an export folder, or the manifest was deleted)"
    ]
    assert write_manifest(tmp_path) == {"a.txt": sha256_file(tmp_path / "a.txt")}
    assert verify_manifest(tmp_path) == []
    (tmp_path / "manifest.json").write_text(json.dumps({"../outside": "0" * 64}))
    problems = verify_manifest(tmp_path)
    assert any("outside the folder" in p for p in problems) and "extra: a.txt" in problems
    (tmp_path / "manifest.json").write_text("{not json")
    assert verify_manifest(tmp_path)[0].startswith("changed: manifest.json is not readable JSON")
    with pytest.raises(ExportError, match="is not a folder"):
        verify_manifest(tmp_path / "absent")


def test_verify_of_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["export", "--verify", str(tmp_path / "absent")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# --- atomic writes -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("error", [RuntimeError("simulated crash"), KeyboardInterrupt()])
def test_an_export_that_dies_midway_leaves_no_folder(study, monkeypatch, error):
    import nas_mnist.exporting.savedmodel

    def die(folder: Path) -> dict:
        assert (folder / "saved_model.pb").is_file()  # the SavedModel is already written
        raise error

    monkeypatch.setattr(nas_mnist.exporting.savedmodel, "write_manifest", die)
    out = study.root / "dies"
    if isinstance(error, KeyboardInterrupt):
        assert main(study.export_args("--out", str(out))) == 130
    else:
        with pytest.raises(RuntimeError, match="simulated crash"):
            main(study.export_args("--out", str(out)))
    assert not out.exists()
    assert not [p for p in study.root.iterdir() if p.name.startswith(".dies.")]


@pytest.mark.slow
def test_force_replaces_an_export_and_removes_partials_of_killed_exports(study, exported):
    out = study.root / "forced"
    shutil.copytree(exported, out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = study.root / f".forced.partial-{dead.pid}-abcd1234"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half written")
    live = study.root / f".forced.partial-{os.getppid()}-live0000"  # another export, running
    live.mkdir()

    other = next(t for t in study.load().trials
                 if t.state.name == "COMPLETE" and t.number != _best_trial(study).number)
    assert main(study.export_args("--out", str(out), "--trial", str(other.number),
                                  "--force")) == 0
    assert json.loads((out / "metrics.json").read_text())["trial_number"] == other.number
    assert verify_manifest(out) == []
    assert not stale.exists() and live.is_dir()
    assert not [p for p in study.root.iterdir() if p.name.startswith(".forced.replaced-")]
    live.rmdir()


@pytest.mark.slow
def test_retrain_trains_the_spec_afresh(study, tmp_path):
    out = tmp_path / "retrained"
    assert main(study.export_args("--out", str(out), "--retrain", "--epochs", "1",
                                  "--max-train-samples", "500")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["retrained"] is True and metrics["epochs"] == 1
    assert metrics["num_train_images"] == 500
    assert metrics["trial"]["test_accuracy"] == _best_trial(study).user_attrs["test_accuracy"]
    # The export's own check agrees with the retrained model's evaluation.
    assert abs(metrics["export"]["test_accuracy"] - metrics["test_accuracy"]) <= 0.001
    assert verify_manifest(out) == []


# --- refusals: exit 2, nothing written ---------------------------------------------------------


@pytest.mark.slow
def test_existing_dir_without_force_exits_2_and_is_untouched(study, exported, capsys):
    before = {p: p.stat().st_mtime_ns for p in exported.rglob("*")}
    assert main(study.export_args("--out", str(exported))) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in exported.rglob("*")} == before


@pytest.mark.slow
def test_force_refuses_a_folder_that_is_not_an_export(study, capsys):
    folder = study.root / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("do not delete")
    assert main(study.export_args("--out", str(folder), "--force")) == 2
    assert "is not a nas-mnist export" in capsys.readouterr().err
    assert (folder / "thesis.tex").read_text() == "do not delete"


@pytest.mark.slow
def test_pruned_or_unknown_trial_exits_2(study, capsys):
    s = study.load()
    pruned = next((t for t in s.trials if t.state.name == "PRUNED"), None)
    if pruned is None:
        s.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"reason": "pruned for the test"}))
        pruned = s.trials[-1]
    before = study.listing()
    assert main(study.export_args("--out", str(study.root / "x"), "--trial",
                                  str(pruned.number))) == 2
    assert f"trial {pruned.number} of study 'demo' is pruned, not complete" in \
        capsys.readouterr().err
    assert main(study.export_args("--out", str(study.root / "x"), "--trial", "999")) == 2
    assert "has no trial 999" in capsys.readouterr().err
    assert study.listing() == before


@pytest.mark.slow
def test_study_without_completed_trial_exits_2_and_creates_nothing(study, capsys):
    fresh = optuna.create_study(study_name="fresh", storage=study.storage)
    fresh.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    before = study.listing()
    assert main(study.export_args("--out", str(study.root / "x"), study_name="fresh")) == 2
    assert "no trial has completed yet" in capsys.readouterr().err
    assert study.listing() == before


@pytest.mark.slow
def test_unknown_study_exits_2(study, capsys):
    before = study.listing()
    assert main(study.export_args("--out", str(study.root / "x"), study_name="nope")) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert study.listing() == before


@pytest.mark.slow
def test_parent_that_is_a_file_exits_2(study, capsys):
    (study.root / "a-file").write_text("")
    assert main(study.export_args("--out", str(study.root / "a-file" / "best"))) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores folder permissions")
def test_unwritable_parent_exits_2(study, capsys):
    locked = study.root / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(study.export_args("--out", str(locked / "best"))) == 2
        assert "permission denied" in capsys.readouterr().err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_missing_storage_file_exits_2_and_is_not_created(tmp_path, capsys):
    storage = tmp_path / "absent.db"
    assert main(["export", "--storage", f"sqlite:///{storage}", "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_retrain_options_without_retrain_exit_2(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "x"), "--epochs", "3"]) == 2
    assert "--epochs applies only with --retrain" in capsys.readouterr().err
    assert main(["export", "--out", "x", "--verify", "y"]) == 2  # one action at a time
    assert list(tmp_path.iterdir()) == []


# --- units -------------------------------------------------------------------------------------


def _study_with(*states: tuple[str, float | None]) -> optuna.Study:
    s = optuna.create_study(direction="maximize")
    for state, value in states:
        attrs = {"val_accuracy": value} if value is not None else {}
        s.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState[state], value=value,
                                              user_attrs=attrs))
    return s


def test_pick_trial_takes_the_best_val_accuracy_and_the_earliest_on_ties():
    s = _study_with(("COMPLETE", 0.5), ("COMPLETE", 0.9), ("PRUNED", None), ("COMPLETE", 0.9))
    assert pick_trial(s).number == 1
    assert pick_trial(s, 3).number == 3
    with pytest.raises(ExportError, match="trial 2 of study .* is pruned, not complete"):
        pick_trial(s, 2)
    with pytest.raises(ExportError, match="has no trial 7"):
        pick_trial(s, 7)
    with pytest.raises(ExportError, match="no trial has completed yet"):
        pick_trial(_study_with(("FAIL", None)))


def test_check_out_dir_refuses_existing_and_unusable_folders(tmp_path):
    assert check_out_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "old").mkdir()
    with pytest.raises(ExportError, match="already exists; pass --force"):
        check_out_dir(tmp_path / "old")
    assert check_out_dir(tmp_path / "old", force=True) == tmp_path / "old"  # empty: replaceable
    with pytest.raises(ExportError, match="does not exist; create it first"):
        check_out_dir(tmp_path / "missing" / "new")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is not a folder"):
        check_out_dir(tmp_path / "file" / "new")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        check_out_dir(tmp_path / "file", force=True)


def test_remove_stale_partials_keeps_those_of_running_exports(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".best.partial-{dead.pid}-x"
    running = tmp_path / f".best.partial-{os.getpid()}-y"
    unrelated = tmp_path / f".other.partial-{dead.pid}-z"
    for folder in (stale, running, unrelated):
        folder.mkdir()
    assert remove_stale_partials(tmp_path / "best") == [stale]
    assert running.is_dir() and unrelated.is_dir() and not stale.exists()


# --- ensembles ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ensemble_averages_the_best_trials_and_is_verified(study, capsys):
    import keras

    from nas_mnist.tracking.models import load_logged_model

    out = study.root / "ensemble"
    assert main(study.export_args("--out", str(out), "--ensemble", "2")) == 0
    assert "ensemble of 2 trials" in capsys.readouterr().out
    completed = sorted((t for t in study.load().trials if t.state.name == "COMPLETE"),
                       key=lambda t: (-t.user_attrs["val_accuracy"], t.number))
    metrics = json.loads((out / "metrics.json").read_text())
    listing = json.loads((out / "ensemble.json").read_text())
    assert [m["trial_number"] for m in metrics["members"]] == [t.number for t in completed[:2]]
    assert [m["trial_number"] for m in listing["members"]] == [t.number for t in completed[:2]]
    for member, trial in zip(metrics["members"], completed[:2]):
        assert member["val_accuracy"] == trial.user_attrs["val_accuracy"]
        assert member["model_uri"] == trial.user_attrs["model_uri"]
        assert abs(member["test_accuracy_recomputed"] - trial.user_attrs["test_accuracy"]) < 1e-3
    assert not (out / "spec.json").exists()
    assert verify_manifest(out) == []
    assert "ensemble.json" in json.loads((out / "manifest.json").read_text())

    # The SavedModel's output is the mean of the members' softmax outputs.
    x, y = _test_set(study)
    x = x[:500]
    members = [load_logged_model(t.user_attrs["model_uri"], study.tracking_uri)
               for t in completed[:2]]
    mean = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(_serving_predict(out, x), mean, atol=1e-5)
    reloaded = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), mean, atol=1e-5)
    assert metrics["export"]["reference_max_abs_difference"] < 1e-5
    assert metrics["test_accuracy"] == metrics["export"]["test_accuracy"]
    assert metrics["test_accuracy_gain_over_best_member"] == pytest.approx(
        metrics["test_accuracy"] - metrics["members"][0]["test_accuracy_recomputed"])


@pytest.mark.slow
def test_bad_ensemble_requests_exit_2_and_write_nothing(study, capsys):
    before = study.listing()
    out = study.root / "no_ensemble"
    num_complete = sum(t.state.name == "COMPLETE" for t in study.load().trials)
    for extra, message in (
        (("--ensemble", "1"), "at least 2 members"),
        (("--ensemble", str(num_complete + 1)), f"only {num_complete} complete trial(s)"),
        (("--ensemble", "2", "--trial", "0"), "cannot be combined with --trial"),
        (("--ensemble", "2", "--retrain"), "cannot be combined with --trial or --retrain"),
    ):
        assert main(study.export_args("--out", str(out), *extra)) == 2
        assert message in capsys.readouterr().err
    assert study.listing() == before


# --- final models (the champion) ---------------------------------------------------------------

RECIPE = {"epochs": 30, "augmentation": True, "cosine": True, "max_train_samples": None,
          "batch_size": None, "seed": 7, "augmentation_factors": {"translation": 0.1},
          "lr_schedule": "cosine", "num_train_images": 50_000, "precise_bn": True,
          "selection": "best epoch by val_accuracy"}
"""The recipe the hand-made final models claim (``FinalRecipe.record``'s keys; their models
are the search's)."""


def _final_trial(trial: optuna.trial.FrozenTrial, value: float, seed: int
                 ) -> optuna.trial.FrozenTrial:
    """A complete final trial retraining ``trial`` whose model is ``trial``'s kept model."""
    attrs = trial.user_attrs
    spec = {**trial_spec_data(trial), "augmentation": RECIPE["augmentation_factors"],
            "lr_schedule": "cosine"}
    return optuna.trial.create_trial(value=value, user_attrs={
        "spec": spec, "model_uri": attrs["model_uri"], "mlflow_run_id": attrs["mlflow_run_id"],
        "val_accuracy": value, "test_accuracy": attrs["test_accuracy"],
        "num_params": attrs["num_params"], "best_epoch": 0, "recipe": RECIPE,
        "source_trial": trial.number, "final_seed": seed,
        "final_key": f"trial:{trial.number}/seed:{seed}"})


@pytest.fixture(scope="module")
def with_finals(study: Study) -> dict:
    """A copy of the study (own storage, own MLflow parent run) with two final models: the
    champion (final 0, val_accuracy 0.99) has the search's lowest test_accuracy, final 1
    (val_accuracy 0.98) the highest."""
    import mlflow

    storage = f"sqlite:///{study.root / 'finals.db'}"
    optuna.copy_study(from_study_name="demo", from_storage=study.storage, to_storage=storage)
    copy = optuna.load_study(study_name="demo", storage=storage)
    client = mlflow.MlflowClient(study.tracking_uri)
    experiment = client.get_run(copy.user_attrs["mlflow_parent_run_id"]).info.experiment_id
    parent = client.create_run(experiment, run_name="finals parent").info.run_id
    client.set_terminated(parent)
    copy.set_user_attr("mlflow_parent_run_id", parent)
    complete = sorted((t for t in copy.trials if t.state.name == "COMPLETE"),
                      key=lambda t: (t.user_attrs["test_accuracy"], t.number))
    low, high = complete[0], complete[-1]
    if low.user_attrs["test_accuracy"] == high.user_attrs["test_accuracy"]:
        pytest.skip("the search's trials have equal test_accuracy")
    final = optuna.create_study(study_name="demo/final", storage=storage, direction="maximize")
    final.add_trial(_final_trial(low, 0.99, 0))
    final.add_trial(_final_trial(high, 0.98, 0))
    return {"storage": storage, "low": low, "high": high, "parent": parent,
            "num_search": len(complete)}


def _final_args(study: Study, with_finals: dict, *extra: str) -> list[str]:
    return ["export", "--storage", with_finals["storage"], "--study-name", "demo",
            "--data", str(study.data), *extra]


@pytest.mark.slow
def test_export_takes_the_champion_by_val_accuracy_and_says_its_recipe(study, with_finals,
                                                                       capsys):
    import mlflow

    low, high = with_finals["low"], with_finals["high"]
    out = study.root / "champion"
    assert main(_final_args(study, with_finals, "--out", str(out))) == 0
    printed = capsys.readouterr().out
    assert f"the champion (final model 0: search trial {low.number}, seed 0)" in printed
    assert "final recipe: 30 epochs, 50,000 training images, augmentation translation 0.1, " \
        "learning-rate schedule cosine, training seed 7" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    # The champion is the best val_accuracy (0.99), not the best test_accuracy (final 1's).
    assert metrics["final_model"] is True and metrics["val_accuracy"] == 0.99
    assert metrics["test_accuracy"] == low.user_attrs["test_accuracy"] \
        < high.user_attrs["test_accuracy"]
    assert metrics["trial_number"] == low.number
    assert metrics["source_model_uri"] == low.user_attrs["model_uri"]
    assert metrics["final"] == {
        "study_name": "demo/final", "trial_number": 0, "final_key": f"trial:{low.number}/seed:0",
        "source_trial": low.number, "baseline": None, "seed": 0, "training_seed": 7,
        "epochs": 30,
        "num_train_images": 50_000, "augmentation": {"translation": 0.1},
        "lr_schedule": "cosine", "recipe": RECIPE}
    # Verified as any export: reloaded, and the final trial's test_accuracy reproduced.
    check = metrics["export"]
    assert check["expected_test_accuracy"] == low.user_attrs["test_accuracy"]
    assert abs(check["test_accuracy"] - low.user_attrs["test_accuracy"]) <= 0.001
    assert check["max_abs_difference"] < 1e-5
    assert json.loads((out / "spec.json").read_text())["lr_schedule"] == "cosine"
    assert verify_manifest(out) == []
    tags = mlflow.MlflowClient(study.tracking_uri).get_run(with_finals["parent"]).data.tags
    assert tags["best_trial"] == "final:0"


@pytest.mark.slow
def test_from_search_exports_the_best_search_trial_despite_a_champion(study, with_finals):
    out = study.root / "from_search"
    assert main(_final_args(study, with_finals, "--out", str(out), "--from-search")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final_model"] is False and "final" not in metrics
    assert metrics["trial_number"] == _best_trial(study).number


@pytest.mark.slow
def test_ensemble_takes_final_models_when_there_are_k_of_them(study, with_finals, capsys):
    out = study.root / "final_ensemble"
    assert main(_final_args(study, with_finals, "--out", str(out), "--ensemble", "2")) == 0
    assert "ensemble of 2 final models" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["members_from"] == "final models"
    assert [(m["trial_number"], m["source_trial"]) for m in metrics["members"]] == [
        (0, with_finals["low"].number), (1, with_finals["high"].number)]
    assert all(m["final_model"] and m["seed"] == 0 for m in metrics["members"])
    assert verify_manifest(out) == []
    # More members than final models: the search trials, as without final models.
    k = with_finals["num_search"] + 1
    assert main(_final_args(study, with_finals, "--out", str(study.root / "x"), "--ensemble",
                            str(k))) == 2
    assert f"only {with_finals['num_search']} complete trial(s)" in capsys.readouterr().err


def test_pick_champion_is_the_best_final_val_accuracy_with_a_model():
    from nas_mnist.exporting.final import final_label, pick_champion

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="demo", direction="maximize")
    assert pick_champion(study) is None  # no final study: the best search trial is exported
    final = optuna.create_study(storage=storage, study_name="demo/final", direction="maximize")
    for value, test, attrs in (
        (0.995, 0.990, {"model_uri": "models:/a", "source_trial": 4, "final_seed": 0}),
        (0.994, 0.999, {"model_uri": "models:/b", "source_trial": 7, "final_seed": 0}),
        (0.999, 0.999, {"source_trial": 9}),  # kept no model: never exported
        (0.996, 0.990, {"model_uri": "models:/c", "baseline": "s002_m9", "final_seed": 1}),
    ):
        final.add_trial(optuna.trial.create_trial(
            value=value, user_attrs={"test_accuracy": test, "num_params": 10, **attrs}))
    champion = pick_champion(study)
    assert champion.number == 3 and final_label(champion) == "baseline s002_m9, seed 1"
    assert final_label(final.trials[0]) == "search trial 4, seed 0"


def test_export_messages_name_the_export_not_its_temporary_folder(study, capsys):
    out = study.root / "named"
    assert main(study.export_args("--out", str(out))) == 0
    printed = capsys.readouterr()
    assert ".partial" not in printed.out + printed.err
    assert str(out) in printed.out
    # progress (one line per step: output is not a terminal) and the final paths only
    steps = [line.rstrip() for line in printed.out.splitlines() if line.startswith("export: ")]
    assert len(steps) == 4 and steps[0].endswith("(step 1 of 4)"), printed.out
    assert "loading trial" in steps[1] and "MLflow" in steps[3]
    assert "verified the SavedModel" not in printed.out  # said once, in the summary
    assert "reloaded with tf.saved_model.load" in printed.out
