"""The leaderboard: one row per trial of a study, best val_accuracy first (a pandas DataFrame)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nas_mnist.engine.study import val_accuracy_of

COLUMNS = (
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
    "train_seconds",
    "latency_ms",
    "pareto",
    "reason",
    "note",
)


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _baseline_label(attrs: dict[str, Any]) -> str:
    name = attrs.get("baseline", "")
    if name and not attrs.get("in_space", False):
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
        rows.append(
            {
                "trial": t.number,
                "baseline": _baseline_label(attrs),
                "state": state,
                "val_accuracy": _number(val),
                "test_accuracy": _number(attrs.get("test_accuracy")),
                "params": attrs.get("params"),
                "depth": attrs.get("depth"),
                "kernel_sizes": attrs.get("kernel_sizes", ""),
                "num_pools": attrs.get("num_pools"),
                "num_batch_norm": attrs.get("num_batch_norm"),
                "optimizer": attrs.get("optimizer", ""),
                "train_seconds": _number(attrs.get("train_seconds")),
                "latency_ms": _number(attrs.get("latency_ms")),
                "pareto": None if front is None else t.number in front,
                "reason": attrs.get("reason", ""),
                "note": _short(attrs.get("reason", "")),
            }
        )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    rank = frame["state"].ne("complete").astype(int)
    if front is not None:
        rank = rank * 2 + frame["pareto"].ne(True).astype(int)
    frame = frame.assign(_rank=rank).sort_values(
        ["_rank", "val_accuracy", "trial"], ascending=[True, False, True], na_position="last"
    )
    return frame.drop(columns="_rank").reset_index(drop=True)


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


def format_cell(value: Any, column: str) -> str:
    """One leaderboard value as text for tables: accuracies to 4 decimals, params with thousands
    separators, seconds to 0.1, learning_rate to 3 significant digits, missing values as "-"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if column in ("val_accuracy", "test_accuracy"):
        return f"{value:.4f}"
    if column == "params":
        return f"{int(value):,}"
    if column == "train_seconds":
        return f"{value:.1f}"
    if column == "latency_ms":
        return f"{value:.3f}"
    if column == "pareto":
        return "yes" if value else ""
    if column == "learning_rate":
        return f"{value:.3g}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
