"""Tests for nas_mnist.model.builder: spec -> keras.Model, optimizers, initializers, compilation."""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from support import run_on_jax

import nas_mnist.model.builder as builder
from nas_mnist.architecture.spec import (
    ArchitectureSpec,
    Augmentation,
    BatchNorm,
    Branches,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Initializer,
    MaxPool,
    OptimizerSpec,
)
from nas_mnist.model.builder import (
    SparseCategoricalCrossentropyWithLabelSmoothing,
    build_loss,
    build_model,
    build_optimizer,
    compile_model,
    keras_initializer,
)

CONV_STACK = ArchitectureSpec(layers=(
    Conv(32, 3), BatchNorm(), MaxPool(2), Dropout(0.25), Conv(64, 3, padding="same"),
    Flatten(), Dense(128), Dropout(0.5),
))
STRIDED = ArchitectureSpec(layers=(
    Conv(8, 5, strides=2, padding="same"), Conv(16, 3, strides=2), MaxPool(3, strides=1, padding="same"),
    MaxPool(2, padding="same"), BatchNorm(),
))
DENSE_ONLY = ArchitectureSpec(layers=(
    Flatten(), Dense(64), BatchNorm(), Dense(32, activation="tanh"), Dropout(0.2),
))
BRANCHES = ArchitectureSpec(layers=(
    Branches((
        (Conv(4, 1, padding="same"),),
        (Conv(6, 3, padding="same"), BatchNorm()),
        (Conv(2, 5, padding="same"),),
        (Conv(2, 1, padding="same"), MaxPool(3, strides=1, padding="same")),
    )),
    MaxPool(2),
    Conv(8, 3),
))
OUTPUT_ONLY = ArchitectureSpec(layers=())
SPECS = [CONV_STACK, STRIDED, DENSE_ONLY, BRANCHES, OUTPUT_ONLY]
SPEC_IDS = ["conv-stack", "strided", "dense-only", "branches", "output-only"]


def random_images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_count_params_equals_spec_num_params(spec):
    assert build_model(spec).count_params() == spec.num_params


def test_count_params_matches_hand_computed_totals():
    assert build_model(OUTPUT_ONLY).count_params() == 785 * 10
    # conv 320 + batch norm 128 + conv 18_496 + dense 1_384_576 + output 1_290
    assert build_model(CONV_STACK).count_params() == 1_404_810
    # branches: 8 + 60 + 24 + 102 + 4 batch-norm channels * 6 = 218; 28 -> 14 -> 12 after 3x3 valid
    assert build_model(BRANCHES).count_params() == (
        (1 + 1) * 4 + (9 + 1) * 6 + 4 * 6 + (25 + 1) * 2 + (1 + 1) * 2
        + (9 * 14 + 1) * 8 + (12 * 12 * 8 + 1) * 10)


def test_batch_norm_parameters_are_half_non_trainable():
    model = build_model(DENSE_ONLY)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 2 * 64  # moving mean and variance


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_model_maps_images_to_class_probabilities(spec):
    model = build_model(spec)
    assert tuple(model.input_shape) == (None, 28, 28, 1)
    assert tuple(model.output_shape) == (None, 10)
    probabilities = keras.ops.convert_to_numpy(model(random_images(), training=False))
    assert probabilities.shape == (4, 10)
    assert probabilities.dtype == np.float32
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(4), rtol=0, atol=1e-5)


def test_model_name_defaults_to_spec_id():
    assert build_model(CONV_STACK).name == f"nas_mnist_{CONV_STACK.spec_id}"
    assert build_model(CONV_STACK, name="custom").name == "custom"


@pytest.mark.parametrize("spec", [CONV_STACK, STRIDED, DENSE_ONLY, OUTPUT_ONLY],
                         ids=["conv-stack", "strided", "dense-only", "output-only"])
