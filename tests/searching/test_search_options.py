"""``search`` options from the performance work: samplers, pruners, several objectives (a Pareto
front), the KerasTuner engine, and the input pipeline and timings of a trial."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from support import mlflow_runs, mlflow_uri, search_args

from nas_mnist.cli.main import main
from nas_mnist.study.opening import make_pruner, make_sampler

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "cls"), [
    ("tpe", optuna.samplers.TPESampler),
    ("random", optuna.samplers.RandomSampler),
    ("nsga2", optuna.samplers.NSGAIISampler),
])
def test_sampler_names_give_optunas_samplers(name, cls):
    sampler = make_sampler(0, name)
    assert isinstance(sampler, cls) and type(sampler).__name__ == cls.__name__


@pytest.mark.parametrize("name", ["tpe", "random", "nsga2"])
def test_stepped_floats_are_stored_on_their_step(name):
    """0.30000000000000004 (0 + 6 * 0.05 in floating point) is stored as 0.3."""
    study = optuna.create_study(sampler=make_sampler(0, name), direction="maximize")
    for _ in range(30):  # TPE's start-up trials and its model-based ones
        trial = study.ask()
        dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
        rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        study.tell(trial, dropout + rate)
    stored = [t.params["dropout"] for t in study.trials]
    assert all(value == float(f"{value:.12g}") for value in stored)
    assert all(round(value / 0.05) * 0.05 == pytest.approx(value, abs=1e-12) for value in stored)
    assert 0.3 in stored, stored  # 0 + 6 * 0.05: 0.30000000000000004 with Optuna's own samplers
    assert len({t.params["learning_rate"] for t in study.trials}) == 30  # not stepped: untouched


@pytest.mark.parametrize(("name", "cls"), [
    ("median", optuna.pruners.MedianPruner),
    ("hyperband", optuna.pruners.HyperbandPruner),
    ("none", optuna.pruners.NopPruner),
])
def test_pruner_names_give_optunas_pruners(name, cls):
    assert type(make_pruner(name, epochs=9)) is cls


def test_gp_sampler_without_pytorch_is_a_usage_error(workdir, real_mnist_path, capsys):
    pytest.importorskip("optuna")
    try:
        import torch  # noqa: F401
        pytest.skip("PyTorch is installed: GPSampler works")
    except ImportError:
        pass
    assert main(search_args(real_mnist_path, 1, "--sampler", "gp")) == 2
    assert "pip install torch" in capsys.readouterr().err
    assert not Path("s.db").exists()


def test_bad_objective_and_pruner_combinations_exit_2_before_anything_is_made(
        workdir, real_mnist_path, capsys):
    assert main(search_args(real_mnist_path, 1, "--objective", "val_accuracy,size")) == 2
    assert "unknown objective size" in capsys.readouterr().err
    assert main(search_args(real_mnist_path, 1, "--objective", "params,val_accuracy")) == 2
    assert main(search_args(real_mnist_path, 1, "--objective", "val_accuracy,params",
                            "--pruner", "median")) == 2
    assert "cannot prune" in capsys.readouterr().err
    assert main(search_args(real_mnist_path, 1, "--engine", "keras-tuner", "--sampler",
                            "random")) == 2
    assert not Path("s.db").exists() and not Path("m.db").exists()


@pytest.mark.slow
def test_two_objectives_give_a_pareto_front_in_the_leaderboard(workdir, real_mnist_path,
                                                                capsys):
    from nas_mnist.study.leaderboard import leaderboard

    assert main(search_args(real_mnist_path, 4, "--space", "small.yaml", "--baselines", "none",
                            "--objective", "val_accuracy,params")) == 0
    assert "Pareto front" in capsys.readouterr().out
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    frame = leaderboard(study)
    done = frame[frame["state"].eq("complete")]
    front = done[done["pareto"].eq(True)]
    assert len(front) >= 1
    # The front is exactly the non-dominated complete trials (higher accuracy, fewer params).
    points = done[["val_accuracy", "params"]].to_numpy(dtype=float)
    for _, row in done.iterrows():
        dominated = np.any((points[:, 0] >= row["val_accuracy"]) & (points[:, 1] <= row["params"])
                           & ((points[:, 0] > row["val_accuracy"]) | (points[:, 1] < row["params"])))
        assert bool(row["pareto"]) == (not dominated)
    # Front rows come first.
    assert frame["pareto"].tolist()[: len(front)] == [True] * len(front)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values[1] == t.user_attrs["num_params"]
            assert not t.intermediate_values  # multi-objective trials are not reported/pruned
    # Resuming with another objective is refused, and changes nothing.
    assert main(search_args(real_mnist_path, 5, "--space", "small.yaml", "--baselines",
                            "none")) == 2
    assert "optimizes val_accuracy,params" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials) == len(
        study.trials)


@pytest.mark.slow
def test_hyperband_pruner_and_random_sampler_run_a_search(workdir, real_mnist_path):
    assert main(search_args(real_mnist_path, 3, "--space", "small.yaml", "--baselines", "none",
                            "--sampler", "random", "--pruner", "hyperband")) == 0
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    assert len([t for t in study.trials if t.state.is_finished()]) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["hyperband", "random"])
def test_keras_tuner_engine_logs_trials_to_mlflow_like_optuna(workdir, real_mnist_path,
                                                              tuner):
    from mlflow import MlflowClient

    args = search_args(real_mnist_path, 3, "--space", "small.yaml", "--engine", "keras-tuner",
                       "--tuner", tuner, "--epochs", "2")
    assert main(args) == 0
    assert Path("keras_tuner/demo").is_dir()
    parents, children = mlflow_runs(mlflow_uri(), "demo")
    # Both run --trials trials: Hyperband repeats its brackets (at 2 epochs one bracket holds
    # 2 models; with a single iteration it stopped after them).
    assert len(parents) == 1 and len(children) == 3
    client = MlflowClient(mlflow_uri())
    complete = 0
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["engine"] == "keras-tuner" and run.data.tags["tuner"] == tuner
        assert run.info.status == "FINISHED"
        assert run.data.tags["state"] in ("complete", "pruned")
        if run.data.tags["state"] == "pruned":
            assert run.data.tags["reason"].startswith("invalid_architecture")
            continue
        complete += 1
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert len(history) == run.data.metrics["epochs_trained"] >= 1
        assert 0 <= run.data.metrics["best_val_accuracy"] <= 1
        assert "test_accuracy" in run.data.metrics
        assert run.data.params["arch.depth"] == "3"  # the spec's flat params (small.yaml)
        assert any(k.startswith("space.") for k in run.data.params)  # and the sampled ones
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"spec.json", "learning_curves.png"} <= names
    assert complete >= 1


def test_keras_tuner_starts_no_trial_after_its_timeout(tmp_path):
    from support import random_splits

    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.keras_tuner import RunningTrial, TunerConfig, make_tuner

    def tuner(timeout):
        config = TunerConfig("hyperband", 2, 50, 0, tmp_path, f"t{timeout}",
                             hyperband_iterations=50, timeout=timeout)
        made = make_tuner(config, load_search_space("small_cnn"), random_splits(60))
        made._end(RunningTrial(0), "complete", "")  # a trial ended
        return made

    assert tuner(None).oracle.max_trials == 50
    assert tuner(3600).oracle.max_trials == 50  # time left: trials go on
    assert tuner(0).oracle.max_trials == 0  # the next trial is STOPPED (none started yet)


def test_keras_tuner_ends_a_spec_over_max_params_before_building_it(tmp_path, monkeypatch):
    import keras_tuner as kt
    from support import random_splits

    import nas_mnist.model.builder as builder
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.keras_tuner import TunerConfig, make_tuner

    def tuner(max_params):
        config = TunerConfig("random", 1, 5, 0, tmp_path, f"p{max_params}", max_params=max_params)
        return make_tuner(config, load_search_space("small_cnn"), random_splits(60))

    built = []
    real_build = builder.build_model
    monkeypatch.setattr(builder, "build_model", lambda spec: built.append(spec) or real_build(spec))
    hp = kt.HyperParameters()
    model = tuner(None).hypermodel.build(hp)  # KerasTuner's defaults: the lowest values
    assert built and model.count_params() == built[0].num_params
    calls, limit = len(built), built[0].num_params - 1
    with pytest.raises(kt.errors.FailedTrialError,
                       match=rf"^too_large: {built[0].num_params:,} params exceed "
                             rf"--max-params {limit:,}$"):
        tuner(limit).hypermodel.build(kt.HyperParameters())
    assert len(built) == calls  # refused on the spec: no model was built
    config = TunerConfig("random", 1, 5, 0, tmp_path, "mflops", max_mflops=0)  # any spec exceeds 0
    with pytest.raises(kt.errors.FailedTrialError, match=r"^too_costly: .* MFLOPs per image "
                                                         r"exceed --max-mflops 0$"):
        make_tuner(config, load_search_space("small_cnn"),
                   random_splits(60)).hypermodel.build(kt.HyperParameters())
    assert len(built) == calls


def test_keras_tuner_hyperparameters_sample_the_default_space():
    import keras_tuner as kt

    from nas_mnist.architecture.spec import SpecError
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.keras_tuner import HyperParametersTrial

    space = load_search_space()
    hp = kt.HyperParameters()
    spec = space.suggest(HyperParametersTrial(hp))  # KerasTuner's defaults: each lowest value
    assert spec.depth == 1 and spec.conv_layers[0].filters == 4
    # A log int range (filters 4-512) is every integer on a log scale, as in Optuna.
    filters = next(h for h in hp.space if h.name == "block1_conv1_filters")
    assert (filters.min_value, filters.max_value, filters.step, filters.sampling) == (
        4, 512, None, "log")
    samples = {filters.random_sample(seed) for seed in range(50)}
    assert samples <= set(range(4, 513)) and len(samples) > 20
    # Random values for every hyperparameter seen give specs (or impossible ones).
    built = 0
    for seed in range(20):
        values = kt.HyperParameters()
        values.values.update({h.name: h.random_sample(seed) for h in hp.space})
        try:
            built += isinstance(space.suggest(HyperParametersTrial(values)), type(spec))
        except SpecError:
            pass
    assert built > 0


def test_training_options_reject_bad_values():
    from nas_mnist.model.training import TrainingOptions

    with pytest.raises(ValueError, match="input_pipeline"):
        TrainingOptions(input_pipeline="generator")
    with pytest.raises(ValueError, match=">= 1"):
        TrainingOptions(eval_batch_size=0)


@pytest.mark.parametrize("pipeline", ["dataset", "arrays"])
def test_both_input_pipelines_train_and_time_each_phase(pipeline):
    from nas_mnist.architecture.spec import ArchitectureSpec, Conv, Dense, Flatten, MaxPool
    from nas_mnist.data import MnistArrays, make_splits
    from nas_mnist.model.training import TrainingOptions, train_spec

    rng = np.random.default_rng(0)
    arrays = MnistArrays(rng.integers(0, 256, (600, 28, 28), dtype=np.uint8),
                         rng.integers(0, 10, 600), rng.integers(0, 256, (100, 28, 28),
                                                                dtype=np.uint8),
                         rng.integers(0, 10, 100), "random")
    data = make_splits(arrays, validation_size=100)
    spec = ArchitectureSpec(layers=(Conv(4, 3), MaxPool(2), Flatten(), Dense(8)))
    result = train_spec(spec, data, 2, seed=0, batch_size=64,
                        options=TrainingOptions(input_pipeline=pipeline, eval_batch_size=64,
                                                steps_per_execution=2))
    assert len(result.history) == 2 and 0 <= result.val_accuracy <= 1
    assert set(result.phase_seconds) == {"build", "fit", "test_eval"}
    assert all(v > 0 for v in result.phase_seconds.values())
    assert result.phase_seconds["fit"] == result.train_seconds


@pytest.mark.slow
def test_bench_training_prints_both_speeds_and_the_ratio_last(real_mnist_path):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/bench_training.py"), "--model", "s001_m2",
         "--epochs", "1", "--max-train-samples", "300", "--repeats", "1", "--data",
         str(real_mnist_path)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert any(line.startswith("plain keras (notebooks)") and "s/epoch" in line for line in lines)
    assert any(line.startswith("nas-mnist trial") and "s/epoch" in line for line in lines)
    assert any("per-trial overhead" in line for line in lines)
    assert lines[-1].startswith("ratio: ") and float(lines[-1].split()[1]) > 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_search_runs_on_the_jax_backend_without_tensorflow(workdir, real_mnist_path):
    # As on a GPU host that has JAX but no TensorFlow (scripts/gpu_check.sh): a package named
    # tensorflow that cannot be imported shadows the installed one, so any import of it fails.
    blocker = workdir / "no_tensorflow" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow'\", name='tensorflow')\n")
    path = os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": path}
    command = [sys.executable, "-m", "nas_mnist",
               *search_args(real_mnist_path, 3, "--space", "small.yaml", "--baselines", "none")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Keras backend jax on CPU" in done.stdout
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(0 <= t.value <= 1 and t.user_attrs["model_uri"] for t in complete)
    _, children = mlflow_runs(mlflow_uri(), "demo")
    assert len(children) == len(study.trials)
    assert "tensorflow" not in done.stderr.lower(), done.stderr[-3000:]
