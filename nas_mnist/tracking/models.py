"""Trained models kept in MLflow: the one way nas-mnist uploads and downloads a trial's model.

Each complete trial's model is an MLflow model (a pyfunc with nas-mnist's input contract,
``served_model``, around the Keras model; named after its run, e.g. ``trial-0007``) logged from
its trial run: MLflow 3
records it as a *logged model* of the study's experiment, linked to the run (``source_run_id``)
and to the metrics of its best epoch, so the MLflow UI's model view compares trials by their
metrics, ``mlflow.pyfunc.load_model("runs:/<trial run>/trial-0007")`` loads it and any of them
can be registered or served. The trial stores the model's URI (``models:/<model_id>``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import INPUT_SHAPE, NUM_CLASSES
from nas_mnist.environment import temporary_environ
from nas_mnist.errors import RuntimeFailure
from nas_mnist.tracking.redaction import redact_uri
from nas_mnist.tracking.stores import TrackingError, other_version_message, refuse_file_store

logger = logging.getLogger(__name__)

TRIAL_MODEL_NAME = "model"
"""Name of a trial's MLflow model whose run has no name (studies made before nas-mnist named
each model after its run, ``trial-0007``, used it for every model)."""

INPUT_NAME = "image"
"""Name of the model input, in the MLflow signature and the exported SavedModel."""
OUTPUT_NAME = "output_0"
"""Name of the model output, in the MLflow signature and the exported SavedModel (``output_0`` is
the name Keras 3's ``model.export`` gives the serving signature's output): the (n, 10) softmax
class probabilities."""

LABEL_NAME = "label"
"""Name of the served answer's most probable class, int64 (n,)."""
PROBABILITIES_NAME = "probabilities"
"""Name of the served answer's softmax class probabilities, float32 (n, 10)."""
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
"""The "models from code" file logged with every model (its input contract and pyfunc)."""

QUIET_DOWNLOADS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Environment that turns off MLflow's tqdm "Downloading artifacts" bar."""


class ModelUnavailableError(RuntimeFailure):
    """A logged model cannot be downloaded from MLflow or loaded by Keras; the message says which
    and why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def model_signature() -> Any:
    """The MLflow signature of a nas-mnist model: outputs only, ``label`` int64 (-1,) and
    ``probabilities`` float32 (-1, 10) (softmax; rows sum to 1). No input schema: MLflow would
    cast JSON integers to its dtype (``served_model``'s module doc); the input example and the
    MLmodel metadata's ``input_contract`` give the input."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(outputs=Schema([
        TensorSpec(np.dtype(np.int64), (-1,), LABEL_NAME),
        TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), PROBABILITIES_NAME),
    ]))


def input_example() -> Any:
    """One uint8 (1, 28, 28) image in the contract's form: a "1", a vertical white stroke on
    black, MNIST's polarity."""
    import numpy as np

    image = np.zeros((1, *INPUT_SHAPE[:2]), dtype=np.uint8)
    image[0, 5:23, 13:15] = 255
    return image