def test_every_layer_output_shape_equals_the_shape_table(spec):
    model = build_model(spec)
    rows = spec.shape_table()  # input, layers (with an implicit Flatten), output
    assert len(model.layers) == len(rows)
    for layer, row in zip(model.layers, rows):
        assert tuple(layer.output.shape[1:]) == row.shape, (layer.name, row.description)
        assert layer.count_params() == row.params, (layer.name, row.description)


def test_conv_and_pool_spatial_sizes_follow_the_shape_table():
    model = build_model(STRIDED)
    keras_sizes = [layer.output.shape[1] for layer in model.layers
                   if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D))]
    spec_sizes = [row.shape[0] for row in STRIDED.shape_table()
                  if row.description.startswith(("conv", "max_pool"))]
    assert keras_sizes == spec_sizes == [14, 6, 6, 3]


def test_branches_are_concatenated_on_the_channel_axis():
    model = build_model(BRANCHES)
    concatenated = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concatenated) == 1
    assert tuple(concatenated[0].output.shape[1:]) == BRANCHES.shape_table()[1].shape == (28, 28, 14)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert sorted(layer.kernel_size for layer in convs) == [(1, 1), (1, 1), (3, 3), (3, 3), (5, 5)]


# ---------------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------------


def _value(variable) -> float:
    return float(keras.ops.convert_to_numpy(variable))


def test_adadelta_keeps_the_spec_learning_rate():
    # Keras 3's Adadelta defaults to 0.001; Keras 2's Adadelta() meant 1.0.
    assert _value(keras.optimizers.Adadelta().learning_rate) == pytest.approx(0.001)
    optimizer = build_optimizer(OptimizerSpec("adadelta", 1.0))
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert _value(optimizer.learning_rate) == 1.0


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adam", keras.optimizers.Adam), ("adadelta", keras.optimizers.Adadelta),
     ("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop)],
)
def test_each_optimizer_name_builds_its_keras_class(name, cls):
    optimizer = build_optimizer(OptimizerSpec(name, 0.0125))
    assert type(optimizer) is cls
    assert _value(optimizer.learning_rate) == pytest.approx(0.0125)


def test_sgd_momentum_is_set():
    assert build_optimizer(OptimizerSpec("sgd", 0.01, momentum=0.9)).momentum == 0.9
    assert build_optimizer(OptimizerSpec("sgd", 0.01)).momentum == 0.0  # Keras default


def test_adam_fields_are_set_when_given_and_default_otherwise():
    adam = build_optimizer(OptimizerSpec("adam", 1e-3, beta_1=0.8, beta_2=0.99, epsilon=1e-4))
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.8, 0.99, 1e-4)
    default = build_optimizer(OptimizerSpec("adam", 1e-3))
    assert (default.beta_1, default.beta_2, default.epsilon) == (0.9, 0.999, 1e-7)


def test_rmsprop_rho_is_set():
    assert build_optimizer(OptimizerSpec("rmsprop", 1e-3, rho=0.8)).rho == 0.8


# ---------------------------------------------------------------------------------------------
# Initializers
# ---------------------------------------------------------------------------------------------


def test_constant_bias_and_zeros_kernel_are_applied():
    spec = ArchitectureSpec(layers=(
        Conv(4, 3, kernel_initializer="zeros", bias_initializer=Initializer("constant", (("value", -0.5),))),
        Flatten(),
        Dense(16, kernel_initializer="zeros", bias_initializer=Initializer("constant", (("value", 0.1),))),
    ))
    model = build_model(spec)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    dense = next(layer for layer in model.layers
                 if isinstance(layer, keras.layers.Dense) and layer.units == 16)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.bias), np.full(16, 0.1, np.float32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.kernel), np.zeros((26 * 26 * 4, 16)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.bias), np.full(4, -0.5, np.float32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.kernel), np.zeros((3, 3, 1, 4)))


