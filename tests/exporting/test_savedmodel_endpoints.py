"""Issue 20 for the exported SavedModel: besides ``serve`` / ``serving_default`` (unchanged: what
``model.export`` writes), ``serve_pixels`` takes uint8 (N, 28, 28) bytes and ``serve_flat``
float32 (N, 784) in [0, 1], refusing NaN and wrongly scaled floats inside the graph; both answer
``{"label", "probabilities"}``.

Fast: a tiny untrained model (Flatten + Dense softmax), exported once per module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nas_mnist.exporting.savedmodel import (
    FLAT_ENDPOINT,
    FLAT_RANGE_HINT,
    PIXELS_ENDPOINT,
    export_savedmodel,
)

N = 7


def _tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")  # the name the builder gives its input
    hidden = keras.layers.Flatten()(image)
    return keras.Model(image, keras.layers.Dense(10, activation="softmax")(hidden))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny model exported by ``export_savedmodel`` and, for reference, by ``model.export``."""
    model = _tiny_model()
    root = tmp_path_factory.mktemp("endpoints")
    export_savedmodel(model, None, {}, root / "out")
    model.export(str(root / "reference"), format="tf_saved_model", verbose=False)
    return root / "out", root / "reference"


@pytest.fixture(scope="module")
def loaded(folders):
    import tensorflow as tf

    return tf.saved_model.load(str(folders[0]))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """uint8 (N, 28, 28), the full 0-255 range (0 and 255 included)."""
    x = np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype=np.uint8)
    x[0, 0, :2] = (0, 255)
    return x


def _serving_default(loaded, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return loaded.signatures["serving_default"](image=tf.constant(images))["output_0"].numpy()


def _check_answer(answer, expected: np.ndarray) -> None:
    label, probabilities = answer["label"].numpy(), answer["probabilities"].numpy()
    assert set(answer) == {"label", "probabilities"}
    assert label.dtype == np.int64 and label.shape == (N,)
    assert probabilities.dtype == np.float32 and probabilities.shape == (N, 10)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(label, probabilities.argmax(axis=1))
    np.testing.assert_array_equal(label, expected.argmax(axis=1))


def test_serving_default_stays_what_model_export_writes_and_comes_first(folders, loaded):
    import tensorflow as tf

    reference = tf.saved_model.load(str(folders[1]))
    assert set(loaded.signatures) == {"serve", "serving_default", PIXELS_ENDPOINT, FLAT_ENDPOINT}
    for key in ("serving_default", "serve"):
        ours, theirs = loaded.signatures[key], reference.signatures[key]
        assert ours.structured_input_signature == theirs.structured_input_signature
        assert ours.structured_outputs == theirs.structured_outputs
    signature = loaded.signatures["serving_default"]
    assert signature.structured_input_signature == (
        (), {"image": tf.TensorSpec((None, 28, 28, 1), tf.float32, name="image")})
    assert list(signature.structured_outputs) == ["output_0"]
    assert signature.structured_outputs["output_0"].shape.as_list() == [None, 10]
    assert signature.structured_outputs["output_0"].dtype == tf.float32


def test_serve_pixels_answers_as_serving_default_on_the_images_over_255(loaded, pixels):
    import tensorflow as tf

    signature = loaded.signatures[PIXELS_ENDPOINT]
    assert signature.structured_input_signature == (
        (), {"pixels": tf.TensorSpec((None, 28, 28), tf.uint8, name="pixels")})
    expected = _serving_default(loaded, (pixels.astype(np.float32) / 255.0)[..., None])
    _check_answer(signature(pixels=tf.constant(pixels)), expected)
    _check_answer(loaded.serve_pixels(tf.constant(pixels)), expected)  # the endpoint itself


def test_serve_flat_answers_as_serving_default_on_the_same_images(loaded, pixels):
    import tensorflow as tf

    images = pixels.astype(np.float32) / 255.0
    signature = loaded.signatures[FLAT_ENDPOINT]
    assert signature.structured_input_signature == (
        (), {"image": tf.TensorSpec((None, 784), tf.float32, name="image")})
    expected = _serving_default(loaded, images[..., None])
    _check_answer(signature(image=tf.constant(images.reshape(N, 784))), expected)


@pytest.mark.parametrize("bad", ["0-255 floats", "nan", "inf", "negative"])
def test_serve_flat_refuses_wrongly_scaled_or_non_finite_floats(loaded, pixels, bad):
    import tensorflow as tf

    images = pixels.astype(np.float32).reshape(N, 784)  # raw 0-255 pixels sent as floats
    if bad != "0-255 floats":
        images /= 255.0
        images[3, 100] = {"nan": np.nan, "inf": np.inf, "negative": -0.01}[bad]
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(FLAT_RANGE_HINT)):
        loaded.signatures[FLAT_ENDPOINT](image=tf.constant(images))
