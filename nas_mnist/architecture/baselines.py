"""The baseline catalog: the 24 hand-built MNIST models of the seed notebooks, as specs.

Each ``Baseline`` is one model cell of a notebook in ``shared/seeds/`` rebuilt in the spec language
(``nas_mnist.architecture.spec``), with the training recipe the notebook used (optimizer, batch
size, epochs),
the test accuracy it printed and its exact parameter count from ``shared/baselines.md``. The
notebooks are the source of truth for the layers; the table is a finding aid and a check
(``baseline.spec.num_params == baseline.documented_params`` for every entry).

The notebooks ran on Keras 2, whose optimizer defaults differ from Keras 3's, so every recipe states
its learning_rate explicitly:

- ``Adadelta()`` meant learning_rate=1.0, rho=0.95, epsilon=1e-7 (Keras 3's default learning_rate
  is 0.001, which barely trains in 12 epochs; rho and epsilon are unchanged).
- ``Adam()`` meant learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7 (as in Keras 3).
- Notebook 004 set Adam's epsilon to 1e-8 (the TensorFlow 1 default) and SGD's learning_rate to 0.5.
- ``Conv2D`` / ``Dense`` default to glorot_uniform kernels and zero biases in both versions, which
  are also the spec's defaults.

This module is plain Python (no TensorFlow/Keras import), so listing or selecting baselines is
cheap.

Example:
    >>> from nas_mnist.architecture.baselines import get_baseline, select_baselines
    >>> get_baseline("s002_m9").spec.num_params
    3210378
    >>> [b.name for b in select_baselines("s000_m1,s004_cnn")]
    ['s000_m1', 's004_cnn']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nas_mnist.architecture.spec import (
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

__all__ = ["BASELINES", "BASELINE_NAMES", "Baseline", "get_baseline", "select_baselines"]


@dataclass(frozen=True)
class Baseline:
    """One documented hand-built model and its training recipe.

    Args:
        name: catalog name, ``s<seed>_<model>``, e.g. "s000_m1".
        source: the notebook and model it was rebuilt from,
            e.g. "seeds/000_975ba8d8c6530e2b.txt, Model 1" (relative to ``shared/``).
        description: a short description, from ``shared/baselines.md``.
        spec: the layers, output layer, optimizer and batch size (in images).
        epochs: number of training epochs the notebook ran.
        reported_test_accuracy: the test accuracy the notebook printed, as a fraction in [0, 1]
            with the notebook's precision (four digits; three for seed 004, which printed "%.1f%%").
        documented_params: total parameters (trainable + non-trainable) from
            ``shared/baselines.md``; equals ``spec.num_params`` and the built model's
            ``count_params()``.
        notes: how the notebook's protocol differs from a plain train/test run, if it does.
    """

    name: str
    source: str
    description: str
    spec: ArchitectureSpec
    epochs: int
    reported_test_accuracy: float
    documented_params: int
    notes: str = ""


# ---------------------------------------------------------------------------------------------
# Recipes and layer patterns shared by the models of one notebook
# ---------------------------------------------------------------------------------------------

_SEED_000 = "seeds/000_975ba8d8c6530e2b.txt"
_SEED_001 = "seeds/001_fcc322a1ac9baa3d.txt"
_SEED_002 = "seeds/002_863d652e406a0e58.txt"
_SEED_003 = "seeds/003_1451c88bac629d3d.txt"
_SEED_004 = "seeds/004_ee605c3ae73e91a4.txt"

_ADAM_KERAS2 = OptimizerSpec("adam", learning_rate=1e-3)  # keras.optimizers.Adam()
_ADADELTA_KERAS2 = OptimizerSpec("adadelta", learning_rate=1.0)  # keras.optimizers.Adadelta()
# Notebook 004: Adam(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8).
_ADAM_004 = OptimizerSpec("adam", learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
_SGD_004 = OptimizerSpec("sgd", learning_rate=0.5)  # Notebook 004: SGD(lr=0.5).

_HE_NORMAL = Initializer("he_normal")
_GLOROT_NORMAL = Initializer("glorot_normal")
# Notebook 004: TruncatedNormal(mean=0.0, stddev=0.01) kernels, Constant(value=0.1) biases.
_TRUNCATED_NORMAL = Initializer("truncated_normal", (("mean", 0.0), ("stddev", 0.01)))
_CONSTANT_01 = Initializer("constant", (("value", 0.1),))
_ZEROS = Initializer("zeros")

_TEST_AS_VALIDATION = (
    "validation_data=(x_test, y_test) in the notebook: it monitored training on the test set."
)


def _same_pool() -> MaxPool:
    """``MaxPooling2D(pool_size=(2, 2), padding='same')``: halves a map, rounding up."""
    return MaxPool(2, padding="same")


def _he_conv(filters: int, kernel_size: int, padding: str = "valid") -> Conv:
    """Seed 002's ``Conv2D(..., activation='relu', kernel_initializer='he_normal')``."""
    return Conv(filters, kernel_size, padding=padding, kernel_initializer=_HE_NORMAL)


