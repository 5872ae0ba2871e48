"""What a search returns: ``SearchResult`` (both engines, Optuna and KerasTuner, make one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_mnist.searching.settings import SearchSettings


@dataclass
class SearchResult:
    """What a search left behind.

    Attributes:
        study: the ``optuna.Study`` (``None`` for the KerasTuner engine, which keeps its own state
            in ``tuner_dir``).
        leaderboard: a ``pandas.DataFrame`` with one row per trial that ran (complete, pruned or
            failed; queued trials are left out), best val_accuracy first, with the columns of
            ``nas_mnist.study.leaderboard.COLUMNS``.
        best_trial: the complete trial with the highest val_accuracy (an
            ``optuna.trial.FrozenTrial``), or ``None`` before any trial completed (always ``None``
            for the KerasTuner engine).
        parent_run_id: the study's MLflow parent run.
        experiment_id: the study's MLflow experiment.
        tracking_uri: the MLflow tracking store.
        settings: the settings the search ran with.
        queued: trials still waiting in the study (baselines or retries for a later run).
        stopped_for_failures: the search stopped because too many trials failed in a row.
        tracking_unavailable: why the search stopped early because the tracking server stopped
            answering (the interrupted trial is queued for one retry), else None.
        final: the final stage's ``RetrainResult`` (the champion and the final models), or
            None when the search had no final stage (``final_top_k`` 0, or trials missing).
    """

    study: Any
    leaderboard: Any
    best_trial: Any
    parent_run_id: str | None
    experiment_id: str | None
    tracking_uri: str
    settings: SearchSettings
    queued: int = 0
    stopped_for_failures: bool = False
    tracking_unavailable: str | None = None
    final: Any = None
