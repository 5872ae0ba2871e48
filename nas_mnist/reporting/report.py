"""``nas_mnist.report(...)`` and ``nas-mnist report``: a study's leaderboard, plots and best
model's mistakes in one folder, with a one-page ``report.html`` showing them together.

The pieces are shared with the search: the leaderboard (``nas_mnist.study.leaderboard``), the
study plots (``nas_mnist.study.plots``); this module adds the best model's confusion
matrix and misclassified test images (reporting only: the best model is chosen on val_accuracy)
and, once ``nas-mnist retrain`` made some, the final models with their champion
(``nas_mnist.reporting.final_models``). The page itself is rendered by
``nas_mnist.reporting.page`` from a Jinja2 template.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_mnist.console import format_cell
from nas_mnist.errors import InputError
from nas_mnist.processes.quiet_start import quiet_libraries
from nas_mnist.reporting.final_models import (
    final_models_context,
    final_records,
    write_final_files,
)
from nas_mnist.reporting.page import render_page
from nas_mnist.study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME
from nas_mnist.study.leaderboard import NUMERIC_COLUMNS, VIEWS, best_trial, leaderboard, view
from nas_mnist.study.plots import write_study_plots
from nas_mnist.tracking.redaction import redact_uri
from nas_mnist.trial_attributes import MODEL_URI_ATTR, TRACKING_URI_ATTR

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Leaderboard
# ---------------------------------------------------------------------------------------------


def leaderboard_markdown(frame: Any, columns: tuple[str, ...] = VIEWS["markdown"]) -> str:
    """A GitHub-flavoured markdown table of ``frame``'s ``columns``."""
    right = set(NUMERIC_COLUMNS)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in columns) + "|",
    ]
    for row in frame[list(columns)].itertuples(index=False):
        cells = (format_cell(v, c).replace("|", "\\|") for v, c in zip(row, columns, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
        leaderboard: the leaderboard's ``records`` view (``nas_mnist.study.leaderboard``).
        final_models: one row per final model (``nas_mnist.reporting.final_models
            .FINAL_COLUMNS``), the champion first; empty when the study has none.
    """

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    best_trial: int | None = None
    leaderboard: Any = None
    final_models: list[dict[str, Any]] = field(default_factory=list)


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
    import numpy as np

    from nas_mnist.model.training import EVAL_BATCH_SIZE
    from nas_mnist.plots import confusion_matrix, save_confusion_matrix, save_misclassified_grid
    from nas_mnist.tracking.models import load_logged_model

    model = load_logged_model(trial.user_attrs[MODEL_URI_ATTR], tracking_uri)
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


@quiet_libraries()
def report(
    *,
    out: str | os.PathLike,
    storage: str = DEFAULT_STORAGE,
    study_name: str = DEFAULT_STUDY_NAME,
    tracking_uri: str | None = None,
    data: str | os.PathLike | None = None,
    force: bool = False,
) -> Report:
    """Write the report of a study, finished or still running (``nas-mnist report``).

    The folder is written as a hidden ``.NAME.partial-<pid>-<random>`` next to ``out`` and
    renamed into place at the end (as exports are, ``nas_mnist.atomic_folders``), so ``out``
    holds either a whole report or what it held before.

    Args:
        out: the folder to write; it must not exist or be empty, unless ``force``.
        storage, study_name: the study, as for ``nas_mnist.search``.
        tracking_uri: the MLflow store with the trials' models (default: the study's own).
        data: MNIST, as for ``nas_mnist.search``, for the best model's test-set figures.
        force: replace ``out`` if it holds an earlier report (``report.html`` and
            ``leaderboard.csv``); any other non-empty folder is still refused.

    Returns:
        A ``Report`` (files written, parts skipped and why, best trial, leaderboard), with
        paths in ``out``.

    Raises:
        InputError: an unusable ``out``, a storage file that does not exist, no such study, or
            bad data; nothing is written.
    """
    from nas_mnist.data import load_splits
    from nas_mnist.study.final_models import final_models, load_final_study
    from nas_mnist.study.memory import study_data, study_tracking_uri
    from nas_mnist.study.storage import load_existing_study
    from nas_mnist.tracking.stores import validate_tracking_uri

    folder = check_report_dir(out, force)
    validate_tracking_uri(tracking_uri)  # MLflow 3's file store: exit 2, nothing written
    study = load_existing_study(storage, study_name)
    final_trials = final_models(load_final_study(study._storage, study_name))
    if tracking_uri is None and study.user_attrs.get(TRACKING_URI_ATTR):
        tracking_uri = study_tracking_uri(study, None)  # the password from the environment
    test_data = None
    if best_trial(study, with_model=True) is not None:
        splits = load_splits(study_data(study, data))
        test_data = (splits.x_test, splits.y_test)
    return _write_atomically(study, folder, test_data, tracking_uri,
                             f"study {study_name!r} in {redact_uri(storage)}", final_trials)


def _write_atomically(study: Any, folder: Path, test_data: Any, tracking_uri: str | None,
                      source: str, final_trials: list[Any]) -> Report:
    """``write_report`` into a hidden partial folder, then rename it to ``folder``."""
    import shutil
    import tempfile

    from nas_mnist.atomic_folders import (
        current_umask,
        move_into_place,
        partial_prefix,
        remove_stale_partials,
    )

    folder = folder.absolute()
    remove_stale_partials(folder)
    partial = Path(tempfile.mkdtemp(prefix=f"{partial_prefix(folder)}{os.getpid()}-",
                                    dir=folder.parent))
    try:
        os.chmod(partial, 0o777 & ~current_umask())  # mkdtemp makes it private (0o700)
        written = write_report(study, partial, test_data=test_data, tracking_uri=tracking_uri,
                               source=source, final_trials=final_trials)
        move_into_place(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    written.out_dir = folder
    written.files = [folder / f.relative_to(partial) for f in written.files]
    return written


REPORT_MARKERS = ("report.html", "leaderboard.csv")
"""Files that make a folder an earlier report, which ``force`` may replace."""


def check_report_dir(out: str | os.PathLike, force: bool = False) -> Path:
    """The report folder, checked: new or empty (or, with ``force``, an earlier report), in an
    existing, writable parent folder. Nothing is written.

    Raises:
        InputError: ``out`` is a file or a link, a folder that is not empty (without ``force``,
            or not an earlier report), or its parent is missing or not writable.
    """
    folder = Path(out).expanduser()
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"--out {folder} is a file or a link; pass a new or empty folder")
    if folder.is_dir() and any(folder.iterdir()):
        earlier = all((folder / name).is_file() for name in REPORT_MARKERS)
        if not force:
            raise InputError(
                f"--out {folder} is not empty; pass a new or empty folder (nothing is "
                "overwritten)" + ("; it holds an earlier report: --force replaces it"
                                  if earlier else "")
            )
        if not earlier:
            raise InputError(
                f"refusing to replace {folder}: it is not empty and is not an earlier report "
                f"(no {' and '.join(REPORT_MARKERS)}); choose another --out"
            )
    parent = folder.absolute().parent
    if not parent.is_dir():
        raise InputError(f"the parent folder {parent} of --out does not exist; create it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {parent} (permission denied); choose --out in a "
                         "writable folder")
    return folder


RAN_STATES = ("complete", "pruned", "fail", "running")
"""Trial states the report lists: trials that ran (queued, waiting trials are only counted)."""


def write_report(
    study: Any,
    out_dir: str | Path,
    *,
    test_data: tuple[Any, Any] | None = None,
    tracking_uri: str | None = None,
    source: str = "",
    final_trials: Sequence[Any] = (),
) -> Report:
    """Write a study's report: leaderboard, plots, the best model's mistakes, the final models,
    ``report.html``.

    Files: ``leaderboard.csv`` (the ``records`` view and ``note``), ``leaderboard.md``,
    ``<plot>.png`` and ``<plot>.html`` for Optuna's plots (with one shared ``plotly.min.js``),
    ``param_importances.json``, ``confusion_matrix.png`` and ``misclassified.png`` (best complete
    trial by val_accuracy, on the test split: reporting only, nothing is selected by it) and
    ``report.html``; with final models, ``final_models.csv`` and ``final_models.md``
    (``nas_mnist.reporting.final_models``). Only trials that ran are listed (``RAN_STATES``;
    waiting trials are counted on the page). Parts that cannot be made are listed in
    ``Report.skipped`` and on the page.

    Args:
        study: the ``optuna.Study`` (finished or still running).
        out_dir: the report folder; created if missing.
        test_data: (x_test float32 (n, 28, 28, 1) in [0, 1], y_test int (n,) 0..9); without it,
            no confusion matrix.
        tracking_uri: the MLflow store with the trials' models.
        source: where the study lives (shown on the page), e.g. the storage URL.
        final_trials: the complete trials of ``<study>/final``, best first
            (``nas_mnist.study.final_models.final_models``); the first is the champion.

    Returns:
        A ``Report``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir=out_dir)
    frame = view(leaderboard(study, states=RAN_STATES), "records")
    report.leaderboard = frame
    frame.to_csv(out_dir / "leaderboard.csv", index=False)
    (out_dir / "leaderboard.md").write_text(leaderboard_markdown(frame))
    report.files += [out_dir / "leaderboard.csv", out_dir / "leaderboard.md"]
    files, skipped = write_study_plots(study, out_dir, include_plotlyjs="directory")
    report.files += files
    report.skipped.update(skipped)
    if (out_dir / "plotly.min.js").exists():
        report.files.append(out_dir / "plotly.min.js")
    report.final_models = final_records(final_trials, study)
    report.files += write_final_files(report.final_models, out_dir)
    best = best_trial(study, with_model=True)
    evaluation = _best_model_figures(report, best, test_data, tracking_uri)
    page = out_dir / "report.html"
    page.write_text(
        render_page(study, frame, out_dir, report.skipped, best, evaluation, source,
                    final_models=final_models_context(report.final_models))
    )
    report.files.append(page)
    return report


def _best_model_figures(report: Report, best: Any, test_data: tuple[Any, Any] | None,
                        tracking_uri: str | None) -> dict[str, float]:
    """Draw the best model's confusion matrix and mistakes into the report (or say why not)."""
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
                best, test_data[0], test_data[1], tracking_uri, report.out_dir
            )
            report.files += figures
            return evaluation
        except Exception as exc:
            logger.warning("could not evaluate trial %d's model: %s", best.number, exc)
            report.skipped["best model"] = (
                f"trial {best.number}'s model {best.user_attrs['model_uri']} could not be "
                f"loaded from {redact_uri(tracking_uri)}: {type(exc).__name__}: {exc}"
            )
    return {}
