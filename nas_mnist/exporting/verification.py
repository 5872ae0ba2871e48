"""Proving that an export is the trained model: reload the SavedModel, compare predictions."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_mnist.architecture.spec import INPUT_SHAPE, NUM_CLASSES
from nas_mnist.errors import RuntimeFailure
from nas_mnist.exporting.layout import (
    KERAS_NAME,
    SERVING_ENDPOINT,
    SERVING_SIGNATURE,
)

if TYPE_CHECKING:
    import keras
    import numpy as np

logger = logging.getLogger(__name__)

PREDICTION_TOLERANCE = 1e-5
"""Largest allowed absolute difference between probabilities of the exported and in-memory model."""


ACCURACY_TOLERANCE = 1e-3
"""Largest allowed difference between the exported model's test_accuracy and the trial's."""


PREDICT_BATCH_SIZE = 1024
"""Images per batch when the checks predict the test set."""


class VerificationError(RuntimeFailure):
    """The exported model does not behave like the model it was exported from (exit status 1)."""


@dataclass(frozen=True)
class Verification:
    """What ``verify_export`` measured on the written folder.

    Attributes:
        num_images: test images predicted.
        test_accuracy: fraction of them the SavedModel classifies correctly, in [0, 1].
        max_abs_difference: largest |p_savedmodel - p_in_memory| over all probabilities.
        keras_max_abs_difference: largest |p_model.keras - p_in_memory| over all probabilities.
        expected_test_accuracy: the trial's recorded test_accuracy, if it was compared.
        reference_max_abs_difference: largest |p_savedmodel - p_reference| when reference
            probabilities were given (an ensemble: the mean of its members' predictions).
    """

    num_images: int
    test_accuracy: float
    max_abs_difference: float
    keras_max_abs_difference: float
    expected_test_accuracy: float | None = None
    reference_max_abs_difference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_test_images": self.num_images,
            "test_accuracy": self.test_accuracy,
            "max_abs_difference": self.max_abs_difference,
            "keras_max_abs_difference": self.keras_max_abs_difference,
            "expected_test_accuracy": self.expected_test_accuracy,
            **({} if self.reference_max_abs_difference is None
               else {"reference_max_abs_difference": self.reference_max_abs_difference}),
        }


def predict_savedmodel(
    signature: Any, x: np.ndarray, batch_size: int = PREDICT_BATCH_SIZE
) -> np.ndarray:
    """Run a ``serving_default`` signature over ``x`` in batches.

    Args:
        signature: ``tf.saved_model.load(DIR).signatures["serving_default"]``.
        x: float32 array (n, 28, 28, 1), values in [0, 1].
        batch_size: images per call.

    Returns:
        float32 array (n, 10): class probabilities.
    """
    import numpy as np
    import tensorflow as tf

    (input_name,) = signature.structured_input_signature[1]
    outputs = []
    for start in range(0, len(x), batch_size):
        result = signature(**{input_name: tf.constant(x[start : start + batch_size])})
        (probabilities,) = result.values()
        outputs.append(probabilities.numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), np.float32)


def check_signature(loaded: Any, folder: Path) -> Any:
    """The ``serving_default`` signature of ``loaded``, checked against the documented contract."""
    import tensorflow as tf

    if SERVING_SIGNATURE not in loaded.signatures or not hasattr(loaded, SERVING_ENDPOINT):
        raise VerificationError(
            f"{folder} has signatures {sorted(loaded.signatures)}; expected endpoint "
            f"{SERVING_ENDPOINT!r} and signature {SERVING_SIGNATURE!r}"
        )
    signature = loaded.signatures[SERVING_SIGNATURE]
    inputs = list(signature.structured_input_signature[1].values())
    outputs = list(signature.structured_outputs.values())
    expected_input = [None, *INPUT_SHAPE]
    if (
        len(inputs) != 1
        or inputs[0].dtype != tf.float32
        or inputs[0].shape.as_list() != expected_input
    ):
        raise VerificationError(
            f"{SERVING_SIGNATURE} of {folder} takes {inputs}; expected one float32 input of "
            f"shape {tuple(expected_input)}"
        )
    if len(outputs) != 1 or outputs[0].shape.as_list() != [None, NUM_CLASSES]:
        raise VerificationError(
            f"{SERVING_SIGNATURE} of {folder} returns {outputs}; expected one output of shape "
            f"(None, {NUM_CLASSES})"
        )
    return signature


def verify_export(
    folder: str | os.PathLike,
    x_test: np.ndarray,
    y_test: np.ndarray,
    model: keras.Model,
    expected_test_accuracy: float | None = None,
    tolerance: float = PREDICTION_TOLERANCE,
    accuracy_tolerance: float = ACCURACY_TOLERANCE,
    reference: np.ndarray | None = None,
) -> Verification:
    """Prove that the files in ``folder`` are ``model``.

    Reloads the SavedModel with ``tf.saved_model.load`` and ``model.keras`` with
    ``keras.saving.load_model``, predicts ``x_test`` with both and with ``model``, and compares.

    Args:
        folder: an export folder (complete but for ``metrics.json`` and ``manifest.json``).
        x_test: float32 array (n, 28, 28, 1), values in [0, 1].
        y_test: int array (n,), labels 0..9.
        model: the in-memory model that was exported.
        expected_test_accuracy: the trial's recorded test_accuracy (fraction in [0, 1]) on the
            same images, or None to skip that comparison (e.g. after ``--retrain``).
        tolerance: largest allowed absolute difference between probabilities.
        accuracy_tolerance: largest allowed |test_accuracy - expected_test_accuracy|.
        reference: float32 array (n, 10) the SavedModel's probabilities must also match within
            ``tolerance`` (for an ensemble: the mean of its members' predictions), or None.

    Returns:
        What was measured.

    Raises:
        VerificationError: the signature differs from the documented one, rows do not sum to 1,
            predictions differ (from the model's or ``reference``) by ``tolerance`` or more, or
            the test accuracy differs from ``expected_test_accuracy`` by more than
            ``accuracy_tolerance`` (a different model).
    """
    import numpy as np

    root = Path(folder)
    exported, in_memory, from_keras_file = _predictions(root, model, x_test)
    _check_probabilities(exported, len(x_test))
    difference = float(np.abs(exported - in_memory).max()) if len(x_test) else 0.0
    keras_difference = float(np.abs(from_keras_file - in_memory).max()) if len(x_test) else 0.0
    checks = [("SavedModel", "the in-memory model", difference),
              (KERAS_NAME, "the in-memory model", keras_difference)]
    reference_difference = None
    if reference is not None:
        reference_difference = float(np.abs(exported - reference).max()) if len(x_test) else 0.0
        checks.append(("SavedModel", "the reference predictions", reference_difference))
    for what, other, value in checks:
        if not value < tolerance:
            raise VerificationError(
                f"the exported {what} predicts differently from {other}: max abs "
                f"difference {value:.3g} >= {tolerance:g}"
            )
    accuracy = float((exported.argmax(axis=1) == np.asarray(y_test)).mean()) if len(x_test) else 0.0
    if expected_test_accuracy is not None and abs(accuracy - expected_test_accuracy) > (
        accuracy_tolerance
    ):
        raise VerificationError(
            f"the exported model's test_accuracy is {accuracy:.4f} but the trial recorded "
            f"{expected_test_accuracy:.4f} (tolerance {accuracy_tolerance:g}): this is a "
            "different model, or a different test set (check --data)"
        )
    # Not the folder's name: an export is verified in its temporary ``.partial-*`` folder.
    logger.debug("verified the SavedModel, reloaded: test_accuracy %.4f on %d images, max abs "
                "difference %.2g", accuracy, len(x_test), difference)
    return Verification(len(x_test), accuracy, difference, keras_difference,
                        expected_test_accuracy, reference_difference)


def _predictions(root: Path, model: keras.Model, x_test: np.ndarray) -> tuple[Any, Any, Any]:
    """Class probabilities of ``x_test`` from the reloaded SavedModel, the in-memory model and
    the reloaded ``model.keras``, each float32 (n, 10)."""
    import keras
    import numpy as np
    import tensorflow as tf

    signature = check_signature(tf.saved_model.load(os.fspath(root)), root)
    exported = predict_savedmodel(signature, x_test)
    in_memory = np.asarray(model.predict(x_test, batch_size=PREDICT_BATCH_SIZE, verbose=0))
    reloaded = keras.saving.load_model(root / KERAS_NAME)
    from_keras_file = np.asarray(reloaded.predict(x_test, batch_size=PREDICT_BATCH_SIZE,
                                                  verbose=0))
    return exported, in_memory, from_keras_file


def _check_probabilities(exported: np.ndarray, num_images: int) -> None:
    """The SavedModel's output has the documented shape and its rows sum to 1."""
    import numpy as np

    if exported.shape != (num_images, NUM_CLASSES):
        raise VerificationError(
            f"the SavedModel returned shape {exported.shape} for {num_images} images; "
            f"expected ({num_images}, {NUM_CLASSES})"
        )
    row_sums = exported.sum(axis=1)
    worst_sum = float(np.abs(row_sums - 1.0).max()) if len(row_sums) else 0.0
    if worst_sum > 1e-4:
        raise VerificationError(
            f"the SavedModel's outputs are not probabilities: a row sums to 1 +/- {worst_sum:.2g}"
        )
