"""Turn an ``ArchitectureSpec`` into a ``keras.Model``.

Only ``keras.layers`` / ``keras.optimizers`` are used (no ``tf.*`` calls), so the same code runs
with ``KERAS_BACKEND=tensorflow`` (the default) and ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

from typing import Any

import keras

from nas_mnist.architecture.spec import (
    INPUT_SHAPE,
    ArchitectureSpec,
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


def build_model(spec: ArchitectureSpec, name: str | None = None) -> keras.Model:
    """Build the (uncompiled) functional model that ``spec`` describes.

    Args:
        spec: a validated spec.
        name: Keras model name; defaults to ``"nas_mnist_<spec_id>"``.

    Returns:
        A ``keras.Model`` mapping float32 images (batch, 28, 28, 1) in [0, 1] to (batch, 10)
        softmax class probabilities. ``model.count_params() == spec.num_params``.
    """
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
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


def build_optimizer(optimizer: OptimizerSpec) -> keras.optimizers.Optimizer:
    """The Keras optimizer for ``optimizer`` (unset fields take Keras 3's defaults)."""
    cls = getattr(keras.optimizers, _OPTIMIZER_CLASSES[optimizer.name])
    return cls(**optimizer.keras_arguments())


def compile_model(
    model: keras.Model, spec: ArchitectureSpec, steps_per_execution: int = 1
) -> keras.Model:
    """Compile ``model`` with the spec's optimizer, sparse categorical cross-entropy and accuracy.

    Sparse labels (int32 class ids 0..9) give the same loss as the notebooks' one-hot
    ``categorical_crossentropy`` without materialising one-hot arrays. XLA is left to Keras'
    ``jit_compile="auto"``, which turns it off on CPU-only TensorFlow (where it was about 7 times
    slower here) and on for JAX.
    """
    model.compile(
        optimizer=build_optimizer(spec.optimizer),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model
