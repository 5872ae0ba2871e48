"""A study's defaults, the names of its samplers, pruners and objectives, and the rule that ties
pruners to objectives (light to import: no Optuna, so that ``nas-mnist --help`` stays fast)."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_STORAGE = "sqlite:///nas_mnist.db"
DEFAULT_STUDY_NAME = "nas-mnist"
DEFAULT_JOBS_STORAGE = "journal:///nas_mnist.log"
"""The storage of ``search --jobs N`` (N > 1) that names none: a journal file next to where the
SQLite default would be (an SQLite file takes one writing process at a time)."""


def default_storage(jobs: int) -> str:
    """The storage of a search that names none: ``DEFAULT_STORAGE``, or
    ``DEFAULT_JOBS_STORAGE`` for ``jobs`` > 1 worker processes."""
    return DEFAULT_JOBS_STORAGE if jobs > 1 else DEFAULT_STORAGE
SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("val_accuracy", "params", "latency")
"""Objective names: val_accuracy (maximized) first, then optional secondary objectives,
minimized: params (parameter count) and latency (milliseconds per image)."""
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "median"


def check_pruner(pruner: str, objectives: Sequence[str]) -> None:
    """Optuna prunes single-objective studies only: with several ``objectives``, ``pruner`` must
    be "none" (``SearchSettings`` and ``open_study`` both check with this).

    Raises:
        ValueError: a pruner other than "none" with several objectives; the message names the
            flags.
    """
    if len(objectives) > 1 and pruner != "none":
        raise ValueError(f"--pruner {pruner}: Optuna cannot prune trials of a multi-objective "
                         "study; drop --pruner or pass --pruner none with --objective "
                         f"{','.join(objectives)}")
