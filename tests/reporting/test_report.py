"""Tests of ``nas_mnist.reporting.report`` / ``nas-mnist report``: per-trial artifacts, the parent run's
study artifacts, and the report folder, after a small real search."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image
from support import REPO_ROOT, SMALL_SPACE

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.cli.main import main
from nas_mnist.plots import confusion_matrix, save_learning_curves
from nas_mnist.reporting.report import leaderboard_markdown
from nas_mnist.searching.refresher import ParentRunRefresher
from nas_mnist.study.leaderboard import VIEWS
from nas_mnist.study.plots import write_study_plots
from nas_mnist.tracking.trial_artifacts import log_trial_artifacts, numeric_params
from nas_mnist.trial_attributes import trial_spec_data

REPORT_COLUMNS = VIEWS["records"]

NUM_TRIALS = 4  # trial 0 is the baseline s004_linear; with seed 0 trial 1 is an impossible
# architecture (pruned before training, not counted towards --trials) and trials 2 and 3
# complete: --trials 3 leaves these 4 trials in the study.


def assert_real_png(path: Path, min_width: int = 300, min_height: int = 200) -> None:
    """A PNG that opens, has a sensible size and is not one flat colour."""
    assert path.is_file() and path.stat().st_size > 5_000, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height, image.size
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 5.0, f"{path} is (almost) one flat colour"
    assert len(np.unique(pixels)) > 20, f"{path} has too few grey levels to be a plot"


# ---------------------------------------------------------------------------------------------
# fast: no training
# ---------------------------------------------------------------------------------------------


def test_numeric_params_encode_the_architecture():
    spec = get_baseline("s001_m2").spec
    num = numeric_params(spec)
    assert num["depth"] == spec.depth
    assert num["max_kernel_size"] == max(spec.kernel_sizes)
    assert num["mean_kernel_size"] == pytest.approx(sum(spec.kernel_sizes) / spec.depth)
    assert num["num_pools"] == spec.summary()["num_pools"]
    assert num["log10_learning_rate"] == pytest.approx(math.log10(spec.optimizer.learning_rate))
    assert num["log10_params"] == pytest.approx(math.log10(spec.num_params))
    assert num["batch_size"] == spec.batch_size
    assert all(isinstance(v, float) and math.isfinite(v) for v in num.values())
    linear = numeric_params(get_baseline("s004_linear").spec)  # no convs at all
    assert linear["depth"] == 0 and linear["mean_kernel_size"] == 0 and linear["max_kernel_size"] == 0
    assert linear["optimizer_index"] == 2  # sgd


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_leaderboard_markdown_escapes_pipes_and_formats_numbers():
    import pandas as pd

    frame = pd.DataFrame([{"trial": 3, "val_accuracy": 0.98765, "params": 12345,
                           "note": "a | b"}])
    text = leaderboard_markdown(frame, ("trial", "val_accuracy", "params", "note"))
    lines = text.splitlines()
    assert lines[0] == "| trial | val_accuracy | params | note |"
    assert lines[2] == "| 3 | 0.9877 | 12,345 | a \\| b |"


def test_learning_curves_png_has_two_panels_of_real_lines(tmp_path):
    history = [{"loss": 1.0 / (e + 1), "accuracy": 0.5 + 0.1 * e, "val_loss": 1.2 / (e + 1),
                "val_accuracy": 0.45 + 0.1 * e} for e in range(4)]
    path = save_learning_curves(history, tmp_path / "curves.png", "trial-0001")
    assert_real_png(path, 900, 350)
    with pytest.raises(ValueError, match="empty"):
        save_learning_curves([], tmp_path / "none.png")


def test_study_plots_are_skipped_with_reasons_on_a_study_without_enough_trials(tmp_path):
    study = optuna.create_study(direction="maximize")
    files, skipped = write_study_plots(study, tmp_path)
    assert files == []
    assert set(skipped) == {"optimization_history", "intermediate_values", "parallel_coordinate",
                            "param_importances"}
    assert "2 complete trials" in skipped["param_importances"]


class _BrokenTracker:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError("tracking store is gone")

        return fail


class _CountingRefresher(ParentRunRefresher):
    """Records refreshes instead of making them; each 'takes' ``seconds``."""

    def __init__(self, n_trials, max_share, seconds):
        super().__init__(None, "parent", n_trials=n_trials, max_share=max_share)
        self.seconds, self.refreshed_after = seconds, []

    def refresh(self, study, importance=True):
        self.refreshed_after.append(len(study.trials) - 1)
        return self.seconds


@pytest.mark.parametrize(("max_share", "seconds", "expected"), [
    (1.0, 5.0, [0, 1, 2, 3, 4]),   # no throttle: after every trial
    (0.01, 5.0, [0, 4]),           # a 5 s refresh may run once per 500 s: first and last only
    (0.01, 0.0, [0, 1, 2, 3, 4]),  # a free refresh is never skipped
])
def test_parent_run_refreshes_are_throttled_to_a_share_of_the_search(max_share, seconds,
                                                                     expected):
    refresher = _CountingRefresher(5, max_share, seconds)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5, callbacks=[refresher])
    assert refresher.refreshed_after == expected


def test_refresh_and_trial_artifact_errors_never_fail_a_trial(caplog):
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with caplog.at_level(logging.WARNING, logger="nas_mnist.reporting.report"):
        ParentRunRefresher(_BrokenTracker(), "parent")(study, study.trials[0])  # no raise
        log_trial_artifacts(_BrokenTracker(), "run", get_baseline("s004_linear").spec,
                            result=None)  # no raise
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not refresh the study artifacts" in m for m in messages)
    assert any("could not log the report artifacts" in m for m in messages)


# ---------------------------------------------------------------------------------------------
# slow: a real small search, then the report
# ---------------------------------------------------------------------------------------------


def module_mnist_path() -> Path:
    """conftest's ``real_mnist_path`` for module-scoped fixtures (that one is function-scoped)."""
    path = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not path.exists():
        pytest.skip(f"real MNIST not found at {path}; set NAS_MNIST_DATA to run this test")
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 4-trial search (1 baseline) on real MNIST subsets; returns its paths and study."""
    real_mnist_path = module_mnist_path()
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow's artifact folder (./mlruns) lands here
        (root / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
        storage, tracking = f"sqlite:///{root}/s.db", f"sqlite:///{root}/m.db"
        assert main(["search", "--trials", str(NUM_TRIALS - 1), "--epochs", "2",
                     "--max-train-samples", "500", "--data", str(real_mnist_path),
                     "--storage", storage, "--study-name", "demo", "--tracking-uri", tracking,
                     "--space", "small.yaml", "--baselines", "s004_linear",
                     "--no-progress"]) == 0
        study = optuna.load_study(study_name="demo", storage=storage)
        yield {"root": root, "storage": storage, "tracking": tracking, "study": study,
               "data": real_mnist_path}


@pytest.fixture(scope="module")
def report_dir(searched):
    out = searched["root"] / "report"
    assert main(["report", "--storage", searched["storage"], "--study-name", "demo",
                 "--out", str(out), "--data", str(searched["data"])]) == 0
    return out


def _complete(study):
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.slow
def test_report_leaderboard_has_one_row_per_trial_with_baselines_marked(searched, report_dir):
    study = searched["study"]
    assert len(study.trials) == NUM_TRIALS
    with open(report_dir / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["trial"]) for r in rows) == list(range(NUM_TRIALS))
    assert set(REPORT_COLUMNS) <= set(rows[0])
    by_trial = {int(r["trial"]): r for r in rows}
    assert by_trial[0]["baseline"] == "s004_linear (out-of-space)"
    assert by_trial[0]["params"] == "7960" and by_trial[0]["depth"] == "0"
    assert all(by_trial[n]["baseline"] == "" for n in range(1, NUM_TRIALS))
    for t in study.trials:
        row = by_trial[t.number]
        assert row["state"] == t.state.name.lower()
        if t.state.name == "COMPLETE":
            assert float(row["val_accuracy"]) == pytest.approx(t.value)
            assert float(row["test_accuracy"]) == pytest.approx(t.user_attrs["test_accuracy"])
            assert row["mlflow_run_id"] == t.user_attrs["mlflow_run_id"]
    complete = [float(r["val_accuracy"]) for r in rows if r["state"] == "complete"]
    assert complete == sorted(complete, reverse=True)  # best first
    markdown = (report_dir / "leaderboard.md").read_text().splitlines()
    assert len(markdown) == 2 + NUM_TRIALS
    assert sum("s004_linear" in line for line in markdown) == 1


@pytest.mark.slow
def test_report_plots_are_real_images_of_the_study(searched, report_dir):
    study = searched["study"]
    for name in ("optimization_history", "intermediate_values", "parallel_coordinate",
                 "param_importances", "confusion_matrix", "misclassified"):
        assert_real_png(report_dir / f"{name}.png")
    # The interactive versions carry the study's numbers: every complete trial's val_accuracy.
    history = (report_dir / "optimization_history.html").read_text()
    assert all(repr(t.value) in history for t in _complete(study))
    assert (report_dir / "plotly.min.js").stat().st_size > 1_000_000  # one shared copy
    assert 'src="plotly.min.js"' in history
    importances = json.loads((report_dir / "param_importances.json").read_text())
    assert importances and sum(importances.values()) == pytest.approx(1.0)
    assert {"depth", "log10_params"} & set(importances)
    page = (report_dir / "report.html").read_text()
    for name in ("optimization_history", "parallel_coordinate", "confusion_matrix",
                 "misclassified"):
        assert f'src="{name}.png"' in page
    # The best model was reloaded from MLflow and scores on the test split as it did in search.
    best = max(_complete(study), key=lambda t: t.value)
    assert f"test_accuracy recomputed here: {best.user_attrs['test_accuracy']:.4f}" in page
    assert f"Best trial by val_accuracy: <b>{best.number}</b>" in page


@pytest.mark.slow
def test_trial_runs_have_model_summary_learning_curves_and_numeric_params(searched, tmp_path):
    from mlflow import MlflowClient

    from nas_mnist.architecture.spec import ArchitectureSpec

    client = MlflowClient(searched["tracking"])
    for t in _complete(searched["study"]):
        run_id = t.user_attrs["mlflow_run_id"]
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"spec.json", "model_summary.txt", "learning_curves.png"} <= names
        # the trained model is an MLflow model logged from the run (MLflow 3 keeps it apart)
        model = client.get_logged_model(t.user_attrs["model_uri"].removeprefix("models:/"))
        assert model.source_run_id == run_id and model.name == client.get_run(run_id).info.run_name
        assert model.name.startswith(f"trial-{t.number:04d}")  # named after its trial
        summary = Path(client.download_artifacts(run_id, "model_summary.txt", str(tmp_path)))
        text = summary.read_text()
        counts = {kind: int(n.replace(",", "")) for kind, n in
                  re.findall(r"^ (Trainable|Non-trainable) params: ([\d,]+)", text, re.M)}
        assert counts["Trainable"] + counts["Non-trainable"] == t.user_attrs["num_params"]
        curves = Path(client.download_artifacts(run_id, "learning_curves.png", str(tmp_path)))
        assert_real_png(curves, 900, 350)
        metrics = client.get_run(run_id).data.metrics
        expected = numeric_params(ArchitectureSpec.from_dict(trial_spec_data(t)))
        for key, value in expected.items():
            assert metrics[f"num.{key}"] == pytest.approx(value)


@pytest.mark.slow
def test_parent_run_has_the_study_leaderboard_and_plots(searched, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(searched["tracking"])
    parent_id = searched["study"].user_attrs["mlflow_parent_run_id"]
    names = {Path(a.path).name for a in client.list_artifacts(parent_id, "study")}
    expected = {"leaderboard.csv", "param_importances.json"} | {
        f"{kind}.{ext}" for kind in ("optimization_history", "intermediate_values",
                                     "parallel_coordinate", "param_importances")
        for ext in ("html", "png")}
    assert expected <= names
    board = Path(client.download_artifacts(parent_id, "study/leaderboard.csv", str(tmp_path)))
    with open(board, newline="") as f:
        assert len(list(csv.DictReader(f))) == NUM_TRIALS  # refreshed after the last trial
    png = Path(client.download_artifacts(parent_id, "study/parallel_coordinate.png",
                                         str(tmp_path)))
    assert_real_png(png)
    # Refreshed after the first and the last trial at least (throttled in between), each timed.
    refreshes = client.get_metric_history(parent_id, "refresh_seconds")
    assert 2 <= len(refreshes) <= NUM_TRIALS and all(0 < m.value < 60 for m in refreshes)
    assert max(m.step for m in refreshes) == NUM_TRIALS - 1
    best = client.get_metric_history(parent_id, "best_val_accuracy")
    assert best[-1].value == pytest.approx(searched["study"].best_value)


@pytest.mark.slow
def test_report_format_json_prints_one_entry_per_trial(searched, capsys):
    capsys.readouterr()
    assert main(["report", "--storage", searched["storage"], "--study-name", "demo",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["trial"] for r in rows) == list(range(NUM_TRIALS))
    assert all(set(REPORT_COLUMNS) == set(r) for r in rows)
    baselines = [r for r in rows if r["baseline"]]
    assert [r["trial"] for r in baselines] == [0]
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert all(r["val_accuracy"] is None and r["reason"] for r in pruned)


@pytest.mark.slow
def test_report_bad_input_exits_2_and_writes_nothing(searched, tmp_path, capsys):
    common = ["report", "--storage", searched["storage"]]
    out = tmp_path / "out"
    assert main([*common, "--study-name", "nope", "--out", str(out)]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert not out.exists()
    assert main([*common, "--study-name", "demo"]) == 2  # no --out
    assert "--out DIR is required" in capsys.readouterr().err
    assert main([*common, "--study-name", "demo", "--format", "json", "--out", str(out)]) == 2
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([*common, "--study-name", "demo", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------------------
# fast: the report page of a study written with Optuna directly (no training)
# ---------------------------------------------------------------------------------------------


def _small_study(num_complete: int = 6) -> optuna.Study:
    """Complete trials with baseline specs and per-epoch values, one pruned, one waiting."""
    from nas_mnist.architecture.baselines import BASELINES

    study = optuna.create_study(direction="maximize")
    for i in range(num_complete):
        trial = study.ask()
        spec = BASELINES[i].spec
        value = 0.9 + 0.01 * i
        for epoch in range(3):
            trial.report(value - 0.1 + 0.05 * epoch, epoch)
        for key, attr in (("spec", spec.to_dict()), ("val_accuracy", value),
                          ("test_accuracy", value - 0.005), ("params", spec.num_params),
                          ("best_epoch", 2)):
            trial.set_user_attr(key, attr)
        study.tell(trial, value)
    pruned = study.ask()
    pruned.set_user_attr("reason", "invalid_architecture: too small")
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.enqueue_trial({})  # waits for a later run
    return study


def test_report_page_lists_only_trials_that_ran_leaderboard_first(tmp_path):
    from nas_mnist.reporting.report import write_report

    study = _small_study()
    assert sum(t.state.name == "WAITING" for t in study.trials) == 1
    written = write_report(study, tmp_path)
    with open(tmp_path / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and {r["state"] for r in rows} == {"complete", "pruned"}
    assert len(written.leaderboard) == 7
    page = (tmp_path / "report.html").read_text()
    assert "waiting" not in page.split("<table")[1]
    assert "1 queued trial(s) not run yet (not listed)" in page
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings[0] == "Leaderboard" and "Search" in headings
    header = [h.replace("<wbr>", "") for h in re.findall(r"<th>(.+?)</th>", page)]
    assert tuple(header) == VIEWS["html"] and len(header) <= 12
    assert "numbered from 0" in page  # best_epoch and the learning curves' axis
    # Six complete trials: importances are drawn with the caveat.
    assert (tmp_path / "param_importances.png").exists()
    assert "Caveat: computed from only 6 complete trials" in page


def test_importances_caveat_disappears_from_20_complete_trials(tmp_path):
    from nas_mnist.reporting.page import MIN_TRIALS_FOR_IMPORTANCES, search_figures

    study = _small_study(num_complete=3)
    (tmp_path / "param_importances.png").write_bytes(b"")
    few = "\n".join(str(f) for f in search_figures(study, tmp_path))
    assert "Caveat: computed from only 3 complete trials" in few
    for _ in range(MIN_TRIALS_FOR_IMPORTANCES - 3):
        study.add_trial(optuna.trial.create_trial(value=0.5))
    many = "\n".join(str(f) for f in search_figures(study, tmp_path))
    assert "Caveat" not in many


def test_report_page_escapes_study_names_and_notes(tmp_path):
    from nas_mnist.architecture.baselines import BASELINES
    from nas_mnist.reporting.report import write_report

    study = optuna.create_study(direction="maximize", study_name="<b>x</b> & 'q'")
    trial = study.ask()
    trial.set_user_attr("spec", BASELINES[0].spec.to_dict())
    study.tell(trial, 0.9)
    pruned = study.ask()
    pruned.set_user_attr("reason", "<script>alert(1)</script>")
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    write_report(study, tmp_path, source="sqlite:///a<i>.db")
    page = (tmp_path / "report.html").read_text()
    assert "<b>x</b>" not in page and "<script>" not in page and "<i>" not in page
    assert "<title>nas-mnist report: &lt;b&gt;x&lt;/b&gt; &amp; &#39;q&#39;</title>" in page
    assert "<h1>Study &lt;b&gt;x&lt;/b&gt; &amp; &#39;q&#39;</h1>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<p>sqlite:///a&lt;i&gt;.db &middot; 2 trials ran: 1 complete, 1 pruned</p>" in page


def test_intermediate_values_axis_says_epochs_count_from_0(tmp_path):
    from nas_mnist.plots import EPOCH_AXIS_LABEL

    files, _ = write_study_plots(_small_study(3), tmp_path, importance=False)
    assert tmp_path / "intermediate_values.html" in files
    assert EPOCH_AXIS_LABEL.replace("'", "\\u0027") in (
        tmp_path / "intermediate_values.html").read_text().replace("'", "\\u0027")


def test_report_force_replaces_an_earlier_report_only(tmp_path, monkeypatch):
    import nas_mnist.reporting.report as report_module

    study = _small_study(3)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    copy = optuna.copy_study  # a stored study, so that report() can load it
    copy(from_study_name=study.study_name, from_storage=study._storage,
         to_storage=storage, to_study_name="demo")
    out = tmp_path / "rep"
    assert main(["report", "--storage", storage, "--study-name", "demo", "--out",
                 str(out)]) == 0
    first = (out / "report.html").stat().st_mtime_ns
    (out / "stale.txt").write_text("from an earlier report")
    # Without --force: refused, and the message points at --force.
    assert main(["report", "--storage", storage, "--study-name", "demo", "--out",
                 str(out)]) == 2
    assert (out / "stale.txt").exists()
    assert main(["report", "--storage", storage, "--study-name", "demo", "--out", str(out),
                 "--force"]) == 0
    assert not (out / "stale.txt").exists() and (out / "report.html").stat().st_mtime_ns != first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")] == []
    # A report that dies midway leaves the earlier one in place and no partial folder.
    monkeypatch.setattr(report_module, "render_page", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report_module.report(out=out, storage=storage, study_name="demo", force=True)
    assert (out / "report.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")] == []
    # Anything that is not an earlier report is never replaced.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["report", "--storage", storage, "--study-name", "demo", "--out", str(mine),
                 "--force"]) == 2
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------------------------------------
# fast: the "Final models" section, with a final study made by hand (no retrain)
# ---------------------------------------------------------------------------------------------


def _final(value: float, test: float, seed: int, source: int | None = None,
           baseline: str = "") -> optuna.trial.FrozenTrial:
    """A complete final trial retraining search trial ``source`` or ``baseline``."""
    what = {"baseline": baseline} if baseline else {"source_trial": source}
    key = f"baseline:{baseline}" if baseline else f"trial:{source}"
    return optuna.trial.create_trial(value=value, user_attrs={
        "val_accuracy": value, "test_accuracy": test, "num_params": 1000 + seed,
        "best_epoch": 18, "recipe": {"epochs": 20}, "final_seed": seed,
        "final_key": f"{key}/seed:{seed}", "mlflow_run_id": f"run{seed}", **what})


@pytest.fixture
def final_storage(tmp_path) -> str:
    """A stored ``_small_study`` as ``demo`` with ``demo/final``: search trial 5 retrained with
    seeds 0 and 1 and baseline s002_m9; the champion (final 0) has not the best test_accuracy."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = _small_study()
    optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage,
                      to_storage=storage, to_study_name="demo")
    final = optuna.create_study(study_name="demo/final", storage=storage, direction="maximize")
    for trial in (_final(0.9950, 0.9948, 0, source=5), _final(0.9940, 0.9962, 1, source=5),
                  _final(0.9930, 0.9941, 0, baseline="s002_m9")):
        final.add_trial(trial)
    return storage


