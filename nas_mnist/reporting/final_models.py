"""The report's "Final models" section: the final models of ``nas-mnist retrain``, the champion
among them, the retrained baselines beside them and the seeds' reported test accuracies.

A study's final models are the trials of ``<study>/final`` (``nas_mnist.study.final_models``):
each retrains a search trial's spec, or a baseline, at full budget with the final recipe, once
per seed. The champion is the one with the highest val_accuracy; the test split selects nothing
here, it is only reported. A baseline's reported test_accuracy is what its notebook printed
(``Baseline.reported_test_accuracy``), chosen there on the test set: a reference, not a rival
trained identically (the retrained baselines are).

Files: ``final_models.csv`` (``FINAL_COLUMNS``) and ``final_models.md``; the page gets
``final_models_context``. All are absent when the study has no final model.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    BEST_EPOCH_ATTR,
    FINAL_SEED_ATTR,
    NUM_PARAMS_ATTR,
    RECIPE_ATTR,
    RUN_ATTR,
    SOURCE_TRIAL_ATTR,
    TEST_ACCURACY_ATTR,
    user_attr,
)

FINAL_COLUMNS = ("final_trial", "champion", "retrains", "source_trial", "baseline", "seed",
                 "val_accuracy", "test_accuracy", "params", "epochs", "best_epoch",
                 "search_val_accuracy", "reported_test_accuracy", "mlflow_run_id")
"""Columns of ``final_models.csv``, one row per final model, best val_accuracy first:
``final_trial`` (its number in ``<study>/final``), ``champion`` (true for one row),
``retrains`` (``trial 12`` or ``baseline s002_m9``), ``source_trial`` / ``baseline`` (the same,
as a number or a name), ``seed`` (which of the ``--seeds`` runs), ``epochs`` (the recipe's),
``best_epoch`` (numbered from 0), ``search_val_accuracy`` (the source trial's, at the search's
fidelity), ``reported_test_accuracy`` (a baseline's, as its notebook printed it)."""

PAGE_COLUMNS = ("final_trial", "retrains", "seed", "val_accuracy", "test_accuracy", "params",
                "epochs", "best_epoch", "search_val_accuracy", "reported_test_accuracy")
"""The columns of the section's table on ``report.html`` and in ``final_models.md``."""

CSV_NAME, MARKDOWN_NAME = "final_models.csv", "final_models.md"


def final_records(final_trials: Sequence[Any], study: Any) -> list[dict[str, Any]]:
    """One row (``FINAL_COLUMNS``) per final model, in ``final_trials``' order.

    Args:
        final_trials: complete trials of ``<study>/final``, best first
            (``nas_mnist.study.final_models.final_models``); the first is the champion.
        study: the search study, for each source trial's search val_accuracy.

    Returns:
        Dicts of plain values (None where unknown; ``baseline`` is ``""`` for a search trial).
    """
    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.study.opening import val_accuracy_of

    searched = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows = []
    for index, trial in enumerate(final_trials):
        attrs = trial.user_attrs
        baseline = attrs.get(BASELINE_ATTR) or ""
        source = attrs.get(SOURCE_TRIAL_ATTR)
        origin = searched.get(source) if source is not None else None
        try:
            reported = get_baseline(baseline).reported_test_accuracy if baseline else None
        except ValueError:  # a baseline of another version's catalog
            reported = None
        rows.append({
            "final_trial": trial.number, "champion": index == 0,
            "retrains": f"baseline {baseline}" if baseline else f"trial {source}",
            "source_trial": source, "baseline": baseline, "seed": attrs.get(FINAL_SEED_ATTR),
            "val_accuracy": val_accuracy_of(trial),
            "test_accuracy": attrs.get(TEST_ACCURACY_ATTR),
            "params": user_attr(attrs, NUM_PARAMS_ATTR),
            "epochs": (attrs.get(RECIPE_ATTR) or {}).get("epochs"),
            "best_epoch": attrs.get(BEST_EPOCH_ATTR),
            "search_val_accuracy": val_accuracy_of(origin) if origin is not None else None,
            "reported_test_accuracy": reported, "mlflow_run_id": attrs.get(RUN_ATTR),
        })
    return rows


def format_value(value: Any, column: str) -> str:
    """A cell as text: accuracies to 4 decimals, params with thousands separators, the champion
    as ``champion``, missing values as ``-``."""
    if column == "champion":
        return "champion" if value else ""
    if value is None or value == "":
        return "-"
    if column.endswith("accuracy"):
        return f"{value:.4f}"
    if column == "params":
        return f"{int(value):,}"
    return str(value)


def spec_summaries(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over the seeds of each retrained spec, in the order of its best seed.

    Returns:
        [{"retrains", "seeds" (how many final models), "val_accuracy" and "test_accuracy"
        (means), "test_accuracy_std" (sample standard deviation; None for one seed)}].
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in records:
        groups.setdefault(row["retrains"], []).append(row)
    summaries = []
    for retrains, rows in groups.items():
        tests = [r["test_accuracy"] for r in rows if r["test_accuracy"] is not None]
        summaries.append({
            "retrains": retrains, "seeds": len(rows),
            "val_accuracy": statistics.fmean(r["val_accuracy"] for r in rows),
            "test_accuracy": statistics.fmean(tests) if tests else None,
            "test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else None,
        })
    return summaries


def final_comparison(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The champion against the best retrained baseline (by val_accuracy) and the seeds' best
    reported test_accuracy (``BASELINES``' highest, chosen on the test set by its notebook).

    Returns:
        {"champion": its row, "baseline": the best retrained baseline's row or None,
        "reported": (name, reported test_accuracy) of the catalog's best}.
    """
    from nas_mnist.architecture.baselines import BASELINES

    best_reported = max(BASELINES, key=lambda b: b.reported_test_accuracy)
    baselines = [r for r in records if r["baseline"]]
    return {"champion": records[0], "baseline": baselines[0] if baselines else None,
            "reported": (best_reported.name, best_reported.reported_test_accuracy)}


def write_final_files(records: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write ``final_models.csv`` and ``final_models.md``; nothing when ``records`` is empty.

    Returns:
        The files written.
    """
    import csv

    if not records:
        return []
    csv_path, md_path = out_dir / CSV_NAME, out_dir / MARKDOWN_NAME
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FINAL_COLUMNS)
        writer.writeheader()
        writer.writerows({c: "" if r[c] is None else r[c] for c in FINAL_COLUMNS}
                         for r in records)
    md_path.write_text(final_markdown(records))
    return [csv_path, md_path]


def final_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The final models as a GitHub-flavoured markdown table (``PAGE_COLUMNS`` and
    ``champion``), the champion's row marked."""
    columns = ("champion", *PAGE_COLUMNS)
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if c in ("champion", "retrains") else "---:"
                            for c in columns) + "|"]
    for row in records:
        cells = (format_value(row[c], c).replace("|", "\\|") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def final_models_context(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The page's "Final models" section, or None when there is no final model.

    Returns:
        {"columns": ``PAGE_COLUMNS``, each split at "_" (the page breaks lines there),
        "rows": [{"champion": bool, "classes": CSS classes, "cells": [text]}], "summaries": per-spec
        means (``spec_summaries``) when some spec has several seeds, else [], "comparison": one
        sentence}.
    """
    if not records:
        return None
    summaries = spec_summaries(records)
    return {
        "columns": [column.split("_") for column in PAGE_COLUMNS],
        "rows": [{"champion": r["champion"], "classes": _row_classes(r),
                  "cells": [format_value(r[c], c) for c in PAGE_COLUMNS]} for r in records],
        "summaries": [
            {"retrains": s["retrains"], "seeds": s["seeds"],
             "val_accuracy": format_value(s["val_accuracy"], "val_accuracy"),
             "test_accuracy": format_value(s["test_accuracy"], "test_accuracy"),
             "test_accuracy_std": format_value(s["test_accuracy_std"], "test_accuracy")}
            for s in summaries
        ] if any(s["seeds"] > 1 for s in summaries) else [],
        "comparison": comparison_sentence(final_comparison(records)),
    }


def _row_classes(row: dict[str, Any]) -> str:
    """A row's CSS classes: ``champion``, ``baseline`` (a retrained baseline), both or none."""
    return " ".join(name for name, on in (("champion", row["champion"]),
                                          ("baseline", bool(row["baseline"]))) if on)


def comparison_sentence(comparison: dict[str, Any]) -> str:
    """``final_comparison`` as one sentence: the champion's test_accuracy against the best
    retrained baseline's and the seeds' best reported one."""
    champion, baseline = comparison["champion"], comparison["baseline"]
    test = champion["test_accuracy"]
    name, reported = comparison["reported"]
    text = (f"Champion: final model {champion['final_trial']} ({champion['retrains']}, seed "
            f"{format_value(champion['seed'], 'seed')}), val_accuracy "
            f"{format_value(champion['val_accuracy'], 'val_accuracy')}, test_accuracy "
            f"{format_value(test, 'test_accuracy')}.")
    if baseline is not None and baseline is not champion:
        text += (f" Best retrained baseline (by val_accuracy): {baseline['baseline']}, "
                 f"test_accuracy {format_value(baseline['test_accuracy'], 'test_accuracy')}"
                 + (f" (champion {gain})" if (gain := _gain(test, baseline["test_accuracy"]))
                    else "") + ".")
    gain = _gain(test, reported)
    text += (f" The seeds' best reported test_accuracy: {reported:.4f} ({name}, chosen on the "
             "test set by its notebook" + (f"; champion {gain}" if gain else "") + ").")
    return text


def _gain(champion: float | None, other: float | None) -> str:
    """``+0.0012`` (champion minus other), or empty when either is unknown."""
    if champion is None or other is None:
        return ""
    return f"{champion - other:+.4f}"
