"""The rich console: progress bars over trials and epochs (a terminal or Jupyter), tables and the
format of their cells."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from nas_mnist.timing import SearchClock, format_duration
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    NUM_PARAMS_ATTR,
    REASON_ATTR,
    VAL_ACCURACY_ATTR,
    user_attr,
)

logger = logging.getLogger(__name__)

# Rich falls back to 80 columns when output is not a terminal (CI logs, pipes): too narrow for the
# leaderboard, so use a wider page there.
console = Console()
if not console.is_terminal:
    console = Console(width=160)


def live_bars_possible() -> bool:
    """Whether progress bars can be drawn live: a terminal, or Jupyter with ipywidgets (without
    it, rich warns 'install "ipywidgets" for Jupyter support' at every refresh instead)."""
    if console.is_jupyter:
        import importlib.util

        return importlib.util.find_spec("ipywidgets") is not None
    return console.is_interactive


class StepProgress:
    """The steps of a long command that is not a search (``export``): on a live display a
    spinner with the step's name, its number and the seconds it has taken, removed when the step
    ends; elsewhere (a pipe, a log file, ``progress=False``) one INFO line per step as it starts.

    Usage::

        steps = StepProgress("export", 4, live=True)
        with steps.step("writing the SavedModel"):
            ...

    Args:
        title: what the steps are of, shown before each step ("export").
        total: the number of steps (each ``step`` call is the next one).
        live: draw the spinner when a live display is possible (``live_bars_possible``).
    """

    def __init__(self, title: str, total: int, live: bool = True) -> None:
        self.title, self.total = title, total
        self.live = live and live_bars_possible()
        self.done = 0

    @contextlib.contextmanager
    def step(self, label: str, spinner: bool = True) -> Iterator[None]:
        """Run the block as the next step; ``spinner=False`` for a step that draws a live display
        of its own (rich allows one at a time): then only its line is printed."""
        self.done += 1
        text = f"{self.title}: {label} (step {self.done} of {self.total})"
        if not (self.live and spinner):
            logger.info("%s", text)
            yield
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            bar.add_task(text, total=None)
            yield


class _EtaColumn(ProgressColumn):
    """Time left: the running trial's on the epochs bar, the whole search's on the trials bar
    (``SearchClock``; blank until the first epoch of the search ended)."""

    def __init__(self, owner: RichProgress) -> None:
        super().__init__()
        self.owner = owner

    def render(self, task: Task) -> Text:
        return Text(self.owner.eta_text(task.id), style="progress.remaining")


class RichProgress:
    """A ``SearchListener`` that draws a bar over trials and one over the current trial's epochs.

    After the first epoch of the search, the epochs bar shows the trial's ETA and the trials bar
    the search's projected remaining time (``nas_mnist.timing.SearchClock``). Use as a
    context manager around ``study.optimize``.

    Args:
        total_trials: the search's ``--trials``.
        done_trials: trials finished before this run.
        disable: draw nothing.
        budget_hint: called with the search's projected remaining seconds at each epoch end
            until it returns a line (e.g. ``timing.suggest_cpu_budget``); the line is shown once
            above the bars and kept in ``suggestion``.
        clock: the timing tracker (tests pass one with a fake clock).
        study_best: returns the study's best val_accuracy so far, or None (e.g.
            ``functools.partial(leaderboard.best_val_accuracy, study)``); called when the bars
            start and after each trial, so the trials bar shows the best of the whole study,
            including trials finished before this run and by other workers, not only this
            run's. Without it, the best of this run's trials.

    Epochs are numbered from 0 as everywhere in nas-mnist (``plots.EPOCH_AXIS_LABEL``): the
    epochs bar counts the epochs done ("3/15") and names the last one ("epoch 2").

    Where the bars are not drawn live (``disable``, or output to a file or pipe: rich then
    prints them once at the end), ``trial_finished`` logs one line per finished trial instead
    (``trial_line``) to the ``nas_mnist`` logger at INFO; ``trial_lines`` says whether it does.
    In Jupyter without ipywidgets nothing is drawn (``live_bars_possible``) and the lines are
    printed to the cell instead (unless ``disable``).
    """

    def __init__(
        self,
        total_trials: int,
        done_trials: int = 0,
        disable: bool = False,
        budget_hint: Callable[[float | None], str | None] | None = None,
        clock: SearchClock | None = None,
        study_best: Callable[[], float | None] | None = None,
    ) -> None:
        live = live_bars_possible()
        # Jupyter without ipywidgets: the trial lines are printed to the cell (a notebook has no
        # handler on the nas_mnist logger), unless the caller turned progress off.
        self._print_lines = console.is_jupyter and not live and not disable
        disable = disable or (console.is_jupyter and not live)
        self.progress = Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            _EtaColumn(self),
            console=console,
            disable=disable,
            transient=False,
        )
        self.trials = self.progress.add_task(
            "trials", total=total_trials, completed=done_trials, status=""
        )
        self.epochs = self.progress.add_task("epochs", total=1, status="", visible=False)
        self.best: float | None = None
        self.study_best = study_best
        self.clock = clock or SearchClock()
        self.budget_hint = budget_hint
        self.suggestion: str | None = None
        self._total, self._done, self._running = total_trials, done_trials, False
        self.trial_lines = disable or not live
        self._skipped = 0  # impossible architectures since the last trial line

    def search_remaining(self) -> float | None:
        """Projected seconds until the search's last trial ends (None: nothing to go by yet)."""
        not_started = self._total - self._done - (1 if self._running else 0)
        return self.clock.search_remaining(not_started)

    def eta_text(self, task_id: Any) -> str:
        """What the ETA column shows for the trials bar or the epochs bar."""
        if task_id == self.epochs:
            left = self.clock.trial_remaining()
            return f"ETA {format_duration(left)}" if left is not None else ""
        left = self.search_remaining()
        return f"~{format_duration(left)} left" if left is not None else ""

    def __enter__(self) -> RichProgress:
        self.progress.start()
        self._show_best(None)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def trial_started(self, number: int, epochs: int, label: str) -> None:
        self.clock.trial_started(epochs)
        self._running = True
        self.progress.reset(
            self.epochs, total=epochs, description=f"{label}: epochs", status="", visible=True
        )

    def epoch_ended(self, number: int, epoch: int, logs: dict[str, float]) -> None:
        self.clock.epoch_ended()
        val = logs.get("val_accuracy")
        status = f"epoch {epoch}: val_accuracy {val:.4f}" if val is not None else ""
        self.progress.update(self.epochs, completed=epoch + 1, status=status)
        if self.budget_hint is not None and self.suggestion is None:
            self.suggestion = self.budget_hint(self.search_remaining())
            if self.suggestion:
                self.progress.console.print(self.suggestion)

    def trial_ended(self, number: int, state: str, value: float | None) -> None:
        counted = state in ("complete", "pruned")
        self.clock.trial_ended(counted=counted)
        self._running = False
        if counted:
            self._done += 1
            self.progress.advance(self.trials)
        self._show_best(value)
        self.progress.update(self.epochs, visible=False)

    def trial_finished(self, trial: Any, finished: int, best: tuple[float, int] | None,
                       impossible: bool = False) -> None:
        """A trial of the study finished (this process's or a ``--jobs`` worker's): set the
        trials bar to ``finished`` and fold ``best`` in; where the bars are not live, log its
        ``trial_line`` (an impossible architecture only at DEBUG: the next line counts it).

        Args:
            trial: the ``optuna.trial.FrozenTrial``, finished (complete, pruned or failed).
            finished: the study's trials that count towards ``--trials``
                (``trial_counts.count_finished``).
            best: (val_accuracy, trial number) of the study's best trial, or None.
            impossible: pruned as an impossible architecture (not counted towards ``--trials``).
        """
        self._done = finished
        self.progress.update(self.trials, completed=finished)
        if best is not None and (self.best is None or best[0] > self.best):
            self._show_best(best[0])
        if not self.trial_lines:
            return
        if impossible:
            self._skipped += 1
            logger.debug("%s", trial_line(trial, finished, self._total, best))
            return
        self.log_line(trial_line(trial, finished, self._total, best, self._skipped))
        self._skipped = 0

    def log_line(self, line: str) -> None:
        """Where the bars are not drawn live, log ``line`` to the ``nas_mnist`` logger at INFO
        (print it, in Jupyter without ipywidgets); where they are, do nothing: they show it."""
        if not self.trial_lines:
            return
        if self._print_lines:
            console.print(line, highlight=False)
        else:
            logger.info("%s", line)

    def _show_best(self, value: float | None) -> None:
        """Fold ``value`` and the study's best into ``best`` and show it on the trials bar."""
        candidates = [v for v in (self.best, value) if v is not None]
        if self.study_best is not None:
            try:
                study_best = self.study_best()
            except Exception as exc:  # a storage hiccup must not stop the search
                logger.debug("could not read the study's best value: %s", exc)
                study_best = None
            if study_best is not None:
                candidates.append(study_best)
        self.best = max(candidates, default=None)
        best = f"best val_accuracy {self.best:.4f}" if self.best is not None else ""
        self.progress.update(self.trials, status=best)