def test_report_has_final_models_with_the_champion_and_the_reported_accuracies(
        final_storage, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--storage", final_storage, "--study-name", "demo", "--out",
                 str(out)]) == 0
    assert "3 final model(s); champion: final model 0 (trial 5), val_accuracy 0.9950, " \
        "test_accuracy 0.9948" in capsys.readouterr().out
    with open(out / "final_models.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["final_trial"], r["champion"], r["retrains"], r["seed"]) for r in rows] == [
        ("0", "True", "trial 5", "0"), ("1", "False", "trial 5", "1"),
        ("2", "False", "baseline s002_m9", "0")]
    assert float(rows[0]["search_val_accuracy"]) == pytest.approx(0.95)  # 0.9 + 0.01 * 5
    assert rows[0]["epochs"] == "20" and rows[0]["reported_test_accuracy"] == ""
    assert float(rows[2]["reported_test_accuracy"]) == \
        get_baseline("s002_m9").reported_test_accuracy == 0.9954
    markdown = (out / "final_models.md").read_text().splitlines()
    assert markdown[2].startswith("| champion | 0 | trial 5 | 0 | 0.9950 | 0.9948 | 1,000 | 20 |")

    page = (out / "report.html").read_text()
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings[:2] == ["Final models", "Leaderboard"]
    section = page.split("<h2>Final models</h2>")[1].split("<h2>Leaderboard</h2>")[0]
    champion_rows = re.findall(r'<tr class="champion">\s*<td class="text">champion</td>\s*'
                               r"<td>(\d+)</td>", section)
    assert champion_rows == ["0"] and section.count("champion</td>") == 1
    assert '<tr class="baseline">' in section and "0.9954" in section  # reported, beside it
    assert ("Best retrained baseline (by val_accuracy): s002_m9, test_accuracy 0.9941 "
            "(champion +0.0007)") in section
    assert ("The seeds&#39; best reported test_accuracy: 0.9954 (s002_m9, chosen on the test "
            "set by its notebook; champion -0.0006)") in section
    # Seed 0 and 1 of trial 5: mean and spread over the seeds.
    assert re.search(r"<td class=\"text\">trial 5</td><td>2</td><td>0\.9945</td>\s*"
                     r"<td>0\.9955</td><td>0\.0010</td>", section)


def test_report_without_final_models_has_no_final_section(tmp_path):
    from nas_mnist.reporting.report import write_report

    written = write_report(_small_study(3), tmp_path)
    assert written.final_models == [] and not (tmp_path / "final_models.csv").exists()
    assert "Final models" not in (tmp_path / "report.html").read_text()