def test_initializer_arguments_reach_keras():
    keras.utils.set_random_seed(0)
    init = Initializer("truncated_normal", (("stddev", 0.01),))
    spec = ArchitectureSpec(layers=(Flatten(), Dense(256, kernel_initializer=init)))
    kernel = keras.ops.convert_to_numpy(build_model(spec).layers[2].kernel)
    assert kernel.shape == (784, 256)
    assert np.abs(kernel).max() <= 2 * 0.01 + 1e-7  # truncated at two standard deviations
    assert kernel.std() == pytest.approx(0.0088, rel=0.05)  # 0.01 * 0.8796 after truncation
    assert isinstance(keras_initializer(init), keras.initializers.TruncatedNormal)
    assert isinstance(keras_initializer(Initializer("he_normal")), keras.initializers.HeNormal)


def test_output_layer_initializers_come_from_the_spec():
    spec = ArchitectureSpec(layers=(), output=Dense(
        10, activation="softmax", kernel_initializer="zeros",
        bias_initializer=Initializer("constant", (("value", 0.25),))))
    output = build_model(spec).layers[-1]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(output.kernel), np.zeros((784, 10)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(output.bias), np.full(10, 0.25, np.float32))


# ---------------------------------------------------------------------------------------------
# Compilation and a tiny fit
# ---------------------------------------------------------------------------------------------


def test_compiled_uniform_model_has_loss_log_10():
    # A zero output kernel and bias give uniform probabilities: cross-entropy is ln(10).
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)),
                            output=Dense(10, activation="softmax", kernel_initializer="zeros"))
    model = compile_model(build_model(spec), spec)
    labels = np.arange(8, dtype=np.int32) % 10
    loss, accuracy = model.evaluate(random_images(8), labels, batch_size=8, verbose=0)
    assert loss == pytest.approx(math.log(10), rel=1e-5)
    assert 0.0 <= accuracy <= 1.0


