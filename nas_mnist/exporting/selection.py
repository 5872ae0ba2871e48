"""Choosing the trial to export and loading its spec and model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.exporting.layout import (
    ExportError,
)
from nas_mnist.study.leaderboard import best_trial
from nas_mnist.trial_attributes import MODEL_URI_ATTR, trial_spec_data

if TYPE_CHECKING:
    import keras
    import optuna


def pick_trial(study: optuna.Study, trial_number: int | None = None) -> optuna.trial.FrozenTrial:
    """The trial to export: ``trial_number``, or the completed trial with the best val_accuracy.

    Ties on val_accuracy go to the earliest trial.

    Args:
        study: a study written by ``nas-mnist search`` (objective value = val_accuracy).
        trial_number: the trial's number within the study (0-based), or None for the best.

    Returns:
        A completed trial.

    Raises:
        ExportError: the study has no completed trial, has no trial ``trial_number``, or that
            trial is not complete (running, pruned or failed).
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    numbers = ", ".join(str(t.number) for t in completed[:20]) + (
        ", ..." if len(completed) > 20 else ""
    )
    if trial_number is None:
        if not completed:
            raise ExportError(
                f"study {study.study_name!r} has {len(trials)} trial(s) but no trial has "
                "completed yet; run 'nas-mnist search' until one completes, then export"
            )
        return best_trial(study)
    by_number = {t.number: t for t in trials}
    if trial_number not in by_number:
        raise ExportError(
            f"study {study.study_name!r} has no trial {trial_number} (its trials are numbered "
            f"0..{len(trials) - 1}); completed trials: {numbers or 'none'}"
        )
    trial = by_number[trial_number]
    if trial.state != TrialState.COMPLETE:
        reason = trial.user_attrs.get("reason")
        raise ExportError(
            f"trial {trial_number} of study {study.study_name!r} is "
            f"{trial.state.name.lower()}, not complete"
            + (f" ({reason})" if reason else "")
            + f"; export a completed trial instead: {numbers or 'no trial has completed yet'}"
        )
    return trial


def trial_spec(trial: optuna.trial.FrozenTrial) -> ArchitectureSpec:
    """The spec the objective stored on ``trial``.

    Raises:
        ExportError: the trial has no spec (it was not written by ``nas-mnist search``).
        SpecError: the stored spec is malformed.
    """
    data = trial_spec_data(trial)
    if data is None:
        raise ExportError(
            f"trial {trial.number} records no spec; only trials run by "
            "'nas-mnist search' can be exported"
        )
    return ArchitectureSpec.from_dict(data)


def load_trial_model(trial: optuna.trial.FrozenTrial, tracking_uri: str) -> keras.Model:
    """Download the trained model the search kept for ``trial`` and load it.

    Args:
        trial: a completed trial with the ``model_uri`` user attribute
            (``runs:/<run_id>/model/model.keras``).
        tracking_uri: the MLflow tracking URI the study logged to.

    Returns:
        The trained ``keras.Model`` (best epoch by val_accuracy), compiled as it was saved.

    Raises:
        ExportError: the trial kept no model, or the artifact cannot be downloaded or loaded;
            ``--retrain`` trains the spec afresh instead.
    """
    from nas_mnist.tracking.models import ModelUnavailableError, load_logged_model

    model_uri = trial.user_attrs.get(MODEL_URI_ATTR)
    if not model_uri:
        raise ExportError(
            f"trial {trial.number} kept no trained model (no 'model_uri' user attribute); "
            "pass --retrain to train its spec afresh"
        )
    try:
        return load_logged_model(model_uri, tracking_uri)
    except ModelUnavailableError as exc:
        raise ExportError(
            f"trial {trial.number}: {exc}; check --tracking-uri, or pass --retrain to train the "
            "spec afresh"
        ) from None
