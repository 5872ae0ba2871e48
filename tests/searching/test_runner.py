"""``nas_mnist.search`` as a notebook uses it, plus ``nas_mnist.export`` and ``nas_mnist.report``."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from support import TINY_SPACE as TINY
from support import mlflow_runs, mlflow_uri

import nas_mnist


@pytest.mark.slow
def test_a_notebook_runs_search_twice_then_exports_and_reports(workdir, real_mnist_path):
    Path("tiny.yaml").write_text(yaml.safe_dump(TINY))
    settings = dict(epochs=1, max_train_samples=500, data=real_mnist_path, space="tiny.yaml",
                    storage="sqlite:///s.db", study_name="demo", tracking_uri=mlflow_uri(),
                    baselines="none", progress=False)
    first = nas_mnist.search(trials=2, **settings)
    assert isinstance(first.study, optuna.Study)
    assert len(first.leaderboard) == 2 and set(first.leaderboard["state"]) == {"complete"}
    assert first.best_trial.number == int(first.leaderboard.loc[0, "trial"])
    assert round(first.best_trial.value, 4) == first.leaderboard.loc[0, "val_accuracy"]

    # A re-run in the same process resumes the study, under the same MLflow parent run.
    second = nas_mnist.search(trials=3, **settings)
    assert len(second.leaderboard) == 3 and second.parent_run_id == first.parent_run_id
    parents, children = mlflow_runs(mlflow_uri(), "demo")
    assert len(parents) == 1 and len(children) == 3
    # Each run names its data as an MLflow dataset input, logged once even when resumed.
    for run in parents + children:
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["mnist"]

    exported = nas_mnist.export(out="best", storage="sqlite:///s.db", study_name="demo",
                                data=real_mnist_path)
    assert exported.trial_number == second.best_trial.number
    assert exported.verification.max_abs_difference < 1e-5 and exported.mlflow_model_uri
    written = nas_mnist.report(out="rep", storage="sqlite:///s.db", study_name="demo",
                               data=real_mnist_path)
    assert written.best_trial == second.best_trial.number
    assert (Path("rep") / "report.html").is_file() and len(written.leaderboard) == 3


def test_resuming_at_another_fidelity_exits_2_in_one_line_before_anything_is_written(
        workdir, real_mnist_path, capsys):
    from optuna.trial import TrialState, create_trial
    from support import search_args

    from nas_mnist.cli.main import main
    from nas_mnist.study.opening import open_study
    from nas_mnist.trial_attributes import SETTINGS_ATTR

    study, _ = open_study("sqlite:///s.db", "demo")  # searched before at 3 epochs of 10,000
    record = {"epochs": 3, "max_train_samples": 10_000}
    study.set_user_attr(SETTINGS_ATTR, record)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.98))
    assert main(search_args(real_mnist_path, 4)) == 2  # --epochs 1, 500 images
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "trained with --epochs 3, --max-train-samples 10000" in line
    assert "asks for --epochs 1, --max-train-samples 500" in line
    assert "--allow-mixed-fidelity" in line
    after = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    assert len(after.trials) == 1 and after.user_attrs[SETTINGS_ATTR] == record  # no seeds


@pytest.mark.slow
def test_a_search_with_a_final_stage_ends_with_a_registered_champion(workdir, real_mnist_path):
    from mlflow import MlflowClient
    from support import search_args

    from nas_mnist.cli.main import main

    Path("tiny.yaml").write_text(yaml.safe_dump(TINY))
    args = search_args(real_mnist_path, 4, "--space", "tiny.yaml", "--baselines", "s004_linear",
                       "--final-top-k", "1", "--final-epochs", "1")
    assert main(args) == 0
    final = optuna.load_study(study_name="demo/final", storage="sqlite:///s.db")
    keys = sorted(t.user_attrs["final_key"] for t in final.trials
                  if t.state == optuna.trial.TrialState.COMPLETE)
    assert len(keys) == 2 and keys[0].startswith("baseline:s004_linear/")  # top 1 + the seed
    version = MlflowClient(mlflow_uri()).get_model_version_by_alias("demo", "champion")
    assert int(version.version) == 1
    # The same command again: trials and final models are done, nothing new is trained.
    assert main(args) == 0
    assert len(optuna.load_study(study_name="demo/final", storage="sqlite:///s.db").trials) == 2