def test_compile_model_then_two_step_fit_gives_finite_loss():
    keras.utils.set_random_seed(0)
    spec = ArchitectureSpec(layers=(Conv(4, 3), MaxPool(2), BatchNorm(), Flatten(), Dense(16),
                                    Dropout(0.5)),
                            optimizer=OptimizerSpec("sgd", 0.05, momentum=0.9), batch_size=4)
    model = build_model(spec)
    assert compile_model(model, spec) is model
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.momentum == 0.9
    assert _value(model.optimizer.learning_rate) == pytest.approx(0.05)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    labels = np.arange(8, dtype=np.int32) % 10
    history = model.fit(random_images(8), labels, batch_size=spec.batch_size, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2
    assert set(history.history) >= {"loss", "accuracy"}
    assert all(math.isfinite(v) for v in history.history["loss"])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------------------------------------
# Training levers: augmentation and label smoothing
# ---------------------------------------------------------------------------------------------

AUGMENTED = ArchitectureSpec(layers=CONV_STACK.layers,
                             augmentation=Augmentation(translation=0.1, rotation=0.05, zoom=0.1))


def test_augmentation_layers_follow_the_input_and_fill_with_the_background():
    model = build_model(AUGMENTED)
    first = model.layers[1:4]
    for layer, cls in zip(first, (keras.layers.RandomTranslation, keras.layers.RandomRotation,
                                  keras.layers.RandomZoom)):
        assert isinstance(layer, cls)
    for layer in first:
        assert layer.fill_mode == "constant" and layer.fill_value == 0.0
    config = [layer.get_config() for layer in first]
    assert config[0]["height_factor"] == config[0]["width_factor"] == 0.1
    assert tuple(config[1]["factor"]) == (-0.05, 0.05)  # Keras: factor f means [-f, f]
    assert config[2]["height_factor"] == 0.1 and config[2]["width_factor"] is None  # aspect kept
    only_zoom = build_model(ArchitectureSpec(layers=(), augmentation=Augmentation(zoom=0.2)))
    assert isinstance(only_zoom.layers[1], keras.layers.RandomZoom)
    assert not isinstance(only_zoom.layers[2], keras.layers.RandomZoom)
    assert not any(isinstance(x, keras.layers.RandomTranslation) for x in build_model(CONV_STACK).layers)


def test_augmentation_adds_no_weights():
    model = build_model(AUGMENTED)
    assert model.count_params() == AUGMENTED.num_params == CONV_STACK.num_params
    assert len(model.get_weights()) == len(build_model(CONV_STACK).get_weights())


def test_augmentation_is_identity_at_inference_and_random_in_training():
    keras.utils.set_random_seed(0)
    augmented = build_model(AUGMENTED)
    plain = build_model(CONV_STACK)
    plain.set_weights(augmented.get_weights())
    x = random_images(8)
    inference = [keras.ops.convert_to_numpy(augmented(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])  # deterministic
    np.testing.assert_allclose(inference[0], keras.ops.convert_to_numpy(plain(x, training=False)),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(augmented.predict(x, verbose=0), inference[0], rtol=1e-6, atol=1e-7)
    # In training the first layers move the pixels: the augmentation stage's output differs.
    stage = keras.Model(augmented.inputs, augmented.layers[3].output)
    moved = keras.ops.convert_to_numpy(stage(x, training=True))
    assert not np.allclose(moved, x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(stage(x, training=False)), x)


def test_augmented_model_called_without_training_exported_or_reloaded_does_not_augment(tmp_path):
    # Keras' own random layers default to training=True, so model(x) would augment.
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = compile_model(build_model(AUGMENTED), AUGMENTED)
    x = random_images(6)
    expected = model.predict(x, verbose=0)
    for _ in range(2):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=1e-6,
                                   atol=1e-7)
    model.export(str(tmp_path / "savedmodel"), verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "savedmodel"))  # keep it: serve uses its variables
    for _ in range(2):
        np.testing.assert_allclose(exported.serve(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), expected, rtol=1e-6,
                               atol=1e-7)


def test_augmentation_acts_in_fit_training_steps():
    keras.utils.set_random_seed(0)
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)),
                            augmentation=Augmentation(translation=0.3, rotation=0.2))
    model = build_model(spec)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss="sparse_categorical_crossentropy")
    x, y = random_images(16), np.arange(16, dtype=np.int32) % 10
    train = {float(model.train_on_batch(x, y)) for _ in range(3)}  # weights never move
    test = {float(model.test_on_batch(x, y)) for _ in range(3)}
    assert len(test) == 1  # no augmentation when evaluating
    assert len(train) == 3  # a new random transformation each training step


def test_translation_fills_uncovered_pixels_with_zero():
    keras.utils.set_random_seed(1)
    spec = ArchitectureSpec(layers=(), augmentation=Augmentation(translation=0.5))
    stage = keras.Model(*(lambda m: (m.inputs, m.layers[1].output))(build_model(spec)))
    ones = np.ones((16, 28, 28, 1), dtype=np.float32)
    moved = keras.ops.convert_to_numpy(stage(ones, training=True))
    # Keras' default fill_mode "reflect" would keep an all-ones image all ones.
    assert moved.min() >= 0 and moved.max() <= 1 + 1e-6
    assert (moved == 0).mean() > 0.05


