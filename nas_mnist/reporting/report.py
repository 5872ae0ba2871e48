"""Looking at a study: per-trial artifacts, the parent run's study plots, and ``nas-mnist report``.

Three consumers, one set of pieces:

- each completed trial's MLflow run gets the Keras model summary (``model_summary.txt``), its
  learning curves (``learning_curves.png``) and numeric encodings of its architecture as metrics
  (``num.depth``, ``num.mean_kernel_size``, ...: MLflow's parallel-coordinates chart plots
  numbers, while the spec's flat params are strings such as ``arch.kernel_sizes = "3,5,2"``);
- the study's parent run gets ``study/leaderboard.csv`` and Optuna's plots, refreshed as trials
  finish (``ParentRunRefresher``, a study callback);
- ``write_report`` writes all of it, plus the best model's confusion matrix and misclassified
  test images, into a folder with a one-page ``report.html``.

Parallel coordinates and parameter importances are computed on the architectures' numeric
encodings (``numeric_params``), not on the raw search-space params: the raw params are
conditional (``conv5_kernel_size`` exists only for depth >= 5, ``learning_rate_adam`` only for
Adam) and out-of-space baselines have none, and Optuna's importance evaluators use only the
params that every complete trial has, which would leave out depth's consequences, the learning
rate and every baseline. The encodings exist for every trial that has a spec.
"""

from __future__ import annotations

import html
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import OPTIMIZERS, ArchitectureSpec, Dense
from nas_mnist.engine.leaderboard import format_cell
from nas_mnist.engine.study import study_objectives, val_accuracy_of

logger = logging.getLogger(__name__)

NUMERIC_PREFIX = "num."
"""Prefix of the numeric architecture encodings logged as MLflow metrics."""

SUMMARY_FILE = "model_summary.txt"
CURVES_FILE = "learning_curves.png"
STUDY_ARTIFACT_DIR = "study"
"""Folder of the parent run's study artifacts (leaderboard and plots)."""

IMPORTANCE_EVERY = 10
"""Complete trials between two parameter-importance refreshes of the parent run (see
``ParentRunRefresher``)."""

MAX_REFRESH_SHARE = 0.01
"""Largest share of a search's wall-clock time that parent-run refreshes may take: after a
refresh of s seconds, the next one waits until s / 0.01 seconds have passed (see
``ParentRunRefresher``)."""

REPORT_COLUMNS = (
    "trial",
    "baseline",
    "state",
    "val_accuracy",
    "test_accuracy",
    "params",
    "depth",
    "kernel_sizes",
    "filters",
    "num_pools",
    "num_batch_norm",
    "dense_units",
    "optimizer",
    "learning_rate",
    "batch_size",
    "train_seconds",
    "best_epoch",
    "mlflow_run_id",
    "reason",
)
"""Columns of ``leaderboard.csv`` and of ``report --format json``."""

MARKDOWN_COLUMNS = (
    "trial",
    "baseline",
    "state",
    "val_accuracy",
    "test_accuracy",
    "params",
    "depth",
    "kernel_sizes",
    "num_pools",
    "num_batch_norm",
    "optimizer",
    "learning_rate",
    "train_seconds",
    "note",
)
"""Columns of ``leaderboard.md`` and of the HTML page (a reason is cut to a short note)."""


# ---------------------------------------------------------------------------------------------
# Numeric encodings of an architecture
# ---------------------------------------------------------------------------------------------


def numeric_params(spec: ArchitectureSpec) -> dict[str, float]:
    """Numbers that describe an architecture, for parallel-coordinate charts and importances.

    Args:
        spec: the architecture.

    Returns:
        ``depth`` (conv layers), ``mean_kernel_size`` and ``max_kernel_size`` (pixels; 0 without
        convs), ``num_pools``, ``num_batch_norm``, ``num_dense`` (hidden dense layers),
        ``log10_learning_rate``, ``optimizer_index`` (position in ``spec.OPTIMIZERS``: adam 0,
        adadelta 1, sgd 2, rmsprop 3), ``batch_size`` (images per step) and ``log10_params``.
    """
    summary = spec.summary()
    kernels = spec.kernel_sizes
    return {
        "depth": float(spec.depth),
        "mean_kernel_size": float(sum(kernels) / len(kernels)) if kernels else 0.0,
        "max_kernel_size": float(max(kernels, default=0)),
        "num_pools": float(summary["num_pools"]),
        "num_batch_norm": float(summary["num_batch_norm"]),
        "num_dense": float(sum(isinstance(layer, Dense) for layer in spec.layers)),
        "log10_learning_rate": math.log10(spec.optimizer.learning_rate),
        "optimizer_index": float(OPTIMIZERS.index(spec.optimizer.name)),
        "batch_size": float(spec.batch_size),
        "log10_params": math.log10(max(spec.num_params, 1)),
    }


