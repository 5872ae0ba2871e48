"""Turn an ``ArchitectureSpec`` into a ``keras.Model``.

Only ``keras.layers`` / ``keras.optimizers`` are used (no ``tf.*`` calls), so the same code runs
with ``KERAS_BACKEND=tensorflow`` (the default) and ``KERAS_BACKEND=jax``.

A spec with augmentation or label smoothing uses classes defined here (registered with Keras as
``nas_mnist>RandomTranslation``, ...): import this module before ``keras.saving.load_model``
reads such a ``.keras`` file. Exported SavedModels need nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from nas_mnist.architecture.spec import (
    INPUT_SHAPE,
    ArchitectureSpec,
    Augmentation,
    BatchNorm,
    Branches,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Initializer,
    Layer,
    MaxPool,
    OptimizerSpec,
)

_OPTIMIZER_CLASSES = {
    "adam": "Adam",
    "adadelta": "Adadelta",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
}


def keras_initializer(init: Initializer) -> keras.initializers.Initializer:
    """A Keras initializer instance for a spec ``Initializer`` (``keras.initializers.get``)."""
    if not init.arguments:
        return keras.initializers.get(init.name)
    return keras.initializers.get({"class_name": init.name, "config": dict(init.arguments)})


def _apply(layer: Layer, x: Any) -> Any:
    if isinstance(layer, Conv):
        return keras.layers.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            activation=layer.activation,
            kernel_initializer=keras_initializer(layer.kernel_initializer),
            bias_initializer=keras_initializer(layer.bias_initializer),
        )(x)
    if isinstance(layer, MaxPool):
        return keras.layers.MaxPooling2D(
            layer.pool_size, strides=layer.strides, padding=layer.padding
        )(x)
    if isinstance(layer, BatchNorm):
        return keras.layers.BatchNormalization()(x)
    if isinstance(layer, Dropout):
        return keras.layers.Dropout(layer.rate)(x)
    if isinstance(layer, Flatten):
        return keras.layers.Flatten()(x)
    if isinstance(layer, Dense):
        return keras.layers.Dense(
            layer.units,
            activation=layer.activation,
            kernel_initializer=keras_initializer(layer.kernel_initializer),
            bias_initializer=keras_initializer(layer.bias_initializer),
        )(x)
    if isinstance(layer, Branches):
        outputs = []
        for branch in layer.branches:
            y = x
            for sub in branch:
                y = _apply(sub, y)
            outputs.append(y)
        return keras.layers.Concatenate(axis=-1)(outputs)
    raise TypeError(f"unknown layer {layer!r}")


FILL_VALUE = 0.0
"""What augmentation fills uncovered pixels with: MNIST's background (0 after scaling to [0, 1])."""