def _glorot_normal_conv(filters: int, kernel_size: int, padding: str = "valid") -> Conv:
    """Seed 003's ``Conv2D(..., activation='relu', kernel_initializer='glorot_normal')``."""
    return Conv(filters, kernel_size, padding=padding, kernel_initializer=_GLOROT_NORMAL)


def _same_stride1_pool() -> MaxPool:
    """Seed 003's ``MaxPooling2D(pool_size=(2, 2), padding='same', strides=1)``: keeps the size."""
    return MaxPool(2, strides=1, padding="same")


def _head_001() -> tuple[Layer, ...]:
    """Seed 001's head: Flatten, Dense(128, relu), BatchNormalization, Dropout(0.7)."""
    return (Flatten(), Dense(128), BatchNorm(), Dropout(0.7))


def _head_002(first_units: int = 512) -> tuple[Layer, ...]:
    """Seed 002's head, shared by all ten models.

    Dropout(0.25), Flatten, then two he_normal dense blocks
    ``Dense(units, relu) -> BatchNormalization -> Dropout(0.5)`` of ``first_units`` and 128 units.
    """
    return (
        Dropout(0.25),
        Flatten(),
        Dense(first_units, kernel_initializer=_HE_NORMAL),
        BatchNorm(),
        Dropout(0.5),
        Dense(128, kernel_initializer=_HE_NORMAL),
        BatchNorm(),
        Dropout(0.5),
    )


def _mlp_layer_004(dropout: bool) -> tuple[Layer, ...]:
    """Seed 004's ``Dense(1500, relu)``, TruncatedNormal(0, 0.01) kernel, Constant(0.1) bias.

    Followed by Dropout(0.5) when ``dropout`` is true (the "MLP with dropout" model).
    """
    dense = Dense(1500, kernel_initializer=_TRUNCATED_NORMAL, bias_initializer=_CONSTANT_01)
    return (dense, Dropout(0.5)) if dropout else (dense,)


def _conv_004(filters: int) -> Conv:
    """Seed 004's ``Conv2D(filters, (5, 5), strides=1, padding='same', relu)``, truncated normal."""
    return Conv(
        filters,
        5,
        padding="same",
        kernel_initializer=_TRUNCATED_NORMAL,
        bias_initializer=_CONSTANT_01,
    )


# One constructor per notebook: the recipe (optimizer, batch size, epochs, output layer, notes) is
# the same for every model of a notebook, so each model below only states what differs.


def _from_000(
    name: str, model: str, description: str, layers: Sequence[Layer], reported: float, params: int
) -> Baseline:
    """Seed 000: Adam(), batch_size 128, 15 epochs, Keras default initializers."""
    return Baseline(
        name=name,
        source=f"{_SEED_000}, {model}",
        description=description,
        spec=ArchitectureSpec(tuple(layers), optimizer=_ADAM_KERAS2, batch_size=128),
        epochs=15,
        reported_test_accuracy=reported,
        documented_params=params,
        notes=_TEST_AS_VALIDATION,
    )


def _from_001(
    name: str,
    model: str,
    description: str,
    layers: Sequence[Layer],
    reported: float,
    params: int,
    notes: str = _TEST_AS_VALIDATION,
) -> Baseline:
    """Seed 001: Adadelta(), batch_size 128, 12 epochs, Keras default initializers."""
    return Baseline(
        name=name,
        source=f"{_SEED_001}, {model}",
        description=description,
        spec=ArchitectureSpec(tuple(layers), optimizer=_ADADELTA_KERAS2, batch_size=128),
        epochs=12,
        reported_test_accuracy=reported,
        documented_params=params,
        notes=notes,
    )