# ---------------------------------------------------------------------------------------------
# Per-trial artifacts
# ---------------------------------------------------------------------------------------------


def model_summary_text(model: Any) -> str:
    """``model.summary()`` as text (Keras 3 draws it with box-drawing characters)."""
    lines: list[str] = []
    model.summary(print_fn=lambda text, **_: lines.append(text))
    return "\n".join(lines)


def log_trial_artifacts(
    tracker: Any, run_id: str, spec: ArchitectureSpec, result: Any, title: str = ""
) -> None:
    """Log a trained trial's model summary, learning curves and numeric encodings to its run.

    Never raises: these are for looking at, and a failure here must not fail a trained trial; it
    is logged as a warning.

    Args:
        tracker: the ``Tracker``.
        run_id: the trial's MLflow run.
        spec: the trial's architecture.
        result: its ``TrainingResult`` (model and per-epoch history).
        title: the learning curves' title (the run name).
    """
    from nas_mnist.plots import save_learning_curves

    try:
        tracker.log_metrics(
            run_id, {NUMERIC_PREFIX + k: v for k, v in numeric_params(spec).items()}
        )
        tracker.log_text(run_id, model_summary_text(result.model), SUMMARY_FILE)
        if result.history:
            with tempfile.TemporaryDirectory(prefix="nas_mnist_") as tmp:
                path = save_learning_curves(result.history, Path(tmp) / CURVES_FILE, title)
                tracker.log_artifact(run_id, str(path))
    except Exception:
        logger.warning("could not log the report artifacts of run %s", run_id, exc_info=True)


# ---------------------------------------------------------------------------------------------
# Leaderboard
# ---------------------------------------------------------------------------------------------


