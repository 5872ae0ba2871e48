"""Tests of ``nas_mnist.console.RichProgress``: the study's best on the trials bar, and epochs
numbered from 0 on the epochs bar."""

from __future__ import annotations

import io
from functools import partial

import optuna

from nas_mnist.console import RichProgress
from nas_mnist.study.leaderboard import best_val_accuracy


def _status(progress: RichProgress, task: int) -> str:
    return progress.progress.tasks[task].fields["status"]


def _finish(study: optuna.Study, value: float) -> None:
    trial = study.ask()
    study.tell(trial, value)


def test_trials_bar_shows_the_studys_best_including_other_workers():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    _finish(study, 0.91)  # finished before this run
    with RichProgress(3, done_trials=1, disable=True,
                      study_best=partial(best_val_accuracy, study)) as progress:
        assert progress.best == 0.91
        assert _status(progress, progress.trials) == "best val_accuracy 0.9100"
        _finish(study, 0.85)  # this run's trial, worse than the study's best
        progress.trial_ended(1, "complete", 0.85)
        assert _status(progress, progress.trials) == "best val_accuracy 0.9100"
        _finish(study, 0.97)  # another worker's trial
        progress.trial_ended(2, "pruned", 0.5)
        assert progress.best == 0.97
        assert _status(progress, progress.trials) == "best val_accuracy 0.9700"


def test_without_study_best_the_bar_shows_this_runs_best():
    with RichProgress(2, disable=True) as progress:
        assert _status(progress, progress.trials) == ""
        progress.trial_ended(0, "complete", 0.8)
        progress.trial_ended(1, "complete", 0.7)
        assert progress.best == 0.8


def test_a_failing_study_best_does_not_stop_the_bars():
    def broken() -> float:
        raise RuntimeError("database is locked")

    with RichProgress(1, disable=True, study_best=broken) as progress:
        progress.trial_ended(0, "complete", 0.6)
        assert progress.best == 0.6


def test_epochs_bar_counts_epochs_done_and_names_the_last_from_0():
    with RichProgress(1, disable=True) as progress:
        progress.trial_started(0, 3, "trial 0")
        progress.epoch_ended(0, 0, {"val_accuracy": 0.5})
        task = progress.progress.tasks[progress.epochs]
        assert task.completed == 1 and _status(progress, progress.epochs) == (
            "epoch 0: val_accuracy 0.5000")


def test_jupyter_without_ipywidgets_gets_trial_lines_not_bars(monkeypatch):
    import importlib.util

    import nas_mnist.console as console_module

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(console_module.console, "is_jupyter", True)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else find_spec(name, *a))
    bars = console_module.RichProgress(3)
    assert bars.progress.disable and bars.trial_lines
    printed = []
    monkeypatch.setattr(console_module.console, "print", lambda *a, **k: printed.append(a[0]))
    trial = optuna.trial.create_trial(value=0.9, user_attrs={"val_accuracy": 0.9})
    bars.trial_finished(trial, 1, (0.9, 0))
    assert len(printed) == 1 and "0.9000" in printed[0]  # in the cell: no handler there
    console_module.RichProgress(3, disable=True).trial_finished(trial, 1, (0.9, 0))
    assert len(printed) == 1  # progress turned off: the logger's line only
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    if find_spec("ipywidgets") is not None:  # with ipywidgets the bars are drawn live
        assert not console_module.RichProgress(3).progress.disable


def test_the_leaderboard_fits_80_columns_with_whole_headers():
    """An 80-column terminal once showed ``tri… bas… sta…``: low-priority columns are left out
    instead, and a failure's note folds."""
    import pandas as pd
    from rich.console import Console

    from nas_mnist.console import table_from_frame
    from nas_mnist.study.leaderboard import VIEWS

    frame = pd.DataFrame([
        {"trial": 12, "baseline": "s002_m1", "state": "complete", "val_accuracy": 0.99123,
         "test_accuracy": 0.9901, "params": 1_211_274, "depth": 5, "kernel_sizes": "3,3,5,5,7",
         "optimizer": "adadelta", "train_seconds": 123.4, "note": ""},
        {"trial": 13, "baseline": None, "state": "fail", "val_accuracy": float("nan"),
         "test_accuracy": float("nan"), "params": 81_000, "depth": 2, "kernel_sizes": "3,3",
         "optimizer": "adam", "train_seconds": float("nan"),
         "note": "TypeError: something long went wrong in a library far below us"},
    ])
    columns = VIEWS["console"]
    for width, dropped in ((80, {"kernel_sizes", "train_seconds", "depth", "optimizer", "note"}),
                           (200, set())):
        recorder = Console(width=width, record=True, file=io.StringIO())
        recorder.print(table_from_frame(frame, columns, title="top 2", width=width))
        text = recorder.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "…" not in text
        header = next(line for line in text.splitlines() if "trial" in line)
        for column in columns:
            assert (column in header) is (column not in dropped), (width, column)
        assert "0.9912" in text and "1,211,274" in text
        assert "TypeError: something long went wrong in a library far below us" in " ".join(
            line.strip() for line in text.splitlines())  # in a column, or after the table


def test_step_progress_is_one_line_per_step_without_a_live_display(caplog, monkeypatch):
    import logging

    from rich.console import Console

    import nas_mnist.console as console_module
    from nas_mnist.console import StepProgress

    with caplog.at_level(logging.INFO, logger="nas_mnist.console"):
        steps = StepProgress("export", 2, live=False)
        with steps.step("reading"):
            pass
        with steps.step("writing"):
            pass
    assert [r.getMessage() for r in caplog.records] == [
        "export: reading (step 1 of 2)", "export: writing (step 2 of 2)"]

    caplog.clear()  # a terminal: a spinner that is gone when its step ends; no log line
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    monkeypatch.setattr(console_module, "console", terminal)
    monkeypatch.setattr(console_module, "live_bars_possible", lambda: True)
    with caplog.at_level(logging.INFO, logger="nas_mnist.console"):
        steps = StepProgress("export", 2)
        with steps.step("reading"):
            pass
        with steps.step("retraining", spinner=False):  # draws its own bar: a line only
            pass
    assert "export: reading (step 1 of 2)" in terminal.file.getvalue()
    assert [r.getMessage() for r in caplog.records] == ["export: retraining (step 2 of 2)"]
