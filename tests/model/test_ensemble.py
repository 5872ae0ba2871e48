"""The mean-softmax ensemble model (``nas_mnist.model.ensemble``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nas_mnist.model.ensemble import mean_softmax_model


def _member(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    image = keras.Input((28, 28, 1))
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(image))
    return keras.Model(image, out, name="same_name")  # members may share a name


def test_output_is_the_mean_of_the_members_probabilities(tmp_path):
    members = [_member(0), _member(1), _member(2)]
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    expected = np.mean([m.predict(images, verbose=0) for m in members], axis=0)
    model = mean_softmax_model(members)
    assert model.inputs[0].name == "image" and model.layers[0].name == "image"
    got = model.predict(images, verbose=0)
    assert got.shape == (5, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "e.keras")  # plain Keras layers: loads without nas-mnist's classes
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "e.keras").predict(
        images, verbose=0), got, atol=1e-6)


def test_member_names_and_count_are_checked():
    with pytest.raises(ValueError, match="at least 2 members"):
        mean_softmax_model([_member(0)])
    with pytest.raises(ValueError, match="unique member names"):
        mean_softmax_model([_member(0), _member(1)], names=["a", "a"])
    assert [layer.name for layer in mean_softmax_model(
        [_member(0), _member(1)], names=["trial_3", "trial_7"]).layers[1:3]] == ["trial_3",
                                                                               "trial_7"]
