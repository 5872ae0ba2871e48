"""One documented baseline trained with its notebook's recipe (``nas-mnist baselines train``).

It runs as the single trial of an in-memory study, through the same objective as a search trial:
the same MLflow logging (experiment ``nas-mnist-baselines``) and kept model, without pruning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nas_mnist.errors import InputError
from nas_mnist.trial_attributes import BASELINE_ATTR, IN_SPACE_ATTR

BASELINES_EXPERIMENT = "nas-mnist-baselines"


@dataclass(frozen=True)
class BaselineRun:
    """A trained baseline.

    Attributes:
        baseline: the catalog's ``Baseline``.
        trial: the trial's ``optuna.trial.FrozenTrial`` (user attributes hold val_accuracy,
            test_accuracy, best_epoch, mlflow_run_id; ``reason`` if it failed).
        epochs: epochs trained.
        data: a description of the data splits.
        tracking_uri: the MLflow store of the run.
    """

    baseline: Any
    trial: Any
    epochs: int
    data: str
    tracking_uri: str


def train_baseline(
    name: str,
    *,
    epochs: int | None = None,
    seed: int = 0,
    data: str | os.PathLike | None = None,
    max_train_samples: int | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    storage: str | None = None,
    study_name: str | None = None,
) -> BaselineRun:
    """Train baseline ``name`` (see ``nas-mnist baselines list``) and log it to MLflow.

    Args:
        name: the baseline, e.g. "s002_m9".
        epochs: training epochs; ``None``: the notebook's own.
        seed: training seed (Keras' ``set_random_seed(seed)``).
        data, max_train_samples: MNIST, as for ``nas_mnist.search``.
        tracking_uri: the MLflow store, as for ``nas_mnist.search``; with a study context, the
            study's store by default.
        progress: draw progress bars.
        storage, study_name: a study context (either one; the other takes its default): the
            baseline trains on the study's data and logs to the study's MLflow store unless
            ``data`` / ``tracking_uri`` are given (``nas_mnist.study.memory``).

    Raises:
        InputError: unknown baseline, bad data or an unreachable tracking store; with a study
            context: no such study, or its data file is gone or changed.
    """
    import optuna

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.console import RichProgress
    from nas_mnist.data import load_splits
    from nas_mnist.searching.objective import Objective, ObjectiveConfig
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    try:
        baseline = get_baseline(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if storage is not None or study_name is not None:
        data, tracking_uri = _study_context(storage, study_name, data, tracking_uri)
    splits = load_splits(data, max_train_samples, seed)
    tracker = Tracker(tracking_uri)
    tracker.check()
    epochs = epochs or baseline.epochs
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner(),
                                study_name=f"baseline-{baseline.name}")
    study.enqueue_trial({}, user_attrs={BASELINE_ATTR: baseline.name, IN_SPACE_ATTR: False})
    runs = StudyRuns(tracker, tracker.experiment_id(BASELINES_EXPERIMENT))
    with RichProgress(1, disable=not progress) as bar:
        objective = Objective(None, splits, runs, ObjectiveConfig(epochs=epochs, seed=seed),
                              listener=bar, spec_for_trial=lambda trial: baseline.spec)
        study.optimize(objective, n_trials=1)
    return BaselineRun(baseline, study.trials[0], epochs, splits.describe(), tracker.tracking_uri)


def _study_context(
    storage: str | None, study_name: str | None, data: Any, tracking_uri: str | None
) -> tuple[Any, str | None]:
    """(data, tracking_uri) for a baseline trained in the context of a study: the given ones,
    else the study's (its checked data file, its MLflow store)."""
    from nas_mnist.study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME
    from nas_mnist.study.memory import study_data, study_tracking_uri
    from nas_mnist.study.storage import load_existing_study
    from nas_mnist.trial_attributes import TRACKING_URI_ATTR

    study = load_existing_study(storage or DEFAULT_STORAGE, study_name or DEFAULT_STUDY_NAME)
    if tracking_uri is None and study.user_attrs.get(TRACKING_URI_ATTR):
        tracking_uri = study_tracking_uri(study, None)
    return study_data(study, data), tracking_uri
