"""``report.html``: the report folder's one page, rendered from the Jinja2 template
``templates/report.html.j2`` (package data) with a plain context built here.

The template holds the markup; this module gathers what the page shows (summary, leaderboard
rows, figures and their captions, caveats, parts not shown) as strings, numbers, lists and
dicts. Autoescaping is on, so study names, spec summaries and notes reach the page escaped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas_mnist.console import format_cell
from nas_mnist.study.leaderboard import VIEWS, baseline_comparison, comparison_sentence
from nas_mnist.study.opening import val_accuracy_of
from nas_mnist.trial_attributes import (
    NUM_PARAMS_ATTR,
    RUN_ATTR,
    TEST_ACCURACY_ATTR,
    user_attr,
)

TEMPLATE = "report.html.j2"
"""The page's template, in ``nas_mnist/reporting/templates/``."""

HTML_COLUMNS = VIEWS["html"]
"""The leaderboard columns of ``report.html`` (every column is in ``leaderboard.csv``)."""

_CELL_CLASSES = {"baseline": "text", "state": "text", "kernel_sizes": "text wrap",
                 "optimizer": "text", "note": "text wrap"}
"""Left-aligned text columns; the wrapping ones (long notes) keep the table within the page."""

_PLOT_TITLES = {
    "pareto_front": "Pareto front: val_accuracy against the other objectives (several objectives)",
    "optimization_history": "Optimization history: val_accuracy per trial and best so far",
    "intermediate_values": "Learning curves of every trial: val_accuracy per epoch (numbered "
    "from 0, as Optuna's and MLflow's steps)",
    "parallel_coordinate": "Parallel coordinates of the architectures (numeric encodings)",
    "param_importances": "Parameter importances (fANOVA) of the architectures' encodings",
}

_BEST_MODEL_FIGURES = (
    ("confusion_matrix", "Confusion matrix (rows: true class)"),
    ("misclassified", "Misclassified test images, most confident first"),
)

MIN_TRIALS_FOR_IMPORTANCES = 20
"""Complete trials below which the page warns that parameter importances are unreliable. A
rule of thumb, not a published threshold: fANOVA (Hutter, Hoos and Leyton-Brown, "An efficient
approach for assessing hyperparameter importance", ICML 2014) fits a random forest to the
trials, and with a handful of points a few lucky trials decide the ranking."""


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    """The page's ``jinja2.Template`` (autoescaped; an undefined name is an error)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("nas_mnist.reporting", "templates"),
        autoescape=jinja2.select_autoescape(("html", "html.j2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(TEMPLATE)


def render_page(
    study: Any,
    frame: Any,
    out_dir: Path,
    skipped: Mapping[str, str],
    best: Any,
    evaluation: Mapping[str, float],
    source: str,
    final_models: Mapping[str, Any] | None = None,
) -> str:
    """The text of ``report.html``: the final models (if any) and the leaderboard first, then
    the plots and the best model.

    Args:
        study: the ``optuna.Study``.
        frame: the leaderboard's ``records`` view (``nas_mnist.study.leaderboard``), best first.
        out_dir: the report folder; a figure is shown only if its PNG is there.
        skipped: {part: why it is missing}, listed under "Not shown".
        best: the best complete trial with a kept model (``FrozenTrial``), or None.
        evaluation: {"test_accuracy": fraction} recomputed from the best model, or empty.
        source: where the study lives, e.g. the storage URL.
        final_models: the "Final models" section
            (``nas_mnist.reporting.final_models.final_models_context``), or None: no section.

    Raises:
        jinja2.TemplateError: the template is missing or broken (a packaging error).
    """
    return _template().render(
        study_name=study.study_name,
        summary=summary_context(study, frame, best, source),
        columns=[column.split("_") for column in HTML_COLUMNS],
        rows=leaderboard_rows(frame),
        figures=search_figures(study, out_dir),
        best_model=best_model_context(out_dir, best, evaluation),
        skipped=list(skipped.items()),
        final_models=final_models,
    )


def summary_context(study: Any, frame: Any, best: Any, source: str) -> dict[str, Any]:
    """Where the study is, its trials by state, the best trial and the baseline comparison."""
    counts = frame["state"].value_counts().to_dict()
    comparison = baseline_comparison(frame)
    sentence = comparison_sentence(comparison) if comparison is not None else ""
    return {
        "source": source,
        "num_ran": len(frame),
        "counts": [(str(state), n) for state, n in sorted(counts.items())],
        "waiting": sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False)),
        "best": _best_trial_context(best) if best is not None else None,
        "comparison": sentence[:1].upper() + sentence[1:],
    }


def _best_trial_context(best: Any) -> dict[str, Any]:
    """The best trial's number and scores, formatted for the summary (None: not known)."""
    attrs = best.user_attrs
    test = attrs.get(TEST_ACCURACY_ATTR)
    num_params = user_attr(attrs, NUM_PARAMS_ATTR)
    return {
        "number": best.number,
        "baseline": attrs.get("baseline") or None,
        "val_accuracy": f"{val_accuracy_of(best):.4f}",
        "test_accuracy": f"{test:.4f}" if test is not None else None,
        "params": f"{num_params:,}" if num_params else None,
        "run_id": attrs.get(RUN_ATTR) or None,
    }


def leaderboard_rows(frame: Any) -> list[dict[str, Any]]:
    """The table's rows (``HTML_COLUMNS``), best val_accuracy first.

    Returns:
        [{"classes": the row's CSS classes (its state, "baseline"), "cells": [(CSS class or
        "", the formatted cell)]}] in ``frame``'s order.
    """
    rows = []
    for _, row in frame.iterrows():
        classes = [str(row["state"])] + (["baseline"] if row["baseline"] else [])
        cells = [(_CELL_CLASSES.get(c, ""), format_cell(row[c], c)) for c in HTML_COLUMNS]
        rows.append({"classes": " ".join(classes), "cells": cells})
    return rows


def search_figures(study: Any, out_dir: Path) -> list[dict[str, str | None]]:
    """Optuna's plots found in ``out_dir``, with a caveat on importances from few trials.

    Returns:
        [{"name": the plot (``<name>.png`` and ``<name>.html``), "caption": its caption,
        "caveat": a warning to show under it, or None}].
    """
    num_complete = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    figures = []
    for kind, caption in _PLOT_TITLES.items():
        if not (out_dir / f"{kind}.png").exists():
            continue
        caveat = None
        if kind == "param_importances" and num_complete < MIN_TRIALS_FOR_IMPORTANCES:
            caveat = (
                f"Caveat: computed from only {num_complete} complete trials. With fewer than "
                f"{MIN_TRIALS_FOR_IMPORTANCES}, importances mostly reflect which few trials "
                "happened to run; read them as a hint, not a ranking."
            )
        figures.append({"name": kind, "caption": caption, "caveat": caveat})
    return figures


def best_model_context(out_dir: Path, best: Any,
                       evaluation: Mapping[str, float]) -> dict[str, Any] | None:
    """The best model's section (test-split figures), or None if they were not drawn."""
    if not (out_dir / "confusion_matrix.png").exists():
        return None
    test = evaluation.get("test_accuracy")
    return {
        "number": best.number,
        "test_accuracy": f"{test:.4f}" if test is not None else None,
        "figures": list(_BEST_MODEL_FIGURES),
    }