def _from_002(
    name: str,
    model: str,
    description: str,
    layers: Sequence[Layer],
    reported: float,
    params: int,
    notes: str = "",
) -> Baseline:
    """Seed 002: Adadelta(), batch_size 128, 13 epochs, he_normal hidden layers.

    The softmax output layer keeps Keras' default glorot_uniform kernel.
    """
    return Baseline(
        name=name,
        source=f"{_SEED_002}, {model}",
        description=description,
        spec=ArchitectureSpec(tuple(layers), optimizer=_ADADELTA_KERAS2, batch_size=128),
        epochs=13,
        reported_test_accuracy=reported,
        documented_params=params,
        notes=" ".join(x for x in (_TEST_AS_VALIDATION, notes) if x),
    )


def _from_003(
    name: str, model: str, description: str, layers: Sequence[Layer], reported: float, params: int
) -> Baseline:
    """Seed 003: Adam ("adam"), batch_size 200, 10 epochs, glorot_normal everywhere.

    The output layer is ``Dense(10, softmax, kernel_initializer='glorot_normal')`` too.
    """
    output = Dense(10, activation="softmax", kernel_initializer=_GLOROT_NORMAL)
    return Baseline(
        name=name,
        source=f"{_SEED_003}, {model}",
        description=description,
        spec=ArchitectureSpec(tuple(layers), optimizer=_ADAM_KERAS2, batch_size=200, output=output),
        epochs=10,
        reported_test_accuracy=reported,
        documented_params=params,
        notes="validation_split=0.2 in the notebook (trained on 48,000 of the 60,000 training "
        "images, validated on the other 12,000); test accuracy from model.evaluate on the "
        "10,000 test images.",
    )


def _from_004(
    name: str,
    model: str,
    description: str,
    layers: Sequence[Layer],
    reported: float,
    params: int,
    optimizer: OptimizerSpec = _ADAM_004,
    epochs: int = 34,
) -> Baseline:
    """Seed 004: batch_size 100; the softmax output layer keeps Keras' default initializers."""
    return Baseline(
        name=name,
        source=f"{_SEED_004}, {model}",
        description=description,
        spec=ArchitectureSpec(tuple(layers), optimizer=optimizer, batch_size=100),
        epochs=epochs,
        reported_test_accuracy=reported,
        documented_params=params,
        notes="The notebook used the 10,000 test images as its validation set and printed the "
        "final accuracy on them with one decimal ('%.1f%%').",
    )


# ---------------------------------------------------------------------------------------------
# The catalog, in the order of shared/baselines.md
# ---------------------------------------------------------------------------------------------