def test_label_smoothing_loss_matches_the_formula():
    y_pred = np.array([[0.7, 0.2, 0.1] + [0.0] * 7, [0.1] * 10], dtype=np.float32)
    labels = np.array([0, 3], dtype=np.int32)
    loss = SparseCategoricalCrossentropyWithLabelSmoothing(0.1)
    value = float(keras.ops.convert_to_numpy(loss(labels, y_pred)))
    eps = 1e-7  # Keras clips probabilities to [epsilon, 1 - epsilon]
    targets = np.full((2, 10), 0.1 / 10)
    targets[np.arange(2), labels] += 0.9
    expected = -(targets * np.log(np.clip(y_pred, eps, 1 - eps))).sum(axis=1).mean()
    assert value == pytest.approx(expected, rel=1e-4)
    unsmoothed = SparseCategoricalCrossentropyWithLabelSmoothing(0.0)(labels, y_pred)
    sparse = keras.losses.SparseCategoricalCrossentropy()(labels, y_pred)
    assert float(keras.ops.convert_to_numpy(unsmoothed)) == pytest.approx(
        float(keras.ops.convert_to_numpy(sparse)), rel=1e-5)
    assert value > float(keras.ops.convert_to_numpy(sparse))  # smoothing penalises ~0 probabilities


def test_compile_uses_label_smoothing_only_when_set():
    assert build_loss(CONV_STACK) == "sparse_categorical_crossentropy"
    smoothed = ArchitectureSpec(layers=(Flatten(), Dense(8)), label_smoothing=0.2)
    loss = build_loss(smoothed)
    assert isinstance(loss, SparseCategoricalCrossentropyWithLabelSmoothing)
    assert loss.label_smoothing == 0.2
    model = compile_model(build_model(smoothed), smoothed)
    labels = np.arange(8, dtype=np.int32) % 10
    history = model.fit(random_images(8), labels, batch_size=4, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["accuracy"][0] <= 1.0  # sparse accuracy on int labels


def test_label_smoothed_model_saves_and_loads(tmp_path):
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)), label_smoothing=0.1,
                            augmentation=Augmentation(rotation=0.1))
    model = compile_model(build_model(spec), spec)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.loss.label_smoothing == 0.1
    x = random_images(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_build_optimizer_takes_a_learning_rate_schedule():
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=10)
    optimizer = build_optimizer(OptimizerSpec("sgd", 0.1, momentum=0.9), schedule)
    assert optimizer._learning_rate is schedule
    assert optimizer.momentum == 0.9


# ---------------------------------------------------------------------------------------------
# Backend independence
# ---------------------------------------------------------------------------------------------


def test_builder_uses_no_tensorflow():
    source = Path(builder.__file__).read_text(encoding="utf-8")
    assert "import tensorflow" not in source
    imported = set()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Name):
            names.add(node.id)
    assert "tensorflow" not in imported
    assert "tf" not in names
    assert "keras" in imported


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_builder_runs_on_the_jax_backend():
    code = (
        "import numpy as np, keras\n"
        "from nas_mnist.model.builder import build_model\n"
        "from nas_mnist.architecture.spec import ArchitectureSpec, Branches, Conv, MaxPool\n"
        "BRANCHES = ArchitectureSpec(layers=(Branches(((Conv(4, 1, padding='same'),),\n"
        "    (Conv(2, 3, padding='same'), MaxPool(3, strides=1, padding='same')))), MaxPool(2)))\n"
        "assert keras.backend.backend() == 'jax'\n"
        "model = build_model(BRANCHES)\n"
        "assert model.count_params() == BRANCHES.num_params\n"
        "p = np.asarray(model(np.random.rand(2, 28, 28, 1).astype('float32')))\n"
        "assert np.allclose(p.sum(axis=1), 1, atol=1e-5)\n"
    )
    result = run_on_jax(code)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_augmented_model_trains_under_xla_on_jax_with_a_new_draw_each_step():
    """Keras 3.15's random image layers set ``supports_jit = False``, which turned XLA off for
    the whole model on JAX (s002_m1: over 20 s per epoch on an H200, 0.65 s with XLA)."""
    code = (
        "import numpy as np, keras\n"
        "from nas_mnist.model.builder import build_model, compile_model\n"
        "from nas_mnist.architecture.spec import ArchitectureSpec, Augmentation, Dense, Flatten\n"
        "assert keras.backend.backend() == 'jax'\n"
        "keras.utils.set_random_seed(0)\n"
        "spec = ArchitectureSpec(layers=(Flatten(), Dense(8)), augmentation=Augmentation(\n"
        "    translation=0.3, rotation=0.2, zoom=0.2))\n"
        "model = compile_model(build_model(spec), spec)\n"
        "assert model.jit_compile is True, model.jit_compile\n"
        "model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),\n"
        "              loss='sparse_categorical_crossentropy')\n"
        "assert model.jit_compile is True\n"
        "rng = np.random.default_rng(0)\n"
        "x, y = rng.random((16, 28, 28, 1), dtype=np.float32), np.arange(16) % 10\n"
        "train = {float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(3)}\n"
        "test = {float(np.ravel(model.test_on_batch(x, y))[0]) for _ in range(3)}\n"
        "assert len(train) == 3 and len(test) == 1, (train, test)\n"
    )
    result = run_on_jax(code)
    assert result.returncode == 0, result.stderr[-2000:]