def report_leaderboard(study: Any) -> Any:
    """``leaderboard.leaderboard`` plus the columns that only the stored spec knows.

    Args:
        study: an ``optuna.Study``.

    Returns:
        A pandas DataFrame with ``REPORT_COLUMNS`` plus ``note``, one row per trial (all states,
        running ones included), best val_accuracy first.
    """
    from nas_mnist.engine.leaderboard import leaderboard

    frame = leaderboard(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    extra: dict[str, list[Any]] = {
        k: [] for k in ("filters", "dense_units", "learning_rate", "batch_size")
    }
    extra.update(best_epoch=[], mlflow_run_id=[])
    for number in frame["trial"]:
        attrs = trials[int(number)].user_attrs
        summary = _spec_summary(attrs.get("spec"))
        for key in ("filters", "dense_units", "learning_rate", "batch_size"):
            extra[key].append(summary.get(key))
        extra["best_epoch"].append(attrs.get("best_epoch"))
        extra["mlflow_run_id"].append(attrs.get("mlflow_run_id", ""))
    frame = frame.assign(**extra)
    for column in _INTEGER_COLUMNS:  # whole numbers, with gaps where a trial has none
        frame[column] = frame[column].astype("Int64")
    return frame[[*REPORT_COLUMNS, "note"]]


_INTEGER_COLUMNS = (
    "trial",
    "params",
    "depth",
    "num_pools",
    "num_batch_norm",
    "batch_size",
    "best_epoch",
)


def _spec_summary(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        return ArchitectureSpec.from_dict(data).summary()
    except ValueError:  # a spec written by another version: leave its columns empty
        return {}


def leaderboard_records(frame: Any) -> list[dict[str, Any]]:
    """The leaderboard as JSON-ready dicts (missing numbers become ``None``)."""
    return json.loads(frame[list(REPORT_COLUMNS)].to_json(orient="records"))


def leaderboard_markdown(frame: Any, columns: tuple[str, ...] = MARKDOWN_COLUMNS) -> str:
    """A GitHub-flavoured markdown table of ``frame``'s ``columns``."""
    right = {"trial", "val_accuracy", "test_accuracy", "params", "depth", "train_seconds"}
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in columns) + "|",
    ]
    for row in frame[list(columns)].itertuples(index=False):
        cells = (format_cell(v, c).replace("|", "\\|") for v, c in zip(row, columns, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Study plots
# ---------------------------------------------------------------------------------------------


def architecture_study(study: Any) -> Any:
    """An in-memory study whose params are the numeric encodings of each complete trial.

    One trial per complete trial of ``study`` that has a spec and a finite value (baselines
    included), with the same value (val_accuracy); the optimizer is a categorical param;
    encodings that are the same for every trial are left out. The user attribute ``trial``
    holds the original trial number.

    Returns:
        An ``optuna.Study`` (possibly without trials).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        spec = t.user_attrs.get("spec")
        value = val_accuracy_of(t)
        if not spec or value is None or not math.isfinite(value):
            continue
        try:
            features = numeric_params(ArchitectureSpec.from_dict(spec))
        except ValueError:
            continue
        features.pop("optimizer_index")
        rows.append((t, features, spec["optimizer"]["name"]))
    distributions: dict[str, Any] = {}
    for key in rows[0][1] if rows else ():
        values = [features[key] for _, features, _ in rows]
        if min(values) < max(values):
            distributions[key] = FloatDistribution(min(values), max(values))
    if len({name for *_, name in rows}) > 1:
        distributions["optimizer"] = CategoricalDistribution(OPTIMIZERS)
    features_study = optuna.create_study(
        direction="maximize", study_name=f"{study.study_name}-architectures"
    )
    features_study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: (optimizer if k == "optimizer" else features[k]) for k in distributions},
                distributions=distributions,
                value=val_accuracy_of(t),
                user_attrs={"trial": t.number},
            )
            for t, features, optimizer in rows
        ]
    )
    return features_study


def _cached_evaluator(importances: Mapping[str, float]) -> Any:
    """An Optuna importance evaluator that returns ``importances`` (computed once, drawn twice)."""
    from optuna.importance._base import BaseImportanceEvaluator

    class Cached(BaseImportanceEvaluator):
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict:
            return dict(importances)

    return Cached()


def write_study_plots(
    study: Any,
    out_dir: str | Path,
    importance: bool = True,
    include_plotlyjs: bool | str = True,
) -> tuple[list[Path], dict[str, str]]:
    """Write Optuna's optimization history, intermediate values (per-epoch val_accuracy of every
    trial), parallel coordinates and parameter importances as HTML and PNG; for a
    multi-objective study also the Pareto front (``pareto_front``).

    Parallel coordinates and importances use ``architecture_study(study)``; importances are
    fANOVA's (Optuna's default evaluator, seeded), also written as ``param_importances.json``.

    Args:
        study: the ``optuna.Study``.
        out_dir: an existing folder.
        importance: compute parameter importances (the slow part; see ``ParentRunRefresher``).
        include_plotlyjs: see ``plots.save_study_plot``.

    Returns:
        (files written, {plot: why it was skipped}) -- a plot is skipped when the study cannot
        support it yet (e.g. importances need two complete trials with different
        architectures); never raises for that.
    """
    import optuna

    from nas_mnist.plots import save_study_plot

    out_dir = Path(out_dir)
    files: list[Path] = []
    skipped: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    features = architecture_study(study)
    num_features = len(features.trials[0].params) if features.trials else 0

    def draw(kind: str, why_not: str | None, **kwargs: Any) -> None:
        if why_not:
            skipped[kind] = why_not
            return
        try:
            files.extend(
                save_study_plot(kind, **kwargs, out_dir=out_dir, include_plotlyjs=include_plotlyjs)
            )
        except Exception as exc:  # Optuna/plotly refusing an odd study must not stop the rest
            logger.warning("could not draw %s: %s", kind, exc, exc_info=True)
            skipped[kind] = f"{type(exc).__name__}: {exc}"

    objectives = study_objectives(study)
    multi = len(objectives) > 1
    draw(
        "optimization_history",
        None if complete else "no complete trial yet",
        study=study,
        target_name="val_accuracy",
        **({"target": val_accuracy_of} if multi else {}),
    )
    if multi:
        draw(
            "pareto_front",
            None if complete else "no complete trial yet",
            study=study,
            target_names=[n if n != "latency" else "latency_ms" for n in objectives],
        )
    draw(
        "intermediate_values",
        None
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False))
        else "no trial has reported a val_accuracy yet",
        study=study,
    )
    too_few = None
    if len(features.trials) < 2 or num_features == 0:
        too_few = (
            f"needs at least 2 complete trials with different architectures; "
            f"{len(features.trials)} complete trial(s) with a spec so far"
        )
    draw("parallel_coordinate", too_few, study=features, target_name="val_accuracy")
    if not importance:
        skipped["param_importances"] = "not refreshed this time"
        return files, skipped
    importances = None
    if too_few is None:
        try:
            importances = optuna.importance.get_param_importances(
                features, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
        except Exception as exc:
            too_few = f"importances not computable: {type(exc).__name__}: {exc}"
    if importances is not None:
        path = out_dir / "param_importances.json"
        path.write_text(json.dumps(importances, indent=2) + "\n")
        files.append(path)
    draw(
        "param_importances",
        too_few,
        study=features,
        evaluator=_cached_evaluator(importances or {}),
        target_name="val_accuracy",
    )
    return files, skipped


class ParentRunRefresher:
    """Study callback: after finished trials, refresh the parent run's ``study/`` artifacts.

    Writes ``leaderboard.csv`` and ``write_study_plots`` into a temporary folder and logs them to
    the study's parent run under ``study/`` (overwriting the previous refresh), and logs the
    parent-run metrics ``best_val_accuracy``, ``complete_trials`` and ``refresh_seconds`` at
    step = trial number.

    Cost: parameter importances (fANOVA, a random forest of 64 trees) are the slow part and grow
    with the number of trials, so they are refreshed every ``importance_every`` complete trials
    and once more after the study's last trial (``n_trials`` finished), not after every trial.
    Measured on this project's 2-core CPU machine on a 100-trial study (92 complete) with a
    SQLite storage and store: a refresh takes about 1.3 s without importances (the leaderboard,
    three plots as HTML and PNG, the upload) and about 2.1 s with them (median of 3; about 3 s
    and 4 s while a training job shares the cores). Next to trials that train for minutes this is
    well under 1% of a search. ``nas-mnist report`` always computes importances.

    Short trials (a 1-epoch trial on 10,000 images takes about 6 s on that machine) would make a
    refresh after every trial a large share of the search, so refreshes are throttled: after the
    first trial, a refresh is skipped while less than ``refresh_seconds / max_share`` seconds have
    passed since the previous one ended. The refresh after the study's last trial always happens.

    A refresh that fails is logged as a warning; it never fails the trial or the search.

    Args:
        tracker: the ``Tracker`` of the search.
        parent_run_id: the study's parent run.
        n_trials: the search's ``--trials`` (the study-wide total of finished trials), so that
            importances are refreshed once more when the search ends; ``None`` if unknown.
        importance_every: complete trials between two importance refreshes.
        max_share: largest share of wall-clock time spent refreshing (0 < max_share <= 1; 1
            refreshes after every trial).
    """

    def __init__(
        self,
        tracker: Any,
        parent_run_id: str,
        n_trials: int | None = None,
        importance_every: int = IMPORTANCE_EVERY,
        max_share: float = MAX_REFRESH_SHARE,
    ) -> None:
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.n_trials = n_trials
        self.importance_every = importance_every
        self.max_share = max_share
        self._last_end: float | None = None
        self._last_seconds = 0.0
        self._importance_pending = False

    def __call__(self, study: Any, trial: Any) -> None:
        from nas_mnist.engine.study import count_finished

        if isinstance(getattr(self.tracker, "unavailable", None), Exception):
            return  # the tracking server went away; the search is stopping (tracker.py)
        self._importance_pending |= self._importance_due(study, trial)
        last = self.n_trials is not None and count_finished(study) >= self.n_trials
        if not last and self._last_end is not None and self.max_share < 1:
            if time.monotonic() - self._last_end < self._last_seconds / self.max_share:
                return
        try:
            self._last_seconds = self.refresh(study, importance=self._importance_pending)
            self._importance_pending = False
        except Exception:
            logger.warning(
                "could not refresh the study artifacts of parent run %s after trial %d",
                self.parent_run_id,
                trial.number,
                exc_info=True,
            )
        self._last_end = time.monotonic()

    def _importance_due(self, study: Any, trial: Any) -> bool:
        from optuna.trial import TrialState

        from nas_mnist.engine.study import count_finished

        if self.n_trials is not None and count_finished(study) >= self.n_trials:
            return True
        if trial.state != TrialState.COMPLETE:
            return False
        return (
            len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            % max(self.importance_every, 1)
            == 0
        )

    def refresh(self, study: Any, importance: bool = True) -> float:
        """Write and log the study artifacts now.

        Returns:
            Seconds the refresh took (also logged as the parent-run metric ``refresh_seconds``).
        """
        start = time.perf_counter()
        frame = report_leaderboard(study)
        with tempfile.TemporaryDirectory(prefix="nas_mnist_study_") as tmp:
            frame.to_csv(Path(tmp) / "leaderboard.csv", index=False)
            files, skipped = write_study_plots(study, tmp, importance=importance)
            for path in [Path(tmp) / "leaderboard.csv", *files]:
                self.tracker.log_artifact(self.parent_run_id, str(path), STUDY_ARTIFACT_DIR)
        for kind, why in skipped.items():
            logger.debug("study plot %s skipped: %s", kind, why)
        seconds = time.perf_counter() - start
        complete = frame[frame["state"].eq("complete")]
        step = int(frame["trial"].max()) if len(frame) else 0
        self.tracker.log_metrics(
            self.parent_run_id,
            {
                "best_val_accuracy": complete["val_accuracy"].max() if len(complete) else None,
                "complete_trials": len(complete),
                "refresh_seconds": seconds,
            },
            step=step,
        )
        logger.debug("refreshed the study artifacts in %.2f s", seconds)
        return seconds


# ---------------------------------------------------------------------------------------------
# The report folder
# ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``write_report`` wrote.

    Attributes:
        out_dir: the report folder.
        files: every file written, ``report.html`` last.
        skipped: {part: why it is missing} for plots or figures that could not be made.
        best_trial: number of the best complete trial (by val_accuracy), or None.
        leaderboard: the ``report_leaderboard`` table.
    """

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    best_trial: int | None = None
    leaderboard: Any = None


