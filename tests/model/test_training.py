"""Tests for nas_mnist.model.training: learning-rate schedules, precise BN inside train_spec, and
the batches fed to fit on JAX."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from support import run_on_jax

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.architecture.spec import (
    ArchitectureSpec,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    OptimizerSpec,
)
from nas_mnist.data import DataSplits, load_mnist, make_splits
from nas_mnist.model.precise_bn import (
    batch_norm_layers,
    precise_bn_images,
    recompute_batch_norm_statistics,
)
from nas_mnist.model.training import (
    EVAL_BATCH_SIZE,
    REDUCE_ON_PLATEAU,
    FullBatches,
    TrainingOptions,
    learning_rate_for,
    schedule_callbacks,
    train_spec,
)

BN_SPEC = ArchitectureSpec(
    layers=(Conv(4, 3), BatchNorm(), MaxPool(2), Flatten(), Dense(16), BatchNorm(), Dropout(0.2)),
    optimizer=OptimizerSpec("adam", 0.01),
    batch_size=32,
)


def synthetic_splits(num_train: int = 256, seed: int = 0) -> DataSplits:
    """Random images whose class is the brightest of ten horizontal bands (learnable)."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.int32)
        x = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.5
        for i, label in enumerate(y):
            x[i, 2 * label + 4: 2 * label + 6] += 0.5
        return x, y

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(num_train), split(128), split(64)
    return DataSplits(x_train, y_train, x_val, y_val, x_test, y_test, source="synthetic")


def _moving(layer: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    return (keras.ops.convert_to_numpy(layer.moving_mean).copy(),
            keras.ops.convert_to_numpy(layer.moving_variance).copy())


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------


def test_constant_schedule_keeps_the_learning_rate():
    assert learning_rate_for(BN_SPEC, epochs=3, steps_per_epoch=10) == 0.01
    assert schedule_callbacks(BN_SPEC) == []


def test_cosine_decays_to_zero_over_the_whole_training():
    spec = ArchitectureSpec(layers=BN_SPEC.layers, optimizer=BN_SPEC.optimizer, lr_schedule="cosine")
    schedule = learning_rate_for(spec, epochs=3, steps_per_epoch=10)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    value = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    assert value(0) == pytest.approx(0.01)
    assert value(15) == pytest.approx(0.005, rel=1e-4)  # half way: half the rate
    assert value(30) == pytest.approx(0.0, abs=1e-9)
    assert schedule_callbacks(spec) == []


def test_reduce_on_plateau_halves_after_two_epochs_without_val_loss_progress():
    spec = ArchitectureSpec(layers=(), lr_schedule="reduce_on_plateau")
    assert learning_rate_for(spec, 3, 10) == spec.optimizer.learning_rate
    [callback] = schedule_callbacks(spec)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_loss", 0.5, 2)
    assert REDUCE_ON_PLATEAU == {"monitor": "val_loss", "factor": 0.5, "patience": 2}


def test_train_spec_follows_the_cosine_schedule_to_its_end():
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)), optimizer=OptimizerSpec("sgd", 0.1),
                            batch_size=64, lr_schedule="cosine")
    result = train_spec(spec, synthetic_splits(), epochs=2, seed=0, evaluate_test=False)
    optimizer = result.model.optimizer
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2 * 4  # 256 images / 64
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0, abs=1e-7)