def test_augmentation_layers_keep_keras_jit_setting_on_tensorflow():
    """On TensorFlow the layers keep Keras' ``supports_jit = False`` (see the builder's mixin)."""
    spec = ArchitectureSpec(layers=(Flatten(), Dense(8)),
                            augmentation=Augmentation(translation=0.1, rotation=0.1, zoom=0.1))
    layers = build_model(spec).layers[1:4]
    assert [type(layer).__name__ for layer in layers] == [
        "RandomTranslation", "RandomRotation", "RandomZoom"]
    assert all(layer.supports_jit is False for layer in layers)


def test_inference_model_keeps_the_weights_not_the_optimizer_state(tmp_path):
    """A trained model's ``.keras`` file holds Adam's two slots per weight; the inference model,
    logged as each trial's MLflow model, holds the weights alone and predicts the same."""
    import os

    from nas_mnist.model.builder import compile_model, inference_model

    spec = ArchitectureSpec(layers=(Conv(8, 3), BatchNorm(), MaxPool(2), Flatten(), Dense(64)))
    model = compile_model(build_model(spec), spec)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    model.fit(x, rng.integers(0, 10, 64), epochs=1, batch_size=32, verbose=0)
    plain = inference_model(spec, model)
    assert getattr(plain, "optimizer", None) is None
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    model.save(tmp_path / "trained.keras")
    plain.save(tmp_path / "plain.keras")
    assert os.path.getsize(tmp_path / "plain.keras") < 0.5 * os.path.getsize(
        tmp_path / "trained.keras")


def test_inference_model_predicts_as_trained_and_loads_without_nas_mnist(tmp_path):
    """A spec with augmentation and label smoothing trains through nas-mnist's registered layers
    and loss; its inference model predicts the same and loads in a process that never imports
    nas-mnist (as ``mlflow.pyfunc.load_model`` does)."""
    import dataclasses
    import subprocess
    import sys

    from nas_mnist.architecture.spec import Augmentation
    from nas_mnist.model.builder import compile_model, inference_model

    spec = dataclasses.replace(
        ArchitectureSpec(layers=(Conv(4, 3), MaxPool(2), Flatten(), Dense(8))),
        augmentation=Augmentation(translation=0.1, zoom=0.1), label_smoothing=0.1)
    model = compile_model(build_model(spec), spec)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    model.fit(x, rng.integers(0, 10, 64), epochs=1, batch_size=32, verbose=0)
    plain = inference_model(spec, model)
    assert plain.count_params() == model.count_params() == spec.num_params
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    plain.save(tmp_path / "plain.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", model.predict(x, verbose=0))
    code = ("import sys, numpy as np, keras\n"
            f"m = keras.saving.load_model({str(tmp_path / 'plain.keras')!r})\n"
            f"p = m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)\n"
            f"assert np.abs(p - np.load({str(tmp_path / 'expected.npy')!r})).max() < 1e-5\n"
            "assert not any(name.startswith('nas_mnist') for name in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
