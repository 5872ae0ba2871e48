"""Publish a study's final models in the MLflow Model Registry: the champion and the ensemble.

The champion (``study.final_models.champion``: the highest val_accuracy among the complete final
models, never chosen on test) is registered as ``<study name>`` with alias ``champion``. The
mean-softmax ensemble (``model.ensemble.mean_softmax_model``) of this call's final models is
logged as an MLflow model from its own run under the study's parent run (tags ``phase=final``,
``nas_mnist.role=ensemble``, metrics val_accuracy and test_accuracy) and registered with alias
``ensemble``. Nothing is registered, logged or loaded again when the alias already holds the
same champion or the same members (``tracking.registry``), so a repeated ``retrain`` is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas_mnist.tracking.registry import (
    CHAMPION_ALIAS,
    ENSEMBLE_ALIAS,
    RegisteredVersion,
    current_registration,
    register_alias,
)
from nas_mnist.trial_attributes import (
    FINAL_KEY_ATTR,
    MODEL_URI_ATTR,
    REGISTERED_ATTR,
    RUN_ATTR,
    TEST_ACCURACY_ATTR,
)

logger = logging.getLogger(__name__)

ENSEMBLE_ROLE = "ensemble"
"""``nas_mnist.role`` tag of the ensemble's MLflow run."""


@dataclass(frozen=True)
class Publication:
    """What ``publish`` registered.

    Attributes:
        champion: the champion (``FrozenTrial`` of the final study), or None.
        champion_version: its registered version (alias ``champion``), or None.
        ensemble_version: the ensemble's registered version (alias ``ensemble``), or None when
            fewer than 2 final models have a model.
        ensemble_members: the members' final keys, best first.
        ensemble_val_accuracy, ensemble_test_accuracy: the ensemble's accuracies (fractions;
            test for reporting only), or None.
    """

    champion: Any = None
    champion_version: RegisteredVersion | None = None
    ensemble_version: RegisteredVersion | None = None
    ensemble_members: tuple[str, ...] = ()
    ensemble_val_accuracy: float | None = None
    ensemble_test_accuracy: float | None = None


def publish(final_study: Any, name: str, members: Sequence[Any], runs: Any,
            data: Any) -> Publication:
    """Register the champion and the ensemble of ``members`` as ``name``'s aliases.

    Args:
        final_study: the final study (``<study>/final``).
        name: the registered model's name: the searched study's name.
        members: this call's complete final trials, best first (the ensemble's members).
        runs: the study's ``StudyRuns`` (the ensemble's run nests under its parent run).
        data: the splits on which the ensemble's accuracies are measured.

    Raises:
        RegistryError: the registry refused a registration.
        TrackingUnavailableError: the tracking server stopped answering.
    """
    from nas_mnist.study.final_models import champion as pick_champion

    final_study.set_user_attr(REGISTERED_ATTR, name)
    best = pick_champion(final_study)
    if best is None or not best.user_attrs.get(MODEL_URI_ATTR):
        return Publication()
    champion = register_alias(
        runs.tracker, name, CHAMPION_ALIAS, best.user_attrs[MODEL_URI_ATTR],
        best.user_attrs.get(RUN_ATTR), identity=best.user_attrs[MODEL_URI_ATTR],
        tags={FINAL_KEY_ATTR: str(best.user_attrs.get(FINAL_KEY_ATTR)),
              "val_accuracy": f"{best.value:.6f}"})
    kept = [t for t in members if t.user_attrs.get(MODEL_URI_ATTR)]
    if len(kept) < 2:
        return Publication(best, champion)
    return _publish_ensemble(name, kept, runs, data, Publication(best, champion))


def _identity(members: Sequence[Any]) -> str:
    """The ensemble's identity: its members' model URIs, sorted, comma-separated."""
    return ",".join(sorted(t.user_attrs[MODEL_URI_ATTR] for t in members))


