"""The leaderboard: one row per trial of a study, best val_accuracy first (a pandas DataFrame).

This module is the one registry of leaderboard columns: ``COLUMNS`` lists every column the table
has, and ``VIEWS`` the subsets that each place shows (the search's console table, the report's
CSV/JSON, its markdown and HTML table). ``best_trial`` is the one rule that picks the best trial
(highest val_accuracy among complete trials, ties to the earliest): the search result, the report
and the export all use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.study.opening import val_accuracy_of
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    BEST_EPOCH_ATTR,
    IN_SPACE_ATTR,
    LATENCY_ATTR,
    MODEL_URI_ATTR,
    NUM_PARAMS_ATTR,
    REASON_ATTR,
    RUN_ATTR,
    TEST_ACCURACY_ATTR,
    TRAIN_SECONDS_ATTR,
    trial_spec_data,
    user_attr,
)

COLUMNS = (
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
    "latency_ms",
    "pareto",
    "mlflow_run_id",
    "reason",
    "note",
)
"""Every column of ``leaderboard(study)``."""

VIEWS: dict[str, tuple[str, ...]] = {
    "console": ("trial", "baseline", "state", "val_accuracy", "test_accuracy", "params", "depth",
                "kernel_sizes", "optimizer", "train_seconds", "note"),
    "records": ("trial", "baseline", "state", "val_accuracy", "test_accuracy", "params", "depth",
                "kernel_sizes", "filters", "num_pools", "num_batch_norm", "dense_units",
                "optimizer", "learning_rate", "batch_size", "train_seconds", "best_epoch",
                "mlflow_run_id", "reason"),
    "markdown": ("trial", "baseline", "state", "val_accuracy", "test_accuracy", "params",
                 "depth", "kernel_sizes", "num_pools", "num_batch_norm", "optimizer",
                 "learning_rate", "train_seconds", "note"),
    "html": ("trial", "baseline", "state", "val_accuracy", "test_accuracy", "params", "depth",
             "kernel_sizes", "optimizer", "learning_rate", "best_epoch", "note"),
}
"""Columns shown by each place: ``console`` (the search's table), ``records`` (the report's
``leaderboard.csv`` with ``note``, and ``report --format json``), ``markdown``
(``leaderboard.md``; a reason is cut to a short note), ``html`` (the report page: fewer columns,
to fit a printed page)."""

NUMERIC_COLUMNS = ("trial", "val_accuracy", "test_accuracy", "params", "depth", "train_seconds",
                   "latency_ms", "learning_rate", "batch_size", "best_epoch")
"""Columns drawn right-aligned in tables."""

INTEGER_COLUMNS = ("trial", "params", "depth", "num_pools", "num_batch_norm", "batch_size",
                   "best_epoch")
"""Whole-number columns: pandas ``Int64`` (missing: ``<NA>``)."""
FLOAT_COLUMNS = ("val_accuracy", "test_accuracy", "learning_rate", "train_seconds", "latency_ms")
"""Real-number columns: pandas ``Float64`` (missing: ``<NA>``)."""
TEXT_COLUMNS = ("baseline", "state", "kernel_sizes", "filters", "dense_units", "optimizer",
                "mlflow_run_id", "reason", "note")
"""Text columns: strings, ``""`` where a trial has none (never None or NaN)."""
ROUNDING = {"val_accuracy": 4, "test_accuracy": 4, "train_seconds": 1, "latency_ms": 3}
"""Decimals kept per column: accuracies 4, seconds 1, milliseconds 3 (the rows are ranked on
the unrounded values first)."""
_SPEC_COLUMNS = ("filters", "dense_units", "learning_rate", "batch_size")


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _baseline_label(attrs: dict[str, Any]) -> str:
    name = attrs.get(BASELINE_ATTR, "")
    if name and not attrs.get(IN_SPACE_ATTR, False):
        return f"{name} (out-of-space)"
    return name


def _short(reason: str, width: int = 40) -> str:
    """The first words of a reason (e.g. "invalid_architecture: layer 13 ...")."""
    return reason if len(reason) <= width else reason[: width - 1] + "…"


def leaderboard(study: Any, states: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The study's trials as a table sorted by val_accuracy (highest first, unranked last).

    Args:
        study: an ``optuna.Study``.
        states: keep only these states (lower-case Optuna names: "complete", "pruned", "fail",
            "running"); ``None`` keeps all.

    Returns:
        A DataFrame with the columns in ``COLUMNS``. ``val_accuracy`` is the best epoch's for
        complete trials and the last reported one for pruned trials; ``test_accuracy`` is set
        for complete trials only (reporting, never selection). In a multi-objective study
        (``--objective val_accuracy,params``) ``pareto`` is True for the trials on the Pareto
        front (Optuna's ``study.best_trials``), which come first; otherwise it is None.
        ``latency_ms`` is set when latency was measured (``--objective ...,latency``).

        One missing-value marker: numeric columns use pandas' nullable dtypes (``Int64`` for
        ``INTEGER_COLUMNS``, ``Float64`` for ``FLOAT_COLUMNS``, ``boolean`` for ``pareto``), so a
        missing number is ``pd.NA`` (shown ``<NA>``; ``.to_numpy()`` gives NaN, CSV an empty
        cell, JSON null); text columns hold ``""`` where a trial has nothing. Values are rounded
        as ``ROUNDING`` says (accuracies to 4 decimals, seconds to 1).
    """
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else None
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if states is not None and state not in states:
            continue
        attrs = t.user_attrs
        val = val_accuracy_of(t)
        if val is None and t.intermediate_values:
            val = max(t.intermediate_values.values())
        spec = _spec_summary(trial_spec_data(t))
        rows.append(
            {
                "trial": t.number,
                "baseline": _baseline_label(attrs),
                "state": state,
                "val_accuracy": _number(val),
                "test_accuracy": _number(attrs.get(TEST_ACCURACY_ATTR)),
                "params": user_attr(attrs, NUM_PARAMS_ATTR),
                **{k: attrs.get(k) for k in ("depth", "num_pools", "num_batch_norm")},
                "kernel_sizes": attrs.get("kernel_sizes", ""),
                "optimizer": attrs.get("optimizer", ""),
                **{k: spec.get(k) for k in _SPEC_COLUMNS},
                "train_seconds": _number(attrs.get(TRAIN_SECONDS_ATTR)),
                "best_epoch": attrs.get(BEST_EPOCH_ATTR),
                "latency_ms": _number(attrs.get(LATENCY_ATTR)),
                "pareto": None if front is None else t.number in front,
                "mlflow_run_id": attrs.get(RUN_ATTR) or "",
                "reason": attrs.get(REASON_ATTR, ""),
                "note": _short(attrs.get(REASON_ATTR, "")),
            }
        )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    rank = frame["state"].ne("complete").astype(int)
    if front is not None:
        rank = rank * 2 + frame["pareto"].ne(True).astype(int)
    frame = frame.assign(_rank=rank).sort_values(
        ["_rank", "val_accuracy", "trial"], ascending=[True, False, True], na_position="last"
    )
    return _tidy(frame.drop(columns="_rank").reset_index(drop=True))


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype and one missing-value marker per column (``leaderboard``'s docstring), rounded
    as ``ROUNDING`` says."""
    for column in INTEGER_COLUMNS:  # whole numbers, with gaps where a trial has none
        frame[column] = frame[column].astype("Int64")
    for column in FLOAT_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce").astype("Float64")
        frame[column] = values.round(ROUNDING[column]) if column in ROUNDING else values
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    frame["pareto"] = frame["pareto"].astype("boolean")
    return frame


def view(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The columns of ``VIEWS[name]`` (plus ``note`` for ``records``, as leaderboard.csv has)."""
    columns = list(VIEWS[name]) + (["note"] if name == "records" else [])
    return frame[columns]


def leaderboard_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The leaderboard as JSON-ready dicts of the ``records`` view (missing numbers: ``None``)."""
    return json.loads(frame[list(VIEWS["records"])].to_json(orient="records"))


def best_trial(study: Any, with_model: bool = False) -> Any | None:
    """The complete trial with the highest val_accuracy (ties: the earliest), or None.

    Args:
        study: an ``optuna.Study``.
        with_model: consider only trials that kept a trained model (``model_uri``).

    Returns:
        An ``optuna.trial.FrozenTrial``, or None when no trial qualifies.
    """
    best = best_trials(study, 1, with_model=with_model)
    return best[0] if best else None


def best_val_accuracy(study: Any) -> float | None:
    """The study's best val_accuracy so far (best complete trial, any worker), or None.

    For ``RichProgress(study_best=functools.partial(best_val_accuracy, study))``.
    """
    best = best_trial(study)
    return None if best is None else val_accuracy_of(best)


def best_result(study: Any) -> tuple[float, int] | None:
    """(val_accuracy, trial number) of the study's best trial (``best_trial``), or None.

    For ``RichProgress.trial_finished``'s ``best``.
    """
    best = best_trial(study)
    value = None if best is None else val_accuracy_of(best)
    return None if value is None else (value, best.number)


def best_trials(study: Any, k: int, with_model: bool = False) -> list[Any]:
    """The ``k`` complete trials with the highest val_accuracy, best first (ties: the earliest).

    Args:
        study: an ``optuna.Study``.
        k: how many trials at most.
        with_model: consider only trials that kept a trained model (``model_uri``).

    Returns:
        Up to ``k`` ``optuna.trial.FrozenTrial``; fewer when fewer qualify.
    """
    from optuna.trial import TrialState

    candidates = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        value = val_accuracy_of(t)
        if value is None or not math.isfinite(value):
            continue
        if with_model and not t.user_attrs.get(MODEL_URI_ATTR):
            continue
        candidates.append((value, -t.number, t))
    candidates.sort(key=lambda c: c[:2], reverse=True)
    return [c[2] for c in candidates[:k]]


def _spec_summary(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        return ArchitectureSpec.from_dict(data).summary()
    except ValueError:  # a spec written by another version: leave its columns empty
        return {}


def baseline_comparison(frame: pd.DataFrame) -> dict[str, Any] | None:
    """How far the best searched trial beats the best baseline (both chosen by val_accuracy).

    Args:
        frame: a ``leaderboard`` table.

    Returns:
        ``None`` unless both a complete searched trial and a complete baseline exist; else a dict
        with the two trial numbers, their val_accuracy and test_accuracy, and the differences
        ``val_accuracy_gain`` and ``test_accuracy_gain`` (searched minus baseline; fractions).
    """
    done = frame[frame["state"].eq("complete") & frame["val_accuracy"].notna()]
    searched = done[done["baseline"].eq("")]
    baselines = done[done["baseline"].ne("")]
    if searched.empty or baselines.empty:
        return None
    best = searched.loc[searched["val_accuracy"].idxmax()]
    base = baselines.loc[baselines["val_accuracy"].idxmax()]

    def gain(column: str) -> float | None:
        if pd.isna(best[column]) or pd.isna(base[column]):
            return None
        return float(best[column] - base[column])

    return {
        "searched_trial": int(best["trial"]),
        "baseline_trial": int(base["trial"]),
        "baseline": base["baseline"],
        "searched_val_accuracy": float(best["val_accuracy"]),
        "baseline_val_accuracy": float(base["val_accuracy"]),
        "searched_test_accuracy": _number(best["test_accuracy"]),
        "baseline_test_accuracy": _number(base["test_accuracy"]),
        "val_accuracy_gain": gain("val_accuracy"),
        "test_accuracy_gain": gain("test_accuracy"),
    }


def comparison_sentence(comparison: Mapping[str, Any]) -> str:
    """``baseline_comparison``'s result as one sentence (the search's output and the report)."""
    test_gain = comparison["test_accuracy_gain"]
    return (
        f"best searched trial {comparison['searched_trial']} vs best baseline "
        f"{comparison['baseline']} (trial {comparison['baseline_trial']}): val_accuracy "
        f"{comparison['val_accuracy_gain']:+.4f}"
        + (f", test_accuracy {test_gain:+.4f}" if test_gain is not None else "")
    )

