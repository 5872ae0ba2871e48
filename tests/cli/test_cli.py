"""End-to-end tests of ``nas-mnist search`` and ``nas-mnist baselines`` on real MNIST subsets."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from support import SMALL_SPACE, mlflow_runs, mlflow_uri, search_args

from nas_mnist.cli.main import main
from nas_mnist.searching.baseline_trials import BASELINE_ATTR
from nas_mnist.study.trial_counts import count_finished, is_impossible


@pytest.mark.slow
def test_search_then_resume_adds_exactly_the_missing_trials(workdir, real_mnist_path):
    assert main(search_args(real_mnist_path, 4, "--space", "small.yaml", "--baselines",
                            "none")) == 0
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    # Impossible architectures (pruned before training) stay in the study uncounted.
    assert count_finished(study) == 4
    assert len(study.trials) == 4 + sum(map(is_impossible, study.trials))

    parents, children = mlflow_runs(mlflow_uri(), "demo")
    assert len(parents) == 1 and len(children) == len(study.trials)
    parent_id = parents[0].info.run_id
    assert parents[0].info.status == "FINISHED"
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri())
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.status == "FINISHED"
        state = run.data.tags["state"]
        assert state in ("complete", "pruned")
        if state == "complete":
            history = client.get_metric_history(run.info.run_id, "val_accuracy")
            assert [m.step for m in history] == [0]
            assert 0.0 <= history[0].value <= 1.0
            assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
            assert run.data.metrics["num_params"] > 0
        else:
            assert run.data.tags["reason"]
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id

    # Resume: --trials 6 adds exactly two trials under the same parent run.
    assert main(search_args(real_mnist_path, 6, "--space", "small.yaml", "--baselines",
                            "none")) == 0
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    assert count_finished(study) == 6
    parents, children = mlflow_runs(mlflow_uri(), "demo")
    assert [p.info.run_id for p in parents] == [parent_id]
    assert len(children) == len(study.trials)
    # The resumed sampler does not replay the first run's suggestions.
    params = [json.dumps(t.params, sort_keys=True) for t in study.trials if t.params]
    assert len(set(params)) == len(params)


@pytest.mark.slow
def test_impossible_architecture_is_pruned_with_its_reason(workdir, real_mnist_path):
    # 7x7 'valid' convs with a 'valid' pool after each conv (pool_every 1) shrink the map to
    # zero; pool_every 2 does not (a space without any valid point is refused when loaded, see
    # test_space_without_a_valid_architecture_exits_2). With --seed 2, TPE's first (random)
    # trial has pool_every 1.
    space = dict(SMALL_SPACE, conv=dict(SMALL_SPACE["conv"], kernel_size=[7], padding=["valid"]),
                 pooling=dict(SMALL_SPACE["pooling"], every=[1, 2]))
    Path("impossible.yaml").write_text(yaml.safe_dump(space))
    assert main(search_args(real_mnist_path, 1, "--space", "impossible.yaml",
                            "--baselines", "none", "--seed", "2")) == 0
    trial = optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials[0]
    assert trial.state.name == "PRUNED"
    assert trial.user_attrs["reason"].startswith("invalid_architecture")
    assert "28 -> 22 -> 11 -> 5 -> 2 -> 0" in trial.user_attrs["reason"]
    assert "train_seconds" not in trial.user_attrs  # no training happened


@pytest.mark.slow
def test_baselines_are_seeded_once_and_tagged(workdir, real_mnist_path):
    selection = "s004_linear,s001_m2,s003_m1"
    assert main(search_args(real_mnist_path, 3, "--baselines", selection)) == 0
    assert main(search_args(real_mnist_path, 4, "--baselines", selection)) == 0
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    names = [t.user_attrs.get(BASELINE_ATTR) for t in study.trials]
    assert sorted(n for n in names if n) == sorted(selection.split(","))
    assert names[:3] == selection.split(",")  # the baselines run first
    by_name = {t.user_attrs[BASELINE_ATTR]: t for t in study.trials if BASELINE_ATTR in t.user_attrs}
    # s003_m1 lies inside the default space: enqueued with params the sampler learns from.
    assert by_name["s003_m1"].user_attrs["in_space"] is True and by_name["s003_m1"].params
    assert by_name["s004_linear"].user_attrs["in_space"] is False
    assert by_name["s004_linear"].user_attrs["num_params"] == 7960
    _, children = mlflow_runs(mlflow_uri(), "demo")
    tags = sorted(r.data.tags.get("baseline", "") for r in children)
    assert [t for t in tags if t] == sorted(selection.split(","))


def test_bad_flags_exit_2_and_create_nothing(workdir, real_mnist_path, capsys):
    before = set(Path(".").iterdir())
    assert main(["search", "--trials", "0"]) == 2
    assert main(["search", "--trials", "abc"]) == 2
    assert main(["search", "--storage", "redis://localhost/0", "--data", str(real_mnist_path)]) == 2
    assert "unknown storage scheme 'redis'" in capsys.readouterr().err
    assert main(["search", "--baselines", "s999_m1", "--storage", "sqlite:///s.db"]) == 2
    assert main(["search", "--data", "missing.npz", "--storage", "sqlite:///s.db",
                 "--tracking-uri", mlflow_uri()]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert main(["search", "--space", "nope.yaml", "--storage", "sqlite:///s.db"]) == 2
    assert set(Path(".").iterdir()) == before  # no study, no MLflow store, nothing


def test_space_without_a_valid_architecture_exits_2(workdir, real_mnist_path, capsys):
    # Every choice shrinks the map to zero: 7x7 'valid' convs with a 'valid' pool after each.
    space = dict(SMALL_SPACE, conv=dict(SMALL_SPACE["conv"], kernel_size=[7], padding=["valid"]))
    Path("impossible.yaml").write_text(yaml.safe_dump(space))
    before = set(Path(".").iterdir())
    assert main(search_args(real_mnist_path, 1, "--space", "impossible.yaml")) == 2
    err = capsys.readouterr().err
    assert "impossible.yaml: no choice of this space gives a valid architecture" in err
    assert "28 -> 22 -> 11 -> 5 -> 2 -> 0" in err
    assert set(Path(".").iterdir()) == before  # no study, no MLflow store


def test_baselines_list_json_has_all_24_with_exact_params(capsys):
    assert main(["baselines", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24
    params = {r["name"]: r["params"] for r in rows}
    assert params["s000_m1"] == 612_362 and params["s002_m10"] == 37_987_722
    assert {"name", "source", "params", "reported_test_accuracy", "in_space"} <= set(rows[0])
    # Every seed CNN but s002_m10 (parallel branches) is a point of the default space; the
    # dense-only models of notebook 004 are not.
    outside = {r["name"] for r in rows if not r["in_space"]}
    assert outside == {"s002_m10", "s004_linear", "s004_mlp", "s004_mlp_dropout"}
    assert main(["baselines", "list", "--json", "--space", "small_cnn"]) == 0
    assert not [r for r in json.loads(capsys.readouterr().out) if r["in_space"]]
    assert main(["baselines", "list", "--space", "nope.yaml"]) == 2
    assert "nope.yaml: search-space file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_baselines_train_logs_a_run_and_prints_reported_accuracy(workdir, real_mnist_path,
                                                                  capsys):
    assert main(["baselines", "train", "s004_linear", "--epochs", "1", "--max-train-samples",
                 "500", "--data", str(real_mnist_path), "--tracking-uri", mlflow_uri()]) == 0
    out = capsys.readouterr().out
    assert "reported 0.9160" in out and "test_accuracy" in out
    _, children = mlflow_runs(mlflow_uri(), "nas-mnist-baselines")
    assert len(children) == 1 and children[0].data.tags["baseline"] == "s004_linear"


@pytest.mark.slow
def test_commands_after_a_search_need_no_data_flag(workdir, real_mnist_path, capsys):
    import shutil

    data = shutil.copy(real_mnist_path, workdir / "mnist.npz")
    valid = {**SMALL_SPACE, "conv": {**SMALL_SPACE["conv"], "kernel_size": [3],
                                     "padding": ["same"]}}  # every trial completes
    Path("valid.yaml").write_text(yaml.safe_dump(valid))
    assert main([*search_args(Path(data), 1, "--space", "valid.yaml", "--baselines", "none")]) == 0
    study = ["--storage", "sqlite:///s.db", "--study-name", "demo"]
    assert main(["report", *study, "--out", "rep"]) == 0
    assert main(["export", *study, "--out", "best"]) == 0
    assert main(["baselines", "train", "s004_linear", "--epochs", "1", "--max-train-samples",
                 "500", *study]) == 0
    _, children = mlflow_runs(mlflow_uri(), "nas-mnist-baselines")  # the study's store
    assert len(children) == 1 and not Path("mlflow.db").exists()
    with open(data, "ab") as handle:
        handle.write(b"\0")
    capsys.readouterr()
    assert main(["export", *study, "--out", "best2"]) == 2
    assert "changed since" in capsys.readouterr().err and not Path("best2").exists()


@pytest.mark.parametrize("argv", [["-v", "baselines", "list"], ["baselines", "list", "-v"],
                                  ["baselines", "--verbose", "list"]])
def test_verbose_is_accepted_before_or_after_the_command(argv):
    from nas_mnist.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(argv).verbose is True
    assert parser.parse_args([a for a in argv if a not in ("-v", "--verbose")]).verbose is False


@pytest.mark.parametrize("argv, storage, says", [
    (["search"], "sqlite:///nas_mnist.db", False),
    (["search", "--jobs", "2"], "journal:///nas_mnist.log", True),
    (["search", "--jobs", "2", "--storage", "journal:///mine.log"], "journal:///mine.log", False),
    (["search", "--storage", "sqlite:///s.db"], "sqlite:///s.db", False),
])
def test_jobs_without_a_named_storage_use_a_journal_file_and_say_so(argv, storage, says):
    """Issue 20: `search --jobs 2` with the default SQLite storage exited 2; the user named no
    storage, so the default is one that takes several workers."""
    from nas_mnist.cli.main import build_parser
    from nas_mnist.cli.search import jobs_storage_line, settings_from_args

    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    assert settings.storage == storage
    line = jobs_storage_line(args, settings)
    assert (line is not None) is says
    if says:
        assert "--storage journal:///nas_mnist.log" in line and "\n" not in line


def test_jobs_on_a_named_sqlite_storage_still_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--jobs", "2", "--storage", "sqlite:///s.db", "--trials", "2"]) == 2
    assert "a SQLite storage" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()