BASELINES: tuple[Baseline, ...] = (
    # 000, In [3]: Model 1.
    _from_000(
        "s000_m1",
        "Model 1",
        "3 conv (3x3, 5x5, 2x2), 'same' pooling, BN + dropout 0.35",
        (
            Conv(32, 3),
            _same_pool(),
            Conv(64, 5, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(128, 2, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Flatten(),
            Dense(256),
        ),
        reported=0.9927,
        params=612_362,
    ),
    # 000, In [5]: Model 2.
    _from_000(
        "s000_m2",
        "Model 2",
        "5 conv, 'same' pooling after each, BN + dropout 0.35",
        (
            Conv(16, 3, padding="same"),
            _same_pool(),
            Conv(32, 5, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(64, 2, padding="same"),
            _same_pool(),
            Conv(128, 3, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(256, 5, padding="same"),
            _same_pool(),
            Flatten(),
            Dense(512),
            BatchNorm(),
            Dropout(0.35),
        ),
        reported=0.9930,
        params=1_053_962,
    ),
    # 000, In [7]: Model 3 (the first and third pools are 'valid').
    _from_000(
        "s000_m3",
        "Model 3",
        "7 conv up to 474 filters, pool after each, BN + dropout",
        (
            Conv(16, 3),
            MaxPool(2),
            Conv(32, 5, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(64, 2, padding="same"),
            MaxPool(2),
            Conv(128, 3, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(256, 5, padding="same"),
            _same_pool(),
            Conv(384, 7, padding="same"),
            _same_pool(),
            BatchNorm(),
            Dropout(0.35),
            Conv(474, 5, padding="same"),
            _same_pool(),
            Flatten(),
            Dense(512),
            BatchNorm(),
            Dropout(0.35),
        ),
        reported=0.9921,
        params=10_535_268,
    ),
    # 001, In [1]: model1, "Model1: 7x7 Kernel Matrix".
    _from_001(
        "s001_m1",
        "Model1 7x7",
        "3 conv 7x7 'valid', BN + dropout 0.25, dense 128",
        (
            Conv(16, 7),
            BatchNorm(),
            Dropout(0.25),
            Conv(32, 7),
            MaxPool(2),
            BatchNorm(),
            Dropout(0.25),
            Conv(64, 7),
            MaxPool(2),
            BatchNorm(),
            Dropout(0.25),
            *_head_001(),
        ),
        reported=0.9935,
        params=136_906,
        notes=_TEST_AS_VALIDATION + " The cell's printed output is missing from the notebook; "
        "the accuracy is the one in its summary table.",
    ),
    # 001, In [34]: model2, "Model2: 3x3 Kernel Matrix".
    _from_001(
        "s001_m2",
        "Model2 3x3",
        "3 conv 3x3, two with strides 2, dense 128",
        (
            Conv(16, 3),
            BatchNorm(),
            Conv(16, 3, strides=2),
            MaxPool(2),
            Dropout(0.25),
            Conv(32, 3, strides=2),
            MaxPool(2),
            BatchNorm(),
            Dropout(0.25),
            *_head_001(),
        ),
        reported=0.9843,
        params=13_338,
    ),
    # 001, In [13]: model3, "Model3: 2x2 Kernel Matrix".
    _from_001(
        "s001_m3",
        "Model3 2x2",
        "5 conv 2x2, dropout 0.25 after each, dense 128",
        (
            Conv(4, 2),
            Dropout(0.25),
            Conv(8, 2),
            MaxPool(2),
            Dropout(0.25),
            Conv(16, 2),
            MaxPool(2),
            Dropout(0.25),
            Conv(32, 2),
            BatchNorm(),
            Dropout(0.25),
            Conv(64, 2),
            BatchNorm(),
            Dropout(0.25),
            *_head_001(),
        ),
        reported=0.9535,
        params=144_406,
    ),
    # 002, In [5]: Model 1.
    _from_002(
        "s002_m1",
        "Model 1",
        "5x5 no padding",
        (
            _he_conv(32, 5),
            MaxPool(2),
            _he_conv(64, 5),
            MaxPool(2),
            *_head_002(),
        ),
        reported=0.9936,
        params=646_410,
    ),
    # 002, In [8]: Model 2.
    _from_002(
        "s002_m2",
        "Model 2",
        "3x3 no padding",
        (
            _he_conv(32, 3),
            MaxPool(2),
            _he_conv(64, 3),
            MaxPool(2, strides=1),
            _he_conv(128, 3),
            MaxPool(2),
            *_head_002(),
        ),
        reported=0.9940,
        params=1_211_274,
    ),
    # 002, In [11]: Model 3.
    _from_002(
        "s002_m3",
        "Model 3",
        "7x7 no padding",
        (
            _he_conv(32, 7),
            MaxPool(2),
            _he_conv(64, 7),
            MaxPool(2, strides=1),
            *_head_002(),
        ),
        reported=0.9929,
        params=696_330,
    ),
    # 002, In [14]: Model 4.
    _from_002(
        "s002_m4",
        "Model 4",
        "5x5 with padding",
        (
            _he_conv(32, 5, padding="same"),
            MaxPool(2),
            _he_conv(128, 5, padding="same"),
            MaxPool(2),
            _he_conv(256, 3),
            _he_conv(512, 5),
            *_head_002(first_units=256),
        ),
        reported=0.9937,
        params=3_842_890,
    ),
    # 002, In [17]: Model 5.
    _from_002(
        "s002_m5",
        "Model 5",
        "3x3 with padding",
        (
            _he_conv(32, 3, padding="same"),
            MaxPool(2),
            _he_conv(64, 3, padding="same"),
            MaxPool(2),
            _he_conv(128, 3),
            MaxPool(2, strides=1),
            *_head_002(),
        ),
        reported=0.9938,
        params=1_211_274,
    ),
    # 002, In [20]: Model 6.
    _from_002(
        "s002_m6",
        "Model 6",
        "7x7 with padding",
        (
            _he_conv(64, 7, padding="same"),
            MaxPool(2),
            _he_conv(256, 7, padding="same"),
            MaxPool(2),
            _he_conv(512, 7),
            *_head_002(first_units=256),
        ),
        reported=0.9938,
        params=7_396_362,
    ),
    # 002, In [23]: Model 7.
    _from_002(
        "s002_m7",
        "Model 7",
        "maxpool every 2 conv (5x5, 3x3, 5x5, 3x3)",
        (
            _he_conv(32, 5),
            _he_conv(64, 3),
            MaxPool(2),
            _he_conv(128, 5),
            _he_conv(256, 3),
            MaxPool(2, strides=1),
            *_head_002(),
        ),
        reported=0.9948,
        params=2_686_602,
    ),
    # 002, In [26]: Model 8 (both pools have stride 2, as the cell and its summary show).
    _from_002(
        "s002_m8",
        "Model 8",
        "maxpool every 2 conv (5x5, 5x5, 3x3, 3x3)",
        (
            _he_conv(32, 5, padding="same"),
            _he_conv(64, 5),
            MaxPool(2),
            _he_conv(128, 3),
            _he_conv(256, 3),
            MaxPool(2),
            *_head_002(),
        ),
        reported=0.9951,
        params=2_588_298,
    ),
    # 002, In [29]: Model 9, the best of all 24.
    _from_002(
        "s002_m9",
        "Model 9",
        "maxpool every 2 conv (3x3, 3x3, 5x5, 5x5)",
        (
            _he_conv(32, 3, padding="same"),
            _he_conv(64, 3),
            MaxPool(2),
            _he_conv(128, 5),
            _he_conv(256, 5),
            MaxPool(2, strides=1),
            *_head_002(),
        ),
        reported=0.9954,
        params=3_210_378,
    ),
    # 002, In [37]: Model 10, a functional model with an inception-like stem.
    _from_002(
        "s002_m10",
        "Model 10",
        "inception-like stem: 4 parallel branches, concatenated",
        (
            Branches(
                (
                    (_he_conv(32, 1, padding="same"),),
                    (_he_conv(32, 3, padding="same"),),
                    (_he_conv(32, 5, padding="same"),),
                    (_he_conv(32, 1, padding="same"), MaxPool(3, strides=1, padding="same")),
                )
            ),
            _he_conv(256, 7),
            MaxPool(2),
            _he_conv(512, 5),
            _he_conv(1024, 5),
            _he_conv(2048, 3),
            *_head_002(),
        ),
        reported=0.9944,
        params=37_987_722,
        notes="The cell has typos (c15/cl5, l1/11, ...) but its summary fixes the graph: branches "
        "concatenated in the order 1x1, 3x3, 5x5, 1x1 + 3x3 max pool.",
    ),
    # 003, 4.1.1: three conv layers, a pool after each.
    _from_003(
        "s003_m1",
        "4.1",
        "3 conv 3x3, pool after each, dense 128",
        (
            _glorot_normal_conv(32, 3),
            MaxPool(2),
            _glorot_normal_conv(64, 3),
            MaxPool(2),
            _glorot_normal_conv(96, 3),
            MaxPool(2),
            Flatten(),
            Dense(128, kernel_initializer=_GLOROT_NORMAL),
        ),
        reported=0.9863,
        params=87_914,
    ),
    # 003, 4.2.1: five conv layers 5x5.
    _from_003(
        "s003_m2",
        "4.2",
        "5 conv 5x5, pool after each, dense 128",
        (
            _glorot_normal_conv(32, 5),
            MaxPool(2),
            _glorot_normal_conv(56, 5),
            MaxPool(2),
            _glorot_normal_conv(68, 5, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(80, 5, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(92, 5, padding="same"),
            _same_stride1_pool(),
            Flatten(),
            Dense(128, kernel_initializer=_GLOROT_NORMAL),
        ),
        reported=0.9921,
        params=650_962,
    ),
    # 003, 4.3.1: seven conv layers, five 2x2 and two 5x5.
    _from_003(
        "s003_m3",
        "4.3",
        "7 conv (five 2x2, two 5x5), pool after each, dense 128",
        (
            _glorot_normal_conv(16, 2),
            MaxPool(2),
            _glorot_normal_conv(32, 2),
            MaxPool(2),
            _glorot_normal_conv(44, 2, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(56, 2, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(68, 2, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(80, 5, padding="same"),
            _same_stride1_pool(),
            _glorot_normal_conv(92, 5, padding="same"),
            _same_stride1_pool(),
            Flatten(),
            Dense(128, kernel_initializer=_GLOROT_NORMAL),
        ),
        reported=0.9893,
        params=778_574,
    ),
    # 003, 4.4.1: three conv layers, one pool, dropout 0.5 around the dense layer.
    _from_003(
        "s003_m4",
        "4.4",
        "3 conv 3x3, one pool, dropout 0.5, dense 128",
        (
            _glorot_normal_conv(32, 3),
            _glorot_normal_conv(64, 3),
            _glorot_normal_conv(96, 3),
            MaxPool(2),
            Flatten(),
            Dropout(0.5),
            Dense(128, kernel_initializer=_GLOROT_NORMAL),
            Dropout(0.5),
        ),
        reported=0.9901,
        params=1_562_474,
    ),
    # 004, [10]: the linear model (its input is the flattened 784-pixel image).
    _from_004(
        "s004_linear",
        "linear model",
        "784 -> 10 linear -> 10 softmax, zero init",
        (
            Flatten(),
            Dense(10, activation="linear", kernel_initializer=_ZEROS, bias_initializer=_ZEROS),
        ),
        reported=0.916,
        params=7_960,
        optimizer=_SGD_004,
        epochs=17,
    ),
    # 004, [13]: MLP, three hidden layers of 1500 relu units.
    _from_004(
        "s004_mlp",
        "MLP",
        "MLP 3x1500 relu",
        (
            Flatten(),
            *_mlp_layer_004(dropout=False),
            *_mlp_layer_004(dropout=False),
            *_mlp_layer_004(dropout=False),
        ),
        reported=0.984,
        params=5_695_510,
    ),
    # 004, [15]: the same MLP with Dropout(0.5) after each hidden layer.
    _from_004(
        "s004_mlp_dropout",
        "MLP with dropout",
        "MLP 3x1500 relu + dropout 0.5",
        (
            Flatten(),
            *_mlp_layer_004(dropout=True),
            *_mlp_layer_004(dropout=True),
            *_mlp_layer_004(dropout=True),
        ),
        reported=0.984,
        params=5_695_510,
    ),
    # 004, [16]: CNN; MaxPooling2D(pool_size=(2, 2), strides=(2, 2), padding='same').
    _from_004(
        "s004_cnn",
        "CNN",
        "2 conv 5x5 'same' (32, 64), 'same' pool 2, dense 10",
        (
            _conv_004(32),
            _same_pool(),
            _conv_004(64),
            _same_pool(),
            Flatten(),
        ),
        reported=0.992,
        params=83_466,
    ),
)

BASELINE_NAMES: tuple[str, ...] = tuple(b.name for b in BASELINES)
"""The catalog's names, in the order of ``shared/baselines.md``."""

_BY_NAME: dict[str, Baseline] = {b.name: b for b in BASELINES}


def get_baseline(name: str) -> Baseline:
    """The baseline called ``name``.

    Args:
        name: a catalog name, e.g. "s002_m9".

    Returns:
        The ``Baseline``.

    Raises:
        ValueError: ``name`` is not in the catalog; the message lists the valid names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose from: {', '.join(BASELINE_NAMES)}"
        ) from None


def select_baselines(selection: str) -> tuple[Baseline, ...]:
    """The baselines a command-line selection names.

    Args:
        selection: "all" (every baseline, in catalog order), "none" (no baseline), or a
            comma-separated list of names such as "s000_m1,s002_m9" (kept in the given order,
            duplicates dropped, blanks around names ignored). "all"/"none" are case-insensitive.

    Returns:
        The selected baselines.

    Raises:
        ValueError: a name is not in the catalog, the list is empty, or "all"/"none" is mixed
            with names; the message says what was expected.
    """
    keyword = selection.strip().lower()
    if keyword == "all":
        return BASELINES
    if keyword == "none":
        return ()
    names = [part.strip() for part in selection.split(",") if part.strip()]
    if not names:
        raise ValueError(
            f"empty baseline selection {selection!r}; use 'all', 'none' or "
            f"comma-separated names from: {', '.join(BASELINE_NAMES)}"
        )
    if any(name.lower() in ("all", "none") for name in names):
        raise ValueError(
            f"baseline selection {selection!r} mixes 'all'/'none' with names; "
            "use 'all', 'none', or a list of names alone"
        )
    chosen: dict[str, Baseline] = {}
    for name in names:
        if name not in _BY_NAME:
            raise ValueError(f"unknown baseline {name!r}; choose from: {', '.join(BASELINE_NAMES)}")
        chosen.setdefault(name, _BY_NAME[name])
    return tuple(chosen.values())
