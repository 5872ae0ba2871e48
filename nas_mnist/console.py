"""The rich console: progress bars over trials and epochs (a terminal or Jupyter), tables and the
format of their cells."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Rich falls back to 80 columns when output is not a terminal (CI logs, pipes): too narrow for the
# leaderboard, so use a wider page there.
console = Console()
if not console.is_terminal:
    console = Console(width=160)


class RichProgress:
    """A ``SearchListener`` that draws a bar over trials and one over the current trial's epochs.

    Use as a context manager around ``study.optimize``.
    """

    def __init__(self, total_trials: int, done_trials: int = 0, disable: bool = False) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=disable,
            transient=False,
        )
        self.trials = self.progress.add_task(
            "trials", total=total_trials, completed=done_trials, status=""
        )
        self.epochs = self.progress.add_task("epochs", total=1, status="", visible=False)
        self.best: float | None = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def trial_started(self, number: int, epochs: int, label: str) -> None:
        self.progress.reset(
            self.epochs, total=epochs, description=f"{label}: epochs", status="", visible=True
        )

    def epoch_ended(self, number: int, epoch: int, logs: dict[str, float]) -> None:
        val = logs.get("val_accuracy")
        status = f"val_accuracy {val:.4f}" if val is not None else ""
        self.progress.update(self.epochs, completed=epoch + 1, status=status)

    def trial_ended(self, number: int, state: str, value: float | None) -> None:
        if state in ("complete", "pruned"):
            self.progress.advance(self.trials)
        if value is not None and (self.best is None or value > self.best):
            self.best = value
        best = f"best val_accuracy {self.best:.4f}" if self.best is not None else ""
        self.progress.update(self.trials, status=best)
        self.progress.update(self.epochs, visible=False)


def epoch_progress_callback(progress: RichProgress, number: int) -> Any:
    """A Keras callback that advances ``progress``'s epoch bar of trial ``number``."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            progress.epoch_ended(number, epoch, dict(logs or {}))

    return EpochProgress()


def table_from_frame(
    frame: pd.DataFrame, columns: Iterable[str], title: str | None = None, limit: int | None = None
) -> Table:
    """A rich Table of ``frame``'s ``columns`` (first ``limit`` rows)."""
    columns = list(columns)
    table = Table(title=title, show_lines=False)
    for column in columns:
        numeric = column in (
            "trial",
            "val_accuracy",
            "test_accuracy",
            "params",
            "depth",
            "train_seconds",
        )
        table.add_column(column, justify="right" if numeric else "left")
    rows = frame if limit is None else frame.head(limit)
    for _, row in rows.iterrows():
        table.add_row(*(format_cell(row[c], c) for c in columns))
    return table


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
