"""The MLflow model of every nas-mnist model: one input contract for pyfunc and ``mlflow models
serve``.

This file is logged as MLflow "models from code" (MLflow docs, "Models From Code"): MLflow copies
it into each logged model and runs it when the model is loaded, so it imports nothing of
nas-mnist, only NumPy, pandas, Keras and MLflow. The Keras model itself is the model's artifact
``keras_model`` (``model.keras``: float32 images (n, 28, 28, 1) in [0, 1] to (n, 10) softmax).

The input contract (``as_model_input``): MNIST-like images, 28x28, white digit on black,
- uint8 (or any integer type) pixels 0-255, or floats in [0, 1];
- shaped (n, 28, 28), (n, 28, 28, 1) or (n, 784);
- as a NumPy array, a dict holding one array (``{"image": ...}``, what an ``inputs`` payload of
  ``mlflow models serve`` gives), or a pandas DataFrame of 784 pixel columns, or of one column of
  images (``dataframe_split``).
Anything else (floats above 1, as raw 0-255 pixels sent as floats are; NaN; other shapes) is
refused with one line that says what to send: ``InputRefused``, HTTP 400 from
``mlflow models serve``. The answer is ``{"label": int64 (n,), "probabilities": float32 (n, 10)}``.

Why the model's signature has outputs only: MLflow casts a JSON payload to an input schema's dtype
before the model sees it, so a float32 input schema would turn 0-255 integers into 0-255 floats
and make them indistinguishable from wrongly scaled floats. Without an input schema, integers
arrive as integers and floats as floats; the input example and the MLmodel metadata
(``input_contract``) document the input instead.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

IMAGE_SIDE = 28
"""MNIST images are 28x28 (LeCun et al., "Gradient-based learning applied to document
recognition", 1998)."""
NUM_CLASSES = 10
ACCEPTED_SHAPES = "(n, 28, 28), (n, 28, 28, 1) or (n, 784)"
INPUT_CONTRACT = (
    f"images shaped {ACCEPTED_SHAPES}, as uint8 pixels 0-255 or floats in [0, 1], white digit "
    "on black (MNIST); answers label int64 (n,) and probabilities float32 (n, 10)"
)
"""The contract in words (the MLmodel metadata's ``input_contract``)."""
KERAS_ARTIFACT = "keras_model"
"""Name of the model's artifact holding the Keras model (a ``.keras`` file)."""
BATCH_SIZE = 256
"""Images per Keras ``predict`` batch."""


class InputRefused(MlflowException):
    """An input outside the contract; HTTP 400 (``INVALID_PARAMETER_VALUE``) when served.

    MLflow's scoring server prefixes the message of an ``MlflowException`` raised by ``predict``
    with the whole input ("Failed to predict data '...'"); this one keeps its own one line.
    """

    def __init__(self, message: str) -> None:
        self._one_line = message
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._one_line

    @message.setter
    def message(self, value: str) -> None:
        pass  # the scoring server's "Failed to predict data '<the whole input>'": not kept


def _refuse(problem: str) -> InputRefused:
    return InputRefused(f"{problem}; send {INPUT_CONTRACT.split('; answers')[0]}")


def _as_array(model_input: Any) -> np.ndarray:
    """The images of a pyfunc input (array, list, dict of one array, DataFrame) as one array."""
    if isinstance(model_input, dict):
        if len(model_input) != 1:
            raise _refuse(f"got {len(model_input)} named inputs, expected one (e.g. 'image')")
        model_input = next(iter(model_input.values()))
    if hasattr(model_input, "to_numpy") and hasattr(model_input, "columns"):  # a DataFrame
        if len(model_input.columns) == 1:  # one column of images (nested lists or arrays)
            cells = [np.asarray(cell) for cell in model_input.iloc[:, 0]]
            shapes = {cell.shape for cell in cells}
            if len(shapes) > 1:
                raise _refuse("the images of the column differ in shape")
            return np.stack(cells) if cells else np.empty((0,))
        return model_input.to_numpy()
    try:
        array = np.asarray(model_input)
    except ValueError:  # ragged nested lists
        raise _refuse("the images differ in shape") from None
    if array.dtype == object:
        raise _refuse("the images differ in shape or are not numbers")
    return array


def as_model_input(model_input: Any) -> np.ndarray:
    """Check images against the contract (module doc) and scale them for the Keras model.

    Args:
        model_input: uint8/integer 0-255 or float 0-1 images shaped (n, 28, 28),
            (n, 28, 28, 1) or (n, 784): an array, nested lists, a dict of one such array, or a
            DataFrame (784 pixel columns, or one column of images).

    Returns:
        float32 (n, 28, 28, 1) in [0, 1].

    Raises:
        InputRefused: another shape, an empty batch, floats outside [0, 1] (e.g. 0-255 pixels
            sent as floats), NaN or infinity, integers outside 0-255, or not numbers; one line.
    """
    array = _as_array(model_input)
    if array.dtype.kind not in "uif":  # not bool, complex, strings
        raise _refuse(f"got {array.dtype} values")
    side = IMAGE_SIDE
    if array.shape[1:] not in ((side, side), (side, side, 1), (side * side,)):
        raise _refuse(f"got shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise _refuse("got no image")
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise _refuse(f"got integers from {low} to {high}, outside 0-255")
        images = array.astype(np.float32) / np.float32(255.0)
    else:
        if not np.isfinite(array).all():
            raise _refuse("got NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            hint = " (0-255 pixels sent as floats: divide by 255 or send integers)" \
                if high > 1.0 else ""
            raise _refuse(f"got floats from {low:g} to {high:g}, outside [0, 1]{hint}")
        images = array.astype(np.float32)
    return images.reshape(-1, side, side, 1)


def answer(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """The served answer for softmax ``probabilities`` (n, 10): ``label`` int64 (n,), the most
    probable class, and ``probabilities`` float32 (n, 10)."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    return {"label": probabilities.argmax(axis=1).astype(np.int64),
            "probabilities": probabilities}


class ServedDigitClassifier(mlflow.pyfunc.PythonModel):
    """The pyfunc of a nas-mnist model: the contract's checks and scaling, then Keras."""

    def load_context(self, context: Any) -> None:
        import keras

        self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)

    def predict(self, context: Any, model_input: np.ndarray,
                params: dict | None = None) -> dict[str, np.ndarray]:
        """``{"label": int64 (n,), "probabilities": float32 (n, 10)}`` for ``model_input``.

        ``model_input`` is any form of ``as_model_input`` (its ``np.ndarray`` hint is one that
        MLflow reads as "no schema to infer": other hints would convert the input first, and none
        at all warns at each load). The model is called on
        batches of ``BATCH_SIZE`` directly, not through ``Model.predict``: no progress line and
        no tf.function retraced for each new batch size.

        Raises:
            InputRefused: input outside the contract (``as_model_input``).
        """
        import keras

        images = as_model_input(model_input)
        batches = [keras.ops.convert_to_numpy(self.model(images[start:start + BATCH_SIZE],
                                                         training=False))
                   for start in range(0, len(images), BATCH_SIZE)]
        return answer(np.concatenate(batches))


mlflow.models.set_model(ServedDigitClassifier())