def pip_requirements() -> list[str]:
    """The model's requirements, given explicitly: MLflow would otherwise spend seconds per
    model inferring them (it loads the model in a subprocess): Keras and the backend that trained
    it (``tensorflow``, or e.g. ``jax`` on a GPU host without TensorFlow)."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    backend = keras.backend.backend()
    try:
        return [f"keras=={keras.__version__}", f"{backend}=={version(backend)}"]
    except PackageNotFoundError:  # a backend without a distribution of its own name
        return [f"keras=={keras.__version__}"]


def log_trial_model(
    model: Any,
    tracking_uri: str,
    run_id: str,
    step: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log a trial's trained model from its MLflow run as its MLflow model, named after the run
    (``trial-0007``, ``trial-0003-s000_m1``, ``final-...``; ``log_served_model``).

    MLflow 3 links the logged model to ``run_id`` and copies the run's params and its metrics
    logged at ``step`` onto it (pass the best epoch, the epoch whose weights ``model`` holds). The
    run keeps its status (``mlflow.start_run(run_id=...)`` would end it: its status is restored).

    Pass the trial's inference model (``nas_mnist.model.builder.inference_model``): a model that
    still holds nas-mnist's registered augmentation layers or loss would need
    ``import nas_mnist.model.builder`` before ``mlflow.pyfunc.load_model`` (Keras imports classes
    of its own packages only).

    Args:
        model: the trained ``keras.Model``.
        tracking_uri: the MLflow tracking store.
        run_id: the trial's run.
        step: the step (epoch index) whose metrics describe ``model``.
        metadata: extra JSON-serialisable facts stored in the MLmodel file.

    Returns:
        The model's URI, ``models:/<model_id>``.

    Raises:
        mlflow.exceptions.MlflowException: the model cannot be written.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    name = client.get_run(run_id).info.run_name or TRIAL_MODEL_NAME
    try:
        # The fluent run is what files the logged model under the run's experiment.
        with global_tracking_uri(tracking_uri), \
                mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            info = log_served_model(model, name, step=step, metadata=metadata)
    finally:
        client.update_run(run_id, status="RUNNING")  # the run's end was not the trial's end
    return info.model_uri


def log_served_model(model: Any, name: str, step: int = 0,
                     metadata: Mapping[str, Any] | None = None) -> Any:
    """Log ``model`` to the active MLflow run as a pyfunc with nas-mnist's input contract.

    The model is MLflow "models from code" (``served_model.py``, which imports nothing of
    nas-mnist) with the Keras model as its artifact ``keras_model`` (``model.keras``), the
    output-only signature of ``model_signature``, a uint8 input example and the metadata
    ``input_contract``. MLflow checks the example by loading the model and predicting it (about
    0.2 s per model on the project's CPU, against 0.1 s for the plain Keras flavour).

    Args:
        model: a ``keras.Model``, float32 (n, 28, 28, 1) in [0, 1] to (n, 10) softmax.
        name: the logged model's name.
        step: the step whose metrics describe ``model``.
        metadata: extra JSON-serialisable facts stored in the MLmodel file.

    Returns:
        MLflow's ``ModelInfo``.

    Raises:
        mlflow.exceptions.MlflowException: the model cannot be written.
    """
    import mlflow

    from nas_mnist.tracking.served_model import INPUT_CONTRACT, KERAS_ARTIFACT

    with tempfile.TemporaryDirectory(prefix="nas_mnist_keras_") as tmp:
        keras_file = Path(tmp) / "model.keras"
        model.save(keras_file)
        with temporary_environ(**QUIET_DOWNLOADS):  # MLflow loads it to check the example
            return mlflow.pyfunc.log_model(
                name=name, python_model=os.fspath(SERVED_MODEL_CODE),
                artifacts={KERAS_ARTIFACT: os.fspath(keras_file)}, signature=model_signature(),
                input_example=input_example(), pip_requirements=pip_requirements(), step=step,
                metadata={"input_contract": INPUT_CONTRACT, **dict(metadata or {})},
            )


@contextlib.contextmanager
def global_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``tracking_uri`` for a block, then restored
    (MLflow's fluent API and its ``models:/`` resolution read only that one)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def model_id_of(model_uri: str) -> str | None:
    """The logged model's id in a ``models:/<model_id>`` URI (None for other URIs)."""
    prefix = "models:/"
    if not model_uri.startswith(prefix) or "/" in model_uri[len(prefix):]:
        return None
    return model_uri[len(prefix):]


def load_logged_model(model_uri: str, tracking_uri: str) -> Any:
    """Download a Keras model logged to MLflow and load it (one download).

    Accepts an MLflow model (``models:/<model_id>`` or ``runs:/<run_id>/<name>``: its keras
    flavour's ``data/model.keras`` is loaded) and the plain ``.keras`` artifact that studies made
    before nas-mnist logged MLflow models (``runs:/<run_id>/model/model.keras``). MLflow's
    download progress bar (tqdm on stderr) is turned off.

    Returns:
        The ``keras.Model`` as it was saved (nas-mnist logs uncompiled inference models:
        ``predict``, not ``evaluate``).

    Raises:
        TrackingError: ``tracking_uri`` is MLflow 3's file store, or a store another MLflow
            version made (``stores``): no model can be read from it.
        ModelUnavailableError: the artifact cannot be downloaded, or is not a loadable model.
    """
    refuse_file_store(tracking_uri, f"the MLflow tracking URI {redact_uri(tracking_uri)}")
    import keras
    import mlflow.artifacts

    import nas_mnist.model.builder  # noqa: F401  (registers its layers and loss for load_model)

    with tempfile.TemporaryDirectory(prefix="nas_mnist_model_") as tmp:
        try:
            # models:/<model_id> is resolved against the global tracking URI, whatever
            # download_artifacts is told: set it for the call.
            with temporary_environ(**QUIET_DOWNLOADS), global_tracking_uri(tracking_uri):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri
                )
        except Exception as exc:  # MlflowException, OSError, ...: all mean "not there"
            other_version = other_version_message(tracking_uri, str(exc))
            if other_version is not None:
                raise TrackingError(other_version) from None
            raise ModelUnavailableError(
                f"cannot download {model_uri} from {redact_uri(tracking_uri)}: "
                f"{_first_line(exc)}"
            ) from None
        try:
            model = keras.saving.load_model(_keras_file(Path(local)))
        except Exception as exc:
            raise ModelUnavailableError(
                f"{model_uri} is not a loadable Keras model: {_first_line(exc)}"
            ) from None
    logger.debug("loaded %s from %s", model_uri, tracking_uri)
    return model


def _keras_file(local: Path) -> str:
    """The ``.keras`` file of a downloaded artifact: the file itself, or an MLflow model
    folder's keras-flavour file (``data/model.keras``)."""
    if local.is_file():
        return os.fspath(local)
    found = sorted(local.rglob("*.keras"))
    if not found:
        raise FileNotFoundError(f"no .keras file in the downloaded {local.name}/")
    return os.fspath(found[0])
