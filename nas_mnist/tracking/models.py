"""Trained models kept in MLflow: the one way nas-mnist downloads a trial's model."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from nas_mnist.environment import temporary_environ

logger = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """A logged model cannot be downloaded from MLflow or loaded by Keras; the message says which
    and why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_logged_model(model_uri: str, tracking_uri: str) -> Any:
    """Download a Keras model logged to MLflow (``runs:/<run_id>/model/model.keras``) and load it.

    MLflow's download progress bar (tqdm on stderr) is turned off.

    Returns:
        The ``keras.Model``, compiled as it was saved.

    Raises:
        ModelUnavailableError: the artifact cannot be downloaded, or is not a loadable model.
    """
    import keras
    import mlflow.artifacts

    import nas_mnist.model.builder  # noqa: F401  (registers its layers and loss for load_model)

    with tempfile.TemporaryDirectory(prefix="nas_mnist_model_") as tmp:
        try:
            with temporary_environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri
                )
        except Exception as exc:  # MlflowException, OSError, ...: all mean "not there"
            raise ModelUnavailableError(
                f"cannot download {model_uri} from {tracking_uri}: {_first_line(exc)}"
            ) from None
        try:
            model = keras.saving.load_model(local)
        except Exception as exc:
            raise ModelUnavailableError(
                f"{model_uri} is not a loadable Keras model: {_first_line(exc)}"
            ) from None
    logger.debug("loaded %s from %s", model_uri, tracking_uri)
    return model