def best_complete_trial(study: Any) -> Any | None:
    """The complete trial with the highest val_accuracy that kept a model, or None."""
    from optuna.trial import TrialState

    candidates = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if val_accuracy_of(t) is not None
        and math.isfinite(val_accuracy_of(t))
        and t.user_attrs.get("model_uri")
    ]
    return max(candidates, key=lambda t: (val_accuracy_of(t), -t.number), default=None)


def evaluate_best_model(
    trial: Any, x_test: Any, y_test: Any, tracking_uri: str, out_dir: Path
) -> tuple[list[Path], dict[str, float]]:
    """Load a trial's kept model from MLflow and draw its test-set mistakes.

    Args:
        trial: a complete ``FrozenTrial`` with the ``model_uri`` user attribute.
        x_test: float32 array (n, 28, 28, 1), values in [0, 1].
        y_test: int array (n,), values 0..9.
        tracking_uri: the MLflow store that holds the run.
        out_dir: where ``confusion_matrix.png`` and ``misclassified.png`` go.

    Returns:
        (the two files, {"test_accuracy": fraction recomputed from the predictions}).

    Raises:
        Exception: whatever MLflow or Keras raise when the model cannot be fetched or loaded.
    """
    import keras
    import mlflow.artifacts
    import numpy as np

    from nas_mnist.model.training import EVAL_BATCH_SIZE
    from nas_mnist.plots import confusion_matrix, save_confusion_matrix, save_misclassified_grid

    with tempfile.TemporaryDirectory(prefix="nas_mnist_model_") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=trial.user_attrs["model_uri"], dst_path=tmp, tracking_uri=tracking_uri
        )
        model = keras.saving.load_model(path)
    probabilities = np.asarray(model.predict(x_test, batch_size=EVAL_BATCH_SIZE, verbose=0))
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    label = f"trial {trial.number}" + (
        f" ({trial.user_attrs['baseline']})" if trial.user_attrs.get("baseline") else ""
    )
    matrix = confusion_matrix(y_test, y_pred)
    files = [
        save_confusion_matrix(matrix, out_dir / "confusion_matrix.png", f"{label}, test split"),
        save_misclassified_grid(
            x_test, y_test, y_pred, confidence, out_dir / "misclassified.png", title=label
        ),
    ]
    return files, {"test_accuracy": float(np.trace(matrix) / matrix.sum())}