def _publish_ensemble(name: str, members: Sequence[Any], runs: Any, data: Any,
                      published: Publication) -> Publication:
    """Register the ensemble of ``members`` (logged first unless the alias already holds it)."""
    import dataclasses

    keys = tuple(str(t.user_attrs.get(FINAL_KEY_ATTR)) for t in members)
    identity = _identity(members)
    version = current_registration(runs.tracker, name, ENSEMBLE_ALIAS, identity)
    if version is not None:
        metrics = runs.tracker.client.get_run(version.run_id).data.metrics if version.run_id \
            else {}
        return dataclasses.replace(published, ensemble_version=version, ensemble_members=keys,
                                   ensemble_val_accuracy=metrics.get("val_accuracy"),
                                   ensemble_test_accuracy=metrics.get("test_accuracy"))
    model_uri, run_id, accuracies = _log_ensemble(members, keys, runs, data)
    version = register_alias(runs.tracker, name, ENSEMBLE_ALIAS, model_uri, run_id, identity,
                             tags={"members": ",".join(keys)[:5000]})
    return dataclasses.replace(published, ensemble_version=version, ensemble_members=keys,
                               ensemble_val_accuracy=accuracies["val_accuracy"],
                               ensemble_test_accuracy=accuracies["test_accuracy"])


def _log_ensemble(members: Sequence[Any], keys: Sequence[str], runs: Any,
                  data: Any) -> tuple[str, str, dict[str, float]]:
    """Build the ensemble from the members' MLflow models, measure it, log it from a new run.

    Returns:
        (model URI, run id, {"val_accuracy", "test_accuracy", "best_member_test_accuracy"}).
    """
    from nas_mnist.model.ensemble import mean_softmax_model
    from nas_mnist.tracking.models import load_logged_model, log_trial_model, model_id_of

    tracker = runs.tracker
    models = [load_logged_model(t.user_attrs[MODEL_URI_ATTR], tracker.tracking_uri)
              for t in members]
    ensemble = mean_softmax_model(models, [f"member_{i}" for i in range(len(models))])
    accuracies = {"val_accuracy": _accuracy(ensemble, data.x_val, data.y_val),
                  "test_accuracy": _accuracy(ensemble, data.x_test, data.y_test),
                  "best_member_test_accuracy": members[0].user_attrs.get(TEST_ACCURACY_ATTR)}
    run_id = _start_ensemble_run(runs, len(members))
    tracker.log_params(run_id, {"members": ",".join(keys), "combine": "mean softmax"})
    model_uri = log_trial_model(ensemble, tracker.tracking_uri, run_id,
                                metadata={"members": list(keys), "combine": "mean softmax"})
    tracker.log_metrics(run_id, accuracies, model_id=model_id_of(model_uri))
    tracker.end_trial_run(run_id, "complete")
    logger.info("ensemble of %d final models: val_accuracy %.4f, test_accuracy %.4f",
                len(members), accuracies["val_accuracy"], accuracies["test_accuracy"])
    return model_uri, run_id, accuracies


def _start_ensemble_run(runs: Any, size: int) -> str:
    """The ensemble's MLflow run, nested under the study's parent run."""
    tags = {"nas_mnist.role": ENSEMBLE_ROLE, "phase": "final", "state": "running"}
    if runs.parent_run_id:
        tags["mlflow.parentRunId"] = runs.parent_run_id
    run = runs.tracker.client.create_run(runs.experiment_id, run_name=f"final-ensemble-of-{size}",
                                         tags=tags)
    return run.info.run_id


def _accuracy(model: Any, images: Any, labels: Any) -> float:
    """Fraction of ``images`` whose highest-probability class is the label."""
    import numpy as np

    from nas_mnist.model.training import EVAL_BATCH_SIZE

    probabilities = np.asarray(model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0))
    return float((probabilities.argmax(axis=1) == np.asarray(labels)).mean())
