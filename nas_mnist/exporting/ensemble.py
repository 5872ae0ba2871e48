"""``nas_mnist.export(ensemble=K)``: the K best final models (or trials) of a study as one
averaged SavedModel.

The ensemble's output is the mean of its members' softmax probabilities (unweighted model
averaging; see e.g. Dietterich, "Ensemble methods in machine learning", MCS 2000, and
Lakshminarayanan et al., "Simple and scalable predictive uncertainty estimation using deep
ensembles", NeurIPS 2017, who average softmax outputs the same way). Members are the K final
models with the highest val_accuracy (``nas-mnist retrain``; ``nas_mnist.exporting.final``) when
the study has K of them, else the K complete search trials with the highest val_accuracy that
kept a model (``nas_mnist.study.leaderboard``): the test split is never used to choose them, only
to report what the ensemble adds.

The folder has the layout of a single export (``nas_mnist.exporting.layout``) with the same
``serving_default`` signature, except that ``spec.json`` is replaced by ``ensemble.json``
(each member's trial number, model URI and spec); ``metrics.json`` records the members'
val_accuracy and test_accuracy next to the ensemble's, and ``"members_from"``: ``"final
models"`` or ``"search trials"``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_mnist.exporting.layout import ExportError, ExportResult
from nas_mnist.study.opening import val_accuracy_of
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_SEED_ATTR,
    MODEL_URI_ATTR,
    SOURCE_TRIAL_ATTR,
    TEST_ACCURACY_ATTR,
)

logger = logging.getLogger(__name__)

ENSEMBLE_NAME = "ensemble.json"
"""The file that lists an ensemble's members (in place of ``spec.json``)."""

FROM_FINAL, FROM_SEARCH = "final models", "search trials"
"""Where an ensemble's members come from (``metrics.json``'s ``"members_from"``)."""


@dataclass(frozen=True)
class _Members:
    """The checked inputs of an ensemble export."""

    study: Any
    trials: list[Any]
    specs: list[Any]
    out: Path
    tracking_uri: str
    data: Any
    members_from: str = FROM_SEARCH
    """``FROM_FINAL`` (trials of ``<study>/final``) or ``FROM_SEARCH``."""


