"""Tests for nas_mnist.model.precise_bn: BN statistics re-estimated for the current weights."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from support import run_on_jax

from nas_mnist.model.precise_bn import (
    BatchNormStatistics,
    PreciseBatchNorm,
    precise_bn_images,
    recompute_batch_norm_statistics,
)


def stacked_bn_model() -> tuple[keras.Model, list[keras.layers.BatchNormalization]]:
    """Conv -> BN -> dropout, then two parallel branches with a BN each, then Dense -> BN.

    Four BN layers in three dependent groups; BN inputs of several layouts (conv maps, a Dense
    vector) and a dropout before the later ones (identity at inference).
    """
    inputs = keras.Input((8, 8, 1))
    first = keras.layers.BatchNormalization()
    x = first(keras.layers.Conv2D(4, 3)(inputs))
    x = keras.layers.Dropout(0.5)(x)
    left_bn, right_bn = keras.layers.BatchNormalization(), keras.layers.BatchNormalization()
    left = left_bn(keras.layers.Conv2D(3, 3)(x))
    right = right_bn(keras.layers.Conv2D(2, 1)(x))
    x = keras.layers.Concatenate()([keras.layers.Cropping2D(1)(right), left])
    last = keras.layers.BatchNormalization()
    x = last(keras.layers.Dense(5)(keras.layers.Flatten()(x)))
    return keras.Model(inputs, x), [first, left_bn, right_bn, last]


def inputs_of(model: keras.Model, layer: keras.layers.Layer, images: np.ndarray) -> np.ndarray:
    """The inputs ``layer`` sees at inference, as float64 (positions, channels)."""
    x = keras.Model(model.inputs, layer.input).predict(images, verbose=0).astype(np.float64)
    return x.reshape(-1, x.shape[-1])


def random_images(n: int, seed: int = 0) -> np.ndarray:
    # Mean and scale far from BN's initial statistics (0, 1), so a no-op would show.
    return np.random.default_rng(seed).normal(2.0, 3.0, (n, 8, 8, 1)).astype(np.float32)


def test_moving_statistics_equal_the_population_statistics_of_each_bn_input():
    keras.utils.set_random_seed(0)
    model, layers = stacked_bn_model()
    images = random_images(300)
    assert recompute_batch_norm_statistics(model, images, batch_size=64) == 4
    for layer in layers:
        x = inputs_of(model, layer, images)  # computed with the updated upstream BN layers
        mean = keras.ops.convert_to_numpy(layer.moving_mean)
        variance = keras.ops.convert_to_numpy(layer.moving_variance)
        np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(variance, x.var(axis=0), rtol=1e-5)  # population variance
        assert not np.allclose(variance, 1.0)  # the initial value was replaced


def test_results_do_not_depend_on_batch_size():
    keras.utils.set_random_seed(0)
    model, layers = stacked_bn_model()
    images = random_images(100)
    recompute_batch_norm_statistics(model, images, batch_size=100)
    whole = [keras.ops.convert_to_numpy(layer.moving_variance).copy() for layer in layers]
    recompute_batch_norm_statistics(model, images, batch_size=7)  # uneven last batch
    for layer, expected in zip(layers, whole):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), expected,
                                   rtol=1e-5)


def test_later_passes_start_from_kept_inputs_of_dependent_groups():
    model, _ = stacked_bn_model()
    statistics = BatchNormStatistics(model)
    assert statistics.num_passes == 3  # first BN; the two branch BNs together; the Dense BN
    assert [p.from_previous for p in statistics._passes] == [False, True, True]


def test_only_bn_statistics_change():
    keras.utils.set_random_seed(0)
    model, layers = stacked_bn_model()
    others = [w.path for w in model.weights if "moving_" not in w.path]
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}
    recompute_batch_norm_statistics(model, random_images(50))
    for w in model.weights:
        same = np.array_equal(keras.ops.convert_to_numpy(w), before[w.path])
        assert same == (w.path in others), w.path


def test_model_without_batch_norm_is_left_alone():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    assert recompute_batch_norm_statistics(model, np.zeros((0, 8, 8, 1), np.float32)) == 0


def test_sequential_models_work_and_bad_input_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization()])
    x = np.random.default_rng(0).normal(5, 2, (40, 4)).astype(np.float32)
    assert recompute_batch_norm_statistics(model, x) == 1
    with pytest.raises(ValueError, match="at least one image"):
        recompute_batch_norm_statistics(model, x[:0])
    with pytest.raises(ValueError, match="batch_size >= 1"):
        recompute_batch_norm_statistics(model, x, batch_size=0)


def test_shared_bn_layer_is_refused_with_a_reason():
    inputs = keras.Input((4,))
    shared = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.Add()([shared(inputs), shared(inputs * 2.0)]))
    with pytest.raises(ValueError, match="each called once"):
        recompute_batch_norm_statistics(model, np.ones((4, 4), np.float32))


def test_image_subset_is_fixed_by_the_seed():
    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    a, b = precise_bn_images(x, 10, seed=3), precise_bn_images(x, 10, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 10 and len(np.unique(a)) == 10
    assert not np.array_equal(a, precise_bn_images(x, 10, seed=4))
    assert precise_bn_images(x, 100, seed=0) is x  # fewer training images than asked: all


class _Recorder(keras.callbacks.Callback):
    """At each epoch's end: the logged val_loss and a fresh evaluation with the BN statistics
    the model holds at that moment."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray) -> None:
        super().__init__()
        self.x_val, self.y_val = x_val, y_val
        self.rows: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss, _ = self.model.evaluate(self.x_val, self.y_val, verbose=0)
        self.rows.append((float(logs["val_loss"]), float(loss)))


