"""``nas_mnist.export(...)`` and ``nas-mnist export``: a study's champion (or, before
``nas-mnist retrain`` made one, its best trial) as a verified SavedModel, logged to the study's
MLflow parent run.

The steps: check every input (study, trial, output folder, tracking store, data) before anything
is written; take the champion's model (``nas_mnist.exporting.final``) or the model the search
kept (or train the spec afresh with ``retrain=True``); write the export into a hidden folder,
verify it there and rename it into place; log it to MLflow.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_mnist.errors import InputError
from nas_mnist.exporting.final import FINAL_FACTS_KEY
from nas_mnist.exporting.layout import ExportResult
from nas_mnist.processes.quiet_start import quiet_libraries
from nas_mnist.study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    MODEL_URI_ATTR,
    PARENT_RUN_ATTR,
    RESULT_ATTRS,
    SOURCE_TRIAL_ATTR,
    TEST_ACCURACY_ATTR,
    user_attr,
)

logger = logging.getLogger(__name__)

DEFAULT_RETRAIN_EPOCHS = 15
"""Epochs of ``retrain=True`` (the search's default ``--epochs``)."""


@dataclass(frozen=True)
class _Source:
    """The checked inputs of an export."""

    study: Any
    trial: Any
    spec: Any
    out: Path
    tracker: Any
    data: Any
    final: bool = False
    """``trial`` is a final model (the champion, a trial of ``<study>/final``)."""


@quiet_libraries()
def export(
    *,
    out: str | os.PathLike,
    storage: str = DEFAULT_STORAGE,
    study_name: str = DEFAULT_STUDY_NAME,
    trial: int | None = None,
    retrain: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    tracking_uri: str | None = None,
    data: str | os.PathLike | None = None,
    max_train_samples: int | None = None,
    progress: bool = True,
    ensemble: int | None = None,
    from_search: bool = False,
) -> ExportResult:
    """Export a study's champion or one of its trials as a verified TensorFlow SavedModel
    (``nas-mnist export``).

    Args:
        out: the export folder to create (see ``nas_mnist.exporting.layout`` for its files).
        storage, study_name: the study, as for ``nas_mnist.search``.
        trial: the number of a complete search trial; ``None``: the champion (the final model
            with the highest val_accuracy, ``nas-mnist retrain``) when the study has one, else
            the best search trial by val_accuracy.
        retrain: train a search trial's spec afresh instead of loading the model the search
            kept (``trial``, else the best search trial; never the champion).
        epochs: with ``retrain``: training epochs (default ``DEFAULT_RETRAIN_EPOCHS``).
        seed: with ``retrain``: trains with ``seed + trial number``, as the search did.
        force: replace ``out`` if it holds an earlier export.
        tracking_uri: the MLflow store (default: the one the study logged to).
        data: MNIST, as for ``nas_mnist.search`` (its test split verifies the export).
        max_train_samples: with ``retrain``: train on a stratified subset.
        progress: show each step live (``console.StepProgress``: a spinner with the step and
            its seconds, and the epochs bar while retraining); False, or output that is not a
            terminal: one line per step as it starts.
        ensemble: export instead one model averaging the softmax outputs of the ``ensemble``
            best final models by val_accuracy when the study has that many, else of its
            ``ensemble`` best complete search trials (``nas_mnist.exporting.ensemble``); not
            with ``trial`` or ``retrain``. It is not logged to MLflow.
        from_search: take search trials even when the study has final models (the export of
            the best search trial, or an ensemble of search trials, as before ``retrain``).

    Returns:
        An ``ExportResult`` (folder, manifest, verification, trial number, the final model's
        facts for a champion, MLflow model URI or the reason it could not be logged).

    Raises:
        InputError: bad arguments, no such study or trial, an unusable ``out`` or tracking store,
            bad data; nothing is written.
        VerificationError: the written export does not reproduce the model; nothing is left.
    """
    from nas_mnist.console import StepProgress

    if ensemble is not None:
        return _export_ensemble(ensemble, out, storage, study_name, trial, retrain, force,
                                tracking_uri, data, from_search, progress)
    if not retrain and epochs is not None:
        raise InputError("--epochs applies only with --retrain")
    if not retrain and max_train_samples is not None:
        raise InputError("--max-train-samples applies only with --retrain")
    steps = StepProgress("export", 4, live=progress)
    with steps.step("reading the study and the data"):
        source = _check_inputs(out, storage, study_name, trial, force, tracking_uri, data,
                               max_train_samples, seed, from_search or retrain)
    doing = f"retraining {_what(source)}" if retrain else f"loading {_what(source)}'s model"
    with steps.step(doing, spinner=not retrain):  # retraining draws its own epoch bar
        model, metrics, expected = _model(source, retrain, epochs, seed, progress)
    with steps.step("writing the SavedModel and checking it on the test images"):
        result = _write(source, model, metrics, expected, force)
    with steps.step("logging it to MLflow"):
        return _log(source, model, result, retrain)


def _export_ensemble(
    k: int, out: Any, storage: str, study_name: str, trial: int | None, retrain: bool,
    force: bool, tracking_uri: str | None, data: Any, from_search: bool, progress: bool,
) -> ExportResult:
    from nas_mnist.exporting.ensemble import export_ensemble

    if trial is not None or retrain:
        raise InputError("--ensemble exports the best trials' kept models; it cannot be "
                         "combined with --trial or --retrain")
    return export_ensemble(k, out, storage, study_name, force=force,
                           tracking_uri=tracking_uri, data=data, from_search=from_search,
                           progress=progress)


def _check_inputs(
    out: Any, storage: str, study_name: str, trial_number: int | None, force: bool,
    tracking_uri: str | None, data: Any, max_train_samples: int | None, seed: int,
    from_search: bool,
) -> _Source:
    """Checks every input; the trial is the champion unless ``trial_number`` or
    ``from_search`` asks for a search trial (or the study has no final model)."""
    from nas_mnist.data import load_splits
    from nas_mnist.exporting.atomic import check_out_dir
    from nas_mnist.exporting.final import pick_champion
    from nas_mnist.exporting.selection import pick_trial, trial_spec
    from nas_mnist.study.memory import study_data, study_tracker
    from nas_mnist.study.storage import load_existing_study

    study = load_existing_study(storage, study_name)
    champion = None if trial_number is not None or from_search else pick_champion(study)
    trial = champion if champion is not None else pick_trial(study, trial_number)
    spec = trial_spec(trial)
    path = check_out_dir(out, force)
    tracker = study_tracker(study, tracking_uri)
    splits = load_splits(study_data(study, data), max_train_samples, seed)
    return _Source(study, trial, spec, path, tracker, splits, final=champion is not None)


def _model(
    source: _Source, retrain: bool, epochs: int | None, seed: int, progress: bool
) -> tuple[Any, dict[str, Any], float | None]:
    """(model, metrics for metrics.json, the test_accuracy the export must reproduce or None).

    Raises:
        VerificationError: the model's parameter count differs from the trial's spec.
    """
    from nas_mnist.exporting.selection import load_trial_model
    from nas_mnist.exporting.verification import VerificationError

    trial, spec = source.trial, source.spec
    recorded = {key: user_attr(trial.user_attrs, key) for key in RESULT_ATTRS}
    if retrain:
        model, metrics = _retrain(trial, spec, source.data, epochs or DEFAULT_RETRAIN_EPOCHS,
                                  seed + trial.number, progress)
        expected = None
    else:
        model = load_trial_model(trial, source.tracker.tracking_uri)
        metrics, expected = dict(recorded), trial.user_attrs.get(TEST_ACCURACY_ATTR)
        if not source.final:
            metrics["training"] = _search_budget(source.study)
    if model.count_params() != spec.num_params:
        raise VerificationError(
            f"the model of {_what(source)} has {model.count_params():,} parameters but its "
            f"spec has {spec.num_params:,}: not the trial's model"
        )
    metrics = {
        "study_name": source.study.study_name,
        "trial_number": _search_trial_number(source),
        "retrained": retrain,
        "final_model": source.final,
        "source_model_uri": None if retrain else trial.user_attrs.get(MODEL_URI_ATTR),
        **metrics,
        "trial": recorded,
    }
    if source.final:
        from nas_mnist.exporting.final import final_facts
        from nas_mnist.study.final_models import final_study_name

        metrics[FINAL_FACTS_KEY] = final_facts(trial, spec,
                                               final_study_name(source.study.study_name))
    return model, metrics, expected


def _search_budget(study: Any) -> dict[str, Any]:
    """How a search trial's model was trained: the study's search settings (``epochs``,
    ``max_train_samples``: None for all training images; a resumed study with other values is
    refused unless ``--allow-mixed-fidelity``, ``searching.settings``)."""
    from nas_mnist.trial_attributes import SETTINGS_ATTR

    settings = study.user_attrs.get(SETTINGS_ATTR) or {}
    return {"epochs": settings.get("epochs"),
            "max_train_samples": settings.get("max_train_samples"),
            "source": "the study's search settings"}


def _search_trial_number(source: _Source) -> int | None:
    """The exported search trial, or the one a final model retrains (None for a baseline)."""
    if not source.final:
        return source.trial.number
    return source.trial.user_attrs.get(SOURCE_TRIAL_ATTR)


def _what(source: _Source) -> str:
    """The exported model, for messages: ``trial 3`` or ``final model 1 (search trial 3, ...)``."""
    if not source.final:
        return f"trial {source.trial.number}"
    from nas_mnist.exporting.final import final_label

    return f"final model {source.trial.number} ({final_label(source.trial)})"


def _retrain(
    trial: Any, spec: Any, data: Any, epochs: int, seed: int, progress: bool
) -> tuple[Any, dict[str, Any]]:
    """Train ``spec`` afresh on ``data`` with a progress bar over its epochs."""
    from nas_mnist.console import RichProgress, epoch_progress_callback
    from nas_mnist.model.training import train_spec

    with RichProgress(1, disable=not progress) as bar:
        bar.trial_started(trial.number, epochs, f"retrain trial {trial.number}")
        result = train_spec(spec, data, epochs, seed=seed,
                            callbacks=[epoch_progress_callback(bar, trial.number)])
        bar.trial_ended(trial.number, "complete", result.val_accuracy)
    return result.model, {
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "params": result.num_params,
        "epochs": epochs,
        "seed": seed,
        "num_train_images": len(data.y_train),
    }


def _write(
    source: _Source, model: Any, metrics: dict[str, Any], expected: float | None, force: bool
) -> ExportResult:
    from nas_mnist.exporting.savedmodel import export_savedmodel
    from nas_mnist.exporting.verification import verify_export

    data = source.data

    def check(folder: Path) -> Any:
        return verify_export(folder, data.x_test, data.y_test, model,
                             expected_test_accuracy=expected)

    result = export_savedmodel(model, source.spec, metrics, source.out, force=force, check=check)
    return ExportResult(path=result.path, manifest=result.manifest,
                        verification=result.verification,
                        removed_partials=result.removed_partials,
                        trial_number=metrics["trial_number"], expected_test_accuracy=expected,
                        final=metrics.get(FINAL_FACTS_KEY))


def _log(source: _Source, model: Any, result: ExportResult, retrain: bool) -> ExportResult:
    """Log the model to the study's parent run; a failure is recorded, not raised (the export
    itself is complete)."""
    import dataclasses

    from nas_mnist.exporting.mlflow_model import log_to_mlflow

    parent_run_id = source.study.user_attrs.get(PARENT_RUN_ATTR)
    if not parent_run_id:
        return dataclasses.replace(result, mlflow_error="the study has no parent run")
    metadata = {"study_name": source.study.study_name,
                "trial_number": _search_trial_number(source), "spec_id": source.spec.spec_id,
                "retrained": retrain, "final_model": source.final}
    if source.final:
        metadata.update(final_trial_number=source.trial.number,
                        baseline=source.trial.user_attrs.get(BASELINE_ATTR))
    try:
        uri = log_to_mlflow(model, source.tracker.tracking_uri, parent_run_id,
                            _tag(source), metadata=metadata)
    except Exception as exc:  # MLflow raises many types; the export itself is done
        logger.warning("logging the export to MLflow run %s failed: %s", parent_run_id, exc)
        return dataclasses.replace(result, parent_run_id=parent_run_id, mlflow_error=str(exc))
    return dataclasses.replace(result, parent_run_id=parent_run_id, mlflow_model_uri=uri,
                               tracking_uri=source.tracker.tracking_uri)


def _tag(source: _Source) -> str:
    """The parent run's ``best_trial`` tag: the search trial's number, or ``final:<number>``
    for a final model (its number in ``<study>/final``)."""
    return f"final:{source.trial.number}" if source.final else str(source.trial.number)