# Long enough for every reason nas-mnist writes itself (a pruner's rule, the NaN advice, the time
# budget's; up to about 120 characters), so that only a long exception message is cut.
REASON_CHARS = 128


def trial_line(trial: Any, finished: int, total: int, best: tuple[float, int] | None,
               skipped: int = 0) -> str:
    """One line on a finished trial, for logs where no progress bar is drawn, e.g.
    ``trial 12 complete: val_accuracy 0.9876 (s002_m1), 41 s; best 0.9901 (trial 7); 12 of 60
    finished``; a pruned or failed trial gives its state and its reason (cut after
    ``REASON_CHARS``) instead of a value.

    Args:
        trial: a finished ``optuna.trial.FrozenTrial``.
        finished: trials of the study that count towards ``--trials``; ``total``: ``--trials``.
        best: (val_accuracy, trial number) of the study's best trial, or None.
        skipped: impossible architectures (pruned at once, not counted) since the previous
            line ("; 2 impossible skipped").
    """
    attrs = trial.user_attrs
    state = {"fail": "failed"}.get(trial.state.name.lower(), trial.state.name.lower())
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    took = "" if seconds is None else f", {format_duration(seconds)}"
    label = _trial_label(attrs)
    if state == "complete":
        value = attrs.get(VAL_ACCURACY_ATTR, trial.values[0] if trial.values else None)
        shown = "-" if value is None else f"{float(value):.4f}"
        head = f"trial {trial.number} complete: val_accuracy {shown}{label}{took}"
    else:
        reason = str(attrs.get(REASON_ATTR) or "no reason recorded")
        reason = reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"
        head = f"trial {trial.number} {state}{label}{took}: {reason}"
    tail = (f"best {best[0]:.4f} (trial {best[1]})" if best is not None
            else "no best yet")
    extra = f"; {skipped} impossible skipped" if skipped else ""
    return f"{head}; {tail}; {finished} of {total} finished{extra}"


