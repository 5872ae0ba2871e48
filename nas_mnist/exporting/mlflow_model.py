"""The exported model in MLflow: logged to the study's parent run, ready to register."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas_mnist.tracking.models import log_served_model, model_signature

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

MLFLOW_MODEL_NAME = "best_model"
"""Name of the model logged to the study's MLflow parent run (``tracking.models.log_served_model``:
a pyfunc with nas-mnist's input contract)."""


BEST_TRIAL_TAG = "best_trial"

__all__ = ["MLFLOW_MODEL_NAME", "BEST_TRIAL_TAG", "log_to_mlflow", "model_signature"]


def log_to_mlflow(
    model: keras.Model,
    tracking_uri: str,
    parent_run_id: str,
    trial_number: int | str,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log ``model`` to the study's parent run as the MLflow model ``best_model``
    (``log_served_model``).

    The parent run keeps its status (a finished search stays FINISHED) and gets the tag
    ``best_trial=<trial_number>``. ``mlflow.pyfunc.load_model(uri)`` loads it back; the MLflow UI
    can register it.

    Args:
        model: the exported model.
        tracking_uri: the study's MLflow tracking URI.
        parent_run_id: the study's parent run.
        trial_number: the exported trial's number, or ``"final:<n>"`` for the champion (final
            model ``n`` of ``<study>/final``).
        metadata: extra JSON-serialisable facts stored in the MLmodel file.

    Returns:
        The logged model's URI (``models:/<model_id>``).

    Raises:
        mlflow.exceptions.MlflowException: the run cannot be written.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    before = client.get_run(parent_run_id).info
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=parent_run_id):
            info = log_served_model(model, MLFLOW_MODEL_NAME, metadata=metadata)
            mlflow.set_tag(BEST_TRIAL_TAG, str(trial_number))
    finally:
        mlflow.set_tracking_uri(previous_uri)
        # start_run(run_id=...) reopened the run and its end marked it FINISHED: restore it.
        if before.status == "RUNNING":
            client.update_run(parent_run_id, status="RUNNING")
        else:
            client.set_terminated(parent_run_id, status=before.status, end_time=before.end_time)
    logger.debug(
        "logged %s to MLflow run %s as %s", MLFLOW_MODEL_NAME, parent_run_id, info.model_uri
    )
    return info.model_uri