def test_callback_runs_after_training_steps_and_before_validation():
    """Keras 3 validates inside ``fit`` before ``on_epoch_end``; ``on_test_begin`` comes first.

    The logged val_loss equals an evaluation with the re-estimated statistics, so validation used
    them; with Keras' lagging moving averages the same weights give a different val_loss.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.3, (256, 6, 6, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int32)
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(8)(keras.layers.Flatten()(h)))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    precise = PreciseBatchNorm(x[:128], batch_size=64)
    recorder = _Recorder(x[128:], y[128:])
    model.fit(x[:128], y[:128], batch_size=32, epochs=2, validation_data=(x[128:], y[128:]),
              callbacks=[precise, recorder], verbose=0)
    assert precise.calls == 2 and precise.seconds > 0
    for logged, evaluated in recorder.rows:
        assert logged == pytest.approx(evaluated, rel=1e-5)
    # The same weights with other statistics (BN's initial ones) give another val_loss, so the
    # equality above could fail.
    for layer in [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    loss, _ = model.evaluate(x[128:], y[128:], verbose=0)
    assert abs(loss - recorder.rows[-1][1]) > 1e-3


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_recompute_runs_on_the_jax_backend():
    code = (
        "import numpy as np, keras\n"
        "from nas_mnist.model.precise_bn import recompute_batch_norm_statistics\n"
        "assert keras.backend.backend() == 'jax'\n"
        "i = keras.Input((6, 6, 1)); bn = keras.layers.BatchNormalization()\n"
        "h = bn(keras.layers.Conv2D(3, 3)(i))\n"
        "h = keras.layers.BatchNormalization()(keras.layers.Dense(4)(keras.layers.Flatten()(h)))\n"
        "m = keras.Model(i, h)\n"
        "x = np.random.default_rng(0).normal(2, 3, (50, 6, 6, 1)).astype('float32')\n"
        "assert recompute_batch_norm_statistics(m, x, batch_size=16) == 2\n"
        "a = np.asarray(keras.Model(i, bn.input).predict(x, verbose=0)).reshape(-1, 3)\n"
        "assert np.allclose(np.asarray(bn.moving_variance), a.var(0), rtol=1e-4)\n"
    )
    result = run_on_jax(code, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