def _trial_label(attrs: dict[str, Any]) -> str:
    """" (s002_m1)" for a baseline, " (depth 5, 81,234 params)" for a sampled spec, else ""."""
    if attrs.get(BASELINE_ATTR):
        return f" ({attrs[BASELINE_ATTR]})"
    facts = []
    if attrs.get("depth") is not None:
        facts.append(f"depth {attrs['depth']}")
    params = user_attr(attrs, NUM_PARAMS_ATTR)
    if params is not None:
        facts.append(f"{int(params):,} params")
    return f" ({', '.join(facts)})" if facts else ""


def epoch_progress_callback(progress: RichProgress, number: int) -> Any:
    """A Keras callback that advances ``progress``'s epoch bar of trial ``number``."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            progress.epoch_ended(number, epoch, dict(logs or {}))

    return EpochProgress()


NUMERIC_COLUMNS = ("trial", "val_accuracy", "test_accuracy", "params", "depth", "train_seconds",
                   "latency_ms", "epochs_trained", "best_epoch", "seed", "num_params")
"""Columns aligned right."""
DROPPED_FIRST = ("kernel_sizes", "train_seconds", "depth", "epochs_trained", "latency_ms",
                 "optimizer", "best_epoch", "seed", "baseline")
"""Columns left out, in this order, of a table wider than the terminal (the others keep their
full headers: an 80-column terminal once showed ``tri… bas… sta…``)."""
WRAPPED = ("note", "reason")
"""Free-text columns, folded onto several lines rather than widening the table; listed below
the table instead when less than ``MIN_WRAPPED_WIDTH`` characters would be left for them."""
MIN_WRAPPED_WIDTH = 24
COLUMN_PADDING = 3
"""Characters a column takes besides its text (``box.SIMPLE_HEAD``: a space each side and the
separator)."""


def table_from_frame(
    frame: pd.DataFrame, columns: Iterable[str], title: str | None = None, limit: int | None = None,
    width: int | None = None,
) -> RenderableType:
    """A rich Table of ``frame``'s ``columns`` (first ``limit`` rows) that fits ``width``
    characters (default: the console's): ``DROPPED_FIRST`` columns are left out, in that order,
    while the table would be wider; ``WRAPPED`` columns fold, or follow the table as
    "trial N: text" lines when too narrow."""
    rows = frame if limit is None else frame.head(limit)
    cells = {c: [format_cell(row[c], c) for _, row in rows.iterrows()] for c in columns}
    width = width or console.width
    columns = _columns_that_fit(cells, width)
    fixed = sum(_needed(c, cells) for c in columns if c not in WRAPPED)
    below = [c for c in columns if c in WRAPPED and width - fixed - COLUMN_PADDING
             < MIN_WRAPPED_WIDTH]
    columns = [c for c in columns if c not in below]
    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, justify="right" if column in NUMERIC_COLUMNS else "left",
                         no_wrap=column not in WRAPPED, overflow="fold", min_width=len(column))
    for i in range(len(rows)):
        table.add_row(*(cells[c][i] for c in columns))
    notes = [Text(f"trial {cells['trial'][i] if 'trial' in cells else i}: {cells[c][i]}",
                  overflow="fold")
             for c in below for i in range(len(rows)) if cells[c][i] not in ("", "-")]
    return Group(table, *notes) if notes else table


def _needed(column: str, cells: dict[str, list[str]]) -> int:
    """Characters ``column`` takes: its widest cell or header (a wrapped one: its header)."""
    text = len(column) if column in WRAPPED else max([len(column), *map(len, cells[column])])
    return text + COLUMN_PADDING


def _columns_that_fit(cells: dict[str, list[str]], width: int) -> list[str]:
    """The columns of ``cells`` kept for a table of at most ``width`` characters."""
    kept = list(cells)
    for column in DROPPED_FIRST:
        if sum(_needed(c, cells) for c in kept) <= width:
            break
        if column in kept:
            kept.remove(column)
    return kept


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