class _TrainingOnlyAugmentation:
    """Mixin for Keras' random image layers: identity unless called in training, and XLA-ready
    on JAX.

    Keras 3's random image layers default to ``training=True`` in ``call``: a model called
    without ``training`` (``model(x)``, ``model.export``'s serving function, a reloaded
    ``.keras`` model) would augment. These subclasses default to ``training=False``; ``fit``
    still passes ``training=True`` through the call context, and ``predict``/``evaluate`` pass
    False.

    Keras 3.15 also sets ``supports_jit = False`` on RandomTranslation, RandomRotation and
    RandomZoom, and one such layer turns XLA off for the whole model (``jit_compile="auto"``).
    On JAX that trains op by op: ``s002_m1`` with the final recipe's augmentation took over 20 s
    per epoch on an H200, and 0.65 s with XLA (docs/benchmarks.md, section 5). On JAX the
    layers are ``jax.numpy`` code (``jax.scipy.ndimage.map_coordinates``) that XLA compiles, so
    ``supports_jit`` is restored there. TensorFlow keeps Keras' setting: it uses XLA only on a
    GPU, and its ``ImageProjectiveTransformV3`` op has not been tried under XLA here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if keras.backend.backend() == "jax":
            self.supports_jit = True

    def call(self, data: Any, training: bool = False) -> Any:
        return super().call(data, training=training)


@keras.saving.register_keras_serializable(package="nas_mnist")
class RandomTranslation(_TrainingOnlyAugmentation, keras.layers.RandomTranslation):
    """``keras.layers.RandomTranslation``, identity unless called in training (see the mixin)."""


@keras.saving.register_keras_serializable(package="nas_mnist")
class RandomRotation(_TrainingOnlyAugmentation, keras.layers.RandomRotation):
    """``keras.layers.RandomRotation``, identity unless called in training (see the mixin)."""


@keras.saving.register_keras_serializable(package="nas_mnist")
class RandomZoom(_TrainingOnlyAugmentation, keras.layers.RandomZoom):
    """``keras.layers.RandomZoom``, identity unless called in training (see the mixin)."""


def augmentation_layers(augmentation: Augmentation) -> list[keras.layers.Layer]:
    """Keras preprocessing layers for the non-zero factors of ``augmentation``.

    RandomTranslation, RandomRotation and RandomZoom (in that order; the subclasses above, which
    are identity unless called in training), each filling with ``FILL_VALUE`` (Keras' default
    fill_mode is "reflect", which would mirror strokes into the border). They have no weights, so
    evaluation, ``predict``, ``model(x)`` and exported models see the images unchanged. Their
    random draws come from Keras' global seed (``keras.utils.set_random_seed``).
    """
    fill = {"fill_mode": "constant", "fill_value": FILL_VALUE}
    layers: list[keras.layers.Layer] = []
    if augmentation.translation:
        layers.append(RandomTranslation(
            augmentation.translation, augmentation.translation, name="random_translation", **fill
        ))
    if augmentation.rotation:
        layers.append(RandomRotation(augmentation.rotation, name="random_rotation", **fill))
    if augmentation.zoom:
        layers.append(RandomZoom(augmentation.zoom, name="random_zoom", **fill))
    return layers


def build_model(spec: ArchitectureSpec, name: str | None = None) -> keras.Model:
    """Build the (uncompiled) functional model that ``spec`` describes.

    Args:
        spec: a validated spec.
        name: Keras model name; defaults to ``"nas_mnist_<spec_id>"``.

    Returns:
        A ``keras.Model`` mapping float32 images (batch, 28, 28, 1) in [0, 1] to (batch, 10)
        softmax class probabilities. ``model.count_params() == spec.num_params``. With
        ``spec.augmentation`` enabled, augmentation layers follow the input; they act only in
        training (``augmentation_layers``).
    """
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for layer in augmentation_layers(spec.augmentation):
        x = layer(x)
    layers = list(spec.layers)
    if not any(isinstance(layer, Flatten) for layer in layers):
        layers.append(Flatten())
    for layer in layers:
        x = _apply(layer, x)
    outputs = _apply(spec.output, x)
    if keras.config.dtype_policy().compute_dtype != "float32":
        # Mixed precision: softmax and loss in float32 (Keras' mixed precision guide).
        outputs = keras.layers.Activation("linear", dtype="float32", name="float32_output")(
            outputs
        )
    return keras.Model(inputs, outputs, name=name or f"nas_mnist_{spec.spec_id}")


_AUGMENTATION_TYPES = (RandomTranslation, RandomRotation, RandomZoom)


def inference_model(spec: ArchitectureSpec, model: keras.Model) -> keras.Model:
    """``model`` for serving: the same weights without what only training uses.

    Always a fresh model built from the spec without augmentation layers (identity at inference
    anyway) and not compiled: no loss (a spec with label smoothing trains through nas-mnist's
    registered loss, which a plain ``keras.saving.load_model``, e.g. ``mlflow.pyfunc.load_model``
    in a process that never imported nas-mnist, cannot rebuild) and no optimizer state (Adam's
    two slots per weight made a trained model's ``.keras`` file 3 times its weights: 14.6 MB
    against 4.9 MB for ``s002_m2``). It gets ``model``'s weights layer by layer (batch-norm
    statistics included) and predicts exactly as ``model``.

    Args:
        spec: the spec ``model`` was built from.
        model: the trained model (``build_model(spec)``).

    Returns:
        An uncompiled ``keras.Model`` with the same input, output and predictions.
    """
    plain = build_model(dataclasses.replace(spec, augmentation=Augmentation()), name=model.name)
    trained = [layer for layer in model.layers if not isinstance(layer, _AUGMENTATION_TYPES)]
    for target, source in zip(plain.layers, trained, strict=True):
        target.set_weights(source.get_weights())
    return plain


def build_optimizer(
    optimizer: OptimizerSpec,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
) -> keras.optimizers.Optimizer:
    """The Keras optimizer for ``optimizer`` (unset fields take Keras 3's defaults).

    Args:
        optimizer: the spec's optimizer.
        learning_rate: replaces ``optimizer.learning_rate`` when given, e.g. by a schedule
            (``nas_mnist.model.training.learning_rate_for``).
    """
    cls = getattr(keras.optimizers, _OPTIMIZER_CLASSES[optimizer.name])
    arguments: dict[str, Any] = dict(optimizer.keras_arguments())
    if learning_rate is not None:
        arguments["learning_rate"] = learning_rate
    return cls(**arguments)


@keras.saving.register_keras_serializable(package="nas_mnist")
class SparseCategoricalCrossentropyWithLabelSmoothing(keras.losses.Loss):
    """Categorical cross-entropy on int class ids, with label smoothing.

    Keras 3's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this loss one-hot
    encodes the labels inside the loss and calls ``keras.losses.categorical_crossentropy`` with
    it, so the input pipelines keep feeding int32 labels. The target puts
    1 - label_smoothing + label_smoothing / 10 on the true class and label_smoothing / 10 on each
    other class (Szegedy et al. 2016, arXiv:1512.00567).

    Args:
        label_smoothing: in [0, 1).
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        name: str = "sparse_categorical_crossentropy_with_label_smoothing",
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def build_loss(spec: ArchitectureSpec) -> str | keras.losses.Loss:
    """The training loss: sparse categorical cross-entropy, label-smoothed when the spec says."""
    if spec.label_smoothing:
        return SparseCategoricalCrossentropyWithLabelSmoothing(spec.label_smoothing)
    return "sparse_categorical_crossentropy"


def compile_model(
    model: keras.Model,
    spec: ArchitectureSpec,
    steps_per_execution: int = 1,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
) -> keras.Model:
    """Compile ``model`` with the spec's optimizer, sparse categorical cross-entropy and accuracy.

    Sparse labels (int32 class ids 0..9) give the same loss as the notebooks' one-hot
    ``categorical_crossentropy`` without materialising one-hot arrays; ``spec.label_smoothing``
    smooths the targets (``build_loss``), so loss and val_loss are then the smoothed
    cross-entropy. XLA is left to Keras' ``jit_compile="auto"``, which turns it off on CPU-only
    TensorFlow (where it was about 7 times slower here) and on for JAX.

    Args:
        model: the model to compile.
        spec: its spec (optimizer, label_smoothing).
        steps_per_execution: Keras' ``steps_per_execution``.
        learning_rate: replaces the optimizer's learning_rate, e.g. with a schedule; ``None``
            keeps ``spec.optimizer.learning_rate``.
    """
    model.compile(
        optimizer=build_optimizer(spec.optimizer, learning_rate),
        loss=build_loss(spec),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model