def export_ensemble(
    k: int,
    out: str | os.PathLike,
    storage: str,
    study_name: str,
    *,
    force: bool = False,
    tracking_uri: str | None = None,
    data: str | os.PathLike | None = None,
    from_search: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Export the mean of the K best final models' (or trials') softmax outputs as one verified
    SavedModel.

    Args:
        k: number of members, at least 2.
        out, storage, study_name, force, tracking_uri, data: as for ``nas_mnist.export``.
        from_search: take search trials even when the study has ``k`` final models.
        progress: as for ``nas_mnist.export``.

    Returns:
        An ``ExportResult`` with ``members`` (one dict per member, best first) and
        ``trial_number`` None.

    Raises:
        InputError: ``k`` below 2, fewer than ``k`` complete trials with a kept model, an
            unusable ``out`` or tracking store, bad data; nothing is written.
        VerificationError: the written SavedModel does not reproduce the mean of the members'
            predictions within ``PREDICTION_TOLERANCE``; nothing is left.
    """
    from nas_mnist.console import StepProgress

    steps = StepProgress("export", 3, live=progress)
    with steps.step("reading the study and the data"):
        source = _check_inputs(k, out, storage, study_name, force, tracking_uri, data,
                               from_search)
    with steps.step(f"loading the {k} members' models"):
        models = _load_members(source)
        prefix = "final" if source.members_from == FROM_FINAL else "trial"
        model = build_ensemble(models, [t.number for t in source.trials], prefix)
    with steps.step("writing the SavedModel and checking it on the test images"):
        return _write(source, model, models, force)


def _check_inputs(k: int, out: Any, storage: str, study_name: str, force: bool,
                  tracking_uri: str | None, data: Any, from_search: bool) -> _Members:
    from nas_mnist.data import load_splits
    from nas_mnist.exporting.atomic import check_out_dir
    from nas_mnist.exporting.final import final_models_with_model
    from nas_mnist.exporting.selection import trial_spec
    from nas_mnist.study.leaderboard import best_trials
    from nas_mnist.study.memory import study_data, study_tracker
    from nas_mnist.study.storage import load_existing_study

    if k < 2:
        raise ExportError(f"--ensemble {k}: an ensemble needs at least 2 members; leave out "
                          "--ensemble to export the best trial alone")
    study = load_existing_study(storage, study_name)
    finals = [] if from_search else final_models_with_model(study)
    members_from = FROM_FINAL if len(finals) >= k else FROM_SEARCH
    trials = finals[:k] if members_from == FROM_FINAL else best_trials(study, k, with_model=True)
    if len(trials) < k:
        raise ExportError(
            f"--ensemble {k}: study {study_name!r} has only {len(trials)} complete trial(s) "
            f"with a kept model; pass --ensemble {len(trials)} or fewer, or search longer"
        )
    specs = [trial_spec(t) for t in trials]
    path = check_out_dir(out, force)
    tracker = study_tracker(study, tracking_uri)
    return _Members(study, trials, specs, path, tracker.tracking_uri,
                    load_splits(study_data(study, data)), members_from)


def _load_members(source: _Members) -> list[Any]:
    """Each member's kept model, checked against its spec's parameter count."""
    from nas_mnist.exporting.selection import load_trial_model
    from nas_mnist.exporting.verification import VerificationError

    models = []
    for trial, spec in zip(source.trials, source.specs, strict=True):
        model = load_trial_model(trial, source.tracking_uri)
        if model.count_params() != spec.num_params:
            raise VerificationError(
                f"the model of {_member_name(source, trial)} has {model.count_params():,} "
                f"parameters but its spec has {spec.num_params:,}: not the trial's model"
            )
        models.append(model)
    return models


def _member_name(source: _Members, trial: Any) -> str:
    """``trial 3`` or, for a final model, ``final model 1``."""
    return f"{'final model' if source.members_from == FROM_FINAL else 'trial'} {trial.number}"


def build_ensemble(members: list[Any], numbers: list[int], prefix: str = "trial") -> Any:
    """A Keras model whose output is the mean of ``members``' outputs.

    Args:
        members: Keras models, each float32 (n, 28, 28, 1) in [0, 1] to (n, 10) probabilities.
        numbers: their trial numbers; member ``i`` is renamed ``<prefix>_<numbers[i]>`` (Keras
            needs unique layer names).
        prefix: ``"trial"`` for search trials, ``"final"`` for final models.

    Returns:
        A functional ``keras.Model`` with input ``image`` (n, 28, 28, 1) and output (n, 10)
        (``nas_mnist.model.ensemble.mean_softmax_model``, as ``retrain``'s logged ensemble).
    """
    from nas_mnist.model.ensemble import mean_softmax_model

    return mean_softmax_model(members, [f"{prefix}_{number}" for number in numbers])


def _member_facts(source: _Members, models: list[Any]) -> tuple[list[dict[str, Any]], Any]:
    """(one dict per member, mean probabilities float32 (n, 10) on the test split)."""
    import numpy as np

    from nas_mnist.model.training import EVAL_BATCH_SIZE

    x_test, y_test = source.data.x_test, source.data.y_test
    facts, probabilities = [], []
    for trial, spec, model in zip(source.trials, source.specs, models, strict=True):
        p = np.asarray(model.predict(x_test, batch_size=EVAL_BATCH_SIZE, verbose=0))
        probabilities.append(p)
        facts.append({
            "trial_number": trial.number,
            "val_accuracy": val_accuracy_of(trial),
            "test_accuracy": trial.user_attrs.get(TEST_ACCURACY_ATTR),
            "test_accuracy_recomputed": float((p.argmax(axis=1) == y_test).mean()),
            "model_uri": trial.user_attrs.get(MODEL_URI_ATTR),
            "spec_id": spec.spec_id,
            "num_params": spec.num_params,
            **(_final_member_facts(trial) if source.members_from == FROM_FINAL else {}),
        })
    return facts, np.mean(probabilities, axis=0)


def _final_member_facts(trial: Any) -> dict[str, Any]:
    """A final member's source: ``trial_number`` is then its number in ``<study>/final``."""
    attrs = trial.user_attrs
    return {"final_model": True, "source_trial": attrs.get(SOURCE_TRIAL_ATTR),
            "baseline": attrs.get(BASELINE_ATTR) or None, "seed": attrs.get(FINAL_SEED_ATTR)}


def _write(source: _Members, model: Any, models: list[Any], force: bool) -> ExportResult:
    import numpy as np

    from nas_mnist.exporting.savedmodel import export_savedmodel
    from nas_mnist.exporting.verification import verify_export
    from nas_mnist.model.training import EVAL_BATCH_SIZE

    data = source.data
    members, reference = _member_facts(source, models)
    val = np.asarray(model.predict(data.x_val, batch_size=EVAL_BATCH_SIZE, verbose=0))
    test_accuracy = float((reference.argmax(axis=1) == data.y_test).mean())
    best_single = members[0]["test_accuracy_recomputed"]
    metrics = {
        "study_name": source.study.study_name,
        "ensemble": True,
        "members_from": source.members_from,
        "combine": "mean of the members' softmax probabilities",
        "num_members": len(members),
        "val_accuracy": float((val.argmax(axis=1) == data.y_val).mean()),
        "test_accuracy": test_accuracy,
        "best_member_test_accuracy": best_single,
        "test_accuracy_gain_over_best_member": test_accuracy - best_single,
        "members": members,
    }
    listing = {"combine": metrics["combine"], "members": [
        {**fact, "spec": spec.to_dict()} for fact, spec in zip(members, source.specs, strict=True)
    ]}

    def check(folder: Path) -> Any:
        return verify_export(folder, data.x_test, data.y_test, model, reference=reference)

    result = export_savedmodel(model, None, metrics, source.out, force=force, check=check,
                               extra_json={ENSEMBLE_NAME: listing})
    logger.debug("exported an ensemble of %s %s: test_accuracy %.4f (best member %.4f)",
                source.members_from, [m["trial_number"] for m in members], test_accuracy,
                best_single)
    return ExportResult(path=result.path, manifest=result.manifest,
                        verification=result.verification,
                        removed_partials=result.removed_partials, members=tuple(members))