def write_report(
    study: Any,
    out_dir: str | Path,
    *,
    test_data: tuple[Any, Any] | None = None,
    tracking_uri: str | None = None,
    source: str = "",
) -> Report:
    """Write a study's report: leaderboard, plots, the best model's mistakes, ``report.html``.

    Files: ``leaderboard.csv`` (``REPORT_COLUMNS`` and ``note``), ``leaderboard.md``,
    ``<plot>.png`` and ``<plot>.html`` for Optuna's plots (with one shared ``plotly.min.js``),
    ``param_importances.json``, ``confusion_matrix.png`` and ``misclassified.png`` (best complete
    trial by val_accuracy, on the test split: reporting only, nothing is selected by it) and
    ``report.html``. Parts that cannot be made are listed in ``Report.skipped`` and on the page.

    Args:
        study: the ``optuna.Study`` (finished or still running).
        out_dir: the report folder; created if missing.
        test_data: (x_test float32 (n, 28, 28, 1) in [0, 1], y_test int (n,) 0..9); without it,
            no confusion matrix.
        tracking_uri: the MLflow store with the trials' models.
        source: where the study lives (shown on the page), e.g. the storage URL.

    Returns:
        A ``Report``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir=out_dir)
    frame = report_leaderboard(study)
    report.leaderboard = frame
    frame.to_csv(out_dir / "leaderboard.csv", index=False)
    (out_dir / "leaderboard.md").write_text(leaderboard_markdown(frame))
    report.files += [out_dir / "leaderboard.csv", out_dir / "leaderboard.md"]
    files, skipped = write_study_plots(study, out_dir, include_plotlyjs="directory")
    report.files += files
    report.skipped.update(skipped)
    if (out_dir / "plotly.min.js").exists():
        report.files.append(out_dir / "plotly.min.js")

    best = best_complete_trial(study)
    evaluation: dict[str, float] = {}
    if best is None:
        report.skipped["best model"] = "no complete trial with a kept model"
    elif test_data is None:
        report.skipped["best model"] = "no test data given"
    elif tracking_uri is None:
        report.skipped["best model"] = "no MLflow tracking URI known for this study"
    else:
        report.best_trial = best.number
        try:
            figures, evaluation = evaluate_best_model(
                best, test_data[0], test_data[1], tracking_uri, out_dir
            )
            report.files += figures
        except Exception as exc:
            logger.warning("could not evaluate trial %d's model: %s", best.number, exc)
            report.skipped["best model"] = (
                f"trial {best.number}'s model {best.user_attrs['model_uri']} could not be "
                f"loaded from {tracking_uri}: {type(exc).__name__}: {exc}"
            )
    page = out_dir / "report.html"
    page.write_text(_report_html(study, frame, report, best, evaluation, source))
    report.files.append(page)
    return report


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
img { max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0; } figcaption { color: #555; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
tr.baseline { background: #fff6dc; } tr.complete td:nth-child(3) { color: #1a7f37; }
.skipped { color: #8a5300; }
"""