def test_train_spec_halves_the_learning_rate_when_val_loss_stalls():
    # A learning rate this small leaves val_loss flat (changes below Keras' min_delta 1e-4), so
    # the third epoch is the second without progress: patience 2 is used up, the rate halves.
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)), batch_size=64,
                            optimizer=OptimizerSpec("sgd", 1e-9), lr_schedule="reduce_on_plateau")
    seen: list[float] = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    train_spec(spec, synthetic_splits(), epochs=3, seed=0, evaluate_test=False,
               callbacks=[Watch()])
    assert seen == pytest.approx([1e-9, 1e-9, 0.5e-9], rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Precise BN inside train_spec
# ---------------------------------------------------------------------------------------------


def test_kept_model_carries_statistics_re_estimated_for_its_weights():
    data = synthetic_splits()
    options = TrainingOptions(precise_bn_images=100)
    result = train_spec(BN_SPEC, data, epochs=2, seed=3, options=options)
    assert result.phase_seconds["precise_bn"] > 0
    layers = batch_norm_layers(result.model)
    kept = [_moving(layer) for layer in layers]
    # Re-estimating again on the trial's fixed images changes nothing: they are already there.
    recompute_batch_norm_statistics(result.model, precise_bn_images(data.x_train, 100, seed=3))
    for layer, (mean, variance) in zip(layers, kept):
        np.testing.assert_allclose(_moving(layer)[0], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_moving(layer)[1], variance, rtol=1e-4, atol=1e-5)
    # The best epoch's logged val_accuracy is the kept model's accuracy on the validation split.
    _, accuracy = result.model.evaluate(data.x_val, data.y_val, verbose=0)
    assert accuracy == pytest.approx(result.val_accuracy, abs=1e-6)


def test_precise_bn_can_be_turned_off_and_leaves_training_unchanged():
    data = synthetic_splits()
    off = train_spec(BN_SPEC, data, epochs=1, seed=0, evaluate_test=False,
                     options=TrainingOptions(precise_bn_images=0))
    on = train_spec(BN_SPEC, data, epochs=1, seed=0, evaluate_test=False,
                    options=TrainingOptions(precise_bn_images=200))
    assert "precise_bn" not in off.phase_seconds and on.phase_seconds["precise_bn"] > 0
    assert on.history[0]["loss"] == pytest.approx(off.history[0]["loss"], rel=1e-5)
    assert not np.allclose(_moving(batch_norm_layers(on.model)[0])[1],
                           _moving(batch_norm_layers(off.model)[0])[1])


def test_precise_bn_images_must_not_be_negative():
    with pytest.raises(ValueError, match="precise_bn_images"):
        TrainingOptions(precise_bn_images=-1)


@pytest.mark.slow
def test_precise_bn_removes_the_batch_norm_lag_of_a_short_training(real_mnist_path):
    """s000_m2 (3 BN layers), 1 epoch on 2,000 real images: Keras' moving averages (momentum
    0.99, 16 steps) still mostly hold their initial values; re-estimated ones do not."""
    data = make_splits(load_mnist(real_mnist_path), validation_size=2_000,
                       max_train_samples=2_000, seed=0)
    spec = get_baseline("s000_m2").spec
    lagging = train_spec(spec, data, epochs=1, seed=0, evaluate_test=False,
                         options=TrainingOptions(precise_bn_images=0))
    precise = train_spec(spec, data, epochs=1, seed=0, evaluate_test=False)
    assert precise.history[0]["loss"] == pytest.approx(lagging.history[0]["loss"], rel=1e-4)
    print(f"val_accuracy: lagging {lagging.val_accuracy:.4f}, precise {precise.val_accuracy:.4f}")
    assert precise.val_accuracy >= 0.7
    assert precise.val_accuracy >= lagging.val_accuracy + 0.3


# ---------------------------------------------------------------------------------------------
# One batch shape on JAX (XLA compiles one function per shape)
# ---------------------------------------------------------------------------------------------


def test_full_batches_take_every_image_once_per_epoch_in_batches_of_one_size():
    x = np.arange(300, dtype=np.float32).reshape(300, 1, 1, 1)
    y = np.arange(300, dtype=np.int32)
    batches = FullBatches(x, y, batch_size=128, seed=0)
    assert len(batches) == 3  # as many steps as Keras' own epoch of 300 images
    epochs = []
    for _ in range(2):
        labels = [batches[i][1] for i in range(len(batches))]
        assert [len(b) for b in labels] == [128, 128, 128]
        seen = np.concatenate(labels)
        assert set(seen) == set(range(300))  # every image, the last batch filled up
        assert np.array_equal(batches[0][0].ravel(), labels[0])  # images and labels match
        epochs.append(seen)
        batches.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch
    again = FullBatches(x, y, batch_size=128, seed=0)
    assert np.array_equal(np.concatenate([again[i][1] for i in range(3)]), epochs[0])


def test_full_batches_with_fewer_images_than_a_batch_take_them_all_once():
    x, y = np.zeros((20, 28, 28, 1), np.float32), np.arange(20, dtype=np.int32)
    batches = FullBatches(x, y, batch_size=128, seed=1)
    assert len(batches) == 1
    assert sorted(batches[0][1]) == list(range(20))


def test_evaluation_batches_divide_the_validation_and_test_splits():
    assert 10_000 % EVAL_BATCH_SIZE == 0


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_training_traces_one_batch_shape_when_the_batch_size_does_not_divide_the_images():
    """Each traced batch shape is one XLA compilation of the train step; Keras' last, smaller
    batch of an epoch compiled it a second time (``nas_mnist.model.training.FullBatches``)."""
    code = (
        "import numpy as np, keras\n"
        "from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten\n"
        "from nas_mnist.data import DataSplits\n"
        "from nas_mnist.model.training import fit_compiled_model\n"
        "from nas_mnist.model.builder import compile_model\n"
        "assert keras.backend.backend() == 'jax'\n"
        "shapes = []\n"
        "class Record(keras.layers.Layer):\n"
        "    def call(self, x, training=False):\n"
        "        if training: shapes.append(x.shape[0])\n"
        "        return x\n"
        "spec = ArchitectureSpec(layers=(Flatten(), Dense(8)), batch_size=64)\n"
        "inputs = keras.Input((28, 28, 1))\n"
        "outputs = keras.layers.Dense(10, activation='softmax')(\n"
        "    keras.layers.Flatten()(Record()(inputs)))\n"
        "model = compile_model(keras.Model(inputs, outputs), spec)\n"
        "rng = np.random.default_rng(0)\n"
        "def split(n):\n"
        "    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)\n"
        "data = DataSplits(*split(200), *split(50), *split(30), source='random')\n"
        "result = fit_compiled_model(model, spec, data, 2, seed=0)\n"
        "assert len(result.history) == 2\n"
        "assert set(shapes) == {64}, shapes\n"
    )
    result = run_on_jax(code)
    assert result.returncode == 0, result.stderr[-2000:]