_PLOT_TITLES = {
    "pareto_front": "Pareto front: val_accuracy against the other objectives (several objectives)",
    "optimization_history": "Optimization history: val_accuracy per trial and best so far",
    "intermediate_values": "Learning curves of every trial: val_accuracy per epoch",
    "parallel_coordinate": "Parallel coordinates of the architectures (numeric encodings)",
    "param_importances": "Parameter importances (fANOVA) of the architectures' encodings",
}


def _report_html(
    study: Any,
    frame: Any,
    report: Report,
    best: Any,
    evaluation: Mapping[str, float],
    source: str,
) -> str:
    from nas_mnist.engine.leaderboard import baseline_comparison

    esc: Callable[[Any], str] = lambda value: html.escape(str(value))  # noqa: E731
    counts = frame["state"].value_counts().to_dict()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>nas-mnist report: {esc(study.study_name)}</title><style>{_CSS}</style></head>",
        f"<body><h1>Study {esc(study.study_name)}</h1>",
        f"<p>{esc(source)} &middot; {len(frame)} trials: "
        + ", ".join(f"{n} {esc(state)}" for state, n in sorted(counts.items()))
        + "</p>",
    ]
    if best is not None:
        attrs = best.user_attrs
        test = attrs.get("test_accuracy")
        parts.append(
            f"<p>Best trial by val_accuracy: <b>{best.number}</b>"
            + (f" ({esc(attrs['baseline'])})" if attrs.get("baseline") else "")
            + f", val_accuracy {val_accuracy_of(best):.4f}"
            + (f", test_accuracy {test:.4f}" if test is not None else "")
            + (f", {attrs['params']:,} params" if attrs.get("params") else "")
            + (
                f", MLflow run <code>{esc(attrs['mlflow_run_id'])}</code>"
                if attrs.get("mlflow_run_id")
                else ""
            )
            + ".</p>"
        )
    comparison = baseline_comparison(frame)
    if comparison is not None:
        gain = comparison["test_accuracy_gain"]
        parts.append(
            f"<p>Best searched trial {comparison['searched_trial']} vs best baseline "
            f"{esc(comparison['baseline'])} (trial {comparison['baseline_trial']}): "
            f"val_accuracy {comparison['val_accuracy_gain']:+.4f}"
            + (f", test_accuracy {gain:+.4f}" if gain is not None else "")
            + "</p>"
        )
    parts.append("<h2>Search</h2>")
    for kind, caption in _PLOT_TITLES.items():
        if (report.out_dir / f"{kind}.png").exists():
            parts.append(
                f'<figure><a href="{kind}.html"><img src="{kind}.png" alt="{esc(caption)}"></a>'
                f"<figcaption>{esc(caption)} (click for the interactive version)</figcaption>"
                "</figure>"
            )
    if (report.out_dir / "confusion_matrix.png").exists():
        parts.append(f"<h2>Best model: trial {best.number}, on the test split</h2>")
        if evaluation:
            parts.append(f"<p>test_accuracy recomputed here: {evaluation['test_accuracy']:.4f}</p>")
        for name, caption in (
            ("confusion_matrix", "Confusion matrix (rows: true class)"),
            ("misclassified", "Misclassified test images, most confident first"),
        ):
            parts.append(
                f'<figure><img src="{name}.png" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    if report.skipped:
        parts.append('<h2>Not shown</h2><ul class="skipped">')
        parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in report.skipped.items()]
        parts.append("</ul>")
    parts.append(
        '<h2>Leaderboard</h2><p>Also as <a href="leaderboard.csv">CSV</a> and '
        '<a href="leaderboard.md">markdown</a>.</p><table><thead><tr>'
    )
    parts += [f"<th>{esc(c)}</th>" for c in MARKDOWN_COLUMNS]
    parts.append("</tr></thead><tbody>")
    for _, row in frame.iterrows():
        classes = [str(row["state"])] + (["baseline"] if row["baseline"] else [])
        parts.append(f'<tr class="{esc(" ".join(classes))}">')
        parts += [f"<td>{esc(format_cell(row[c], c))}</td>" for c in MARKDOWN_COLUMNS]
        parts.append("</tr>")
    parts.append("</tbody></table></body></html>\n")
    return "\n".join(parts)
