"""The architecture spec: one frozen, JSON-serialisable language for an MNIST model.

Everyone speaks it: the search space produces specs, the baseline catalog is a list of specs, the
builder turns a spec into a ``keras.Model``, MLflow logs a spec's flat params and an exported model
ships its spec as JSON. This module is plain Python (no TensorFlow/Keras import), so shape
arithmetic and parameter counts are known before any model is built.

A spec is a stack of layers applied to a 28x28x1 image, followed by an output layer of 10 units:

    ArchitectureSpec(
        layers=(Conv(32, 3), MaxPool(2), BatchNorm(), Dropout(0.25), Flatten(), Dense(128)),
        optimizer=OptimizerSpec("adam", learning_rate=1e-3),
        batch_size=128,
    )

Layer fields use Keras' own argument names (filters, kernel_size, strides, padding, units, rate).
Round trips are exact: ``ArchitectureSpec.from_dict(spec.to_dict()) == spec``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from nas_mnist.errors import InputError

INPUT_SHAPE: tuple[int, int, int] = (28, 28, 1)
"""MNIST images: 28x28 pixels, one channel (LeCun et al., the MNIST database)."""
NUM_CLASSES = 10

PADDINGS = ("valid", "same")
ACTIVATIONS = ("relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid", "linear", "softmax")
OPTIMIZERS = ("adam", "adadelta", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "reduce_on_plateau")
"""Learning-rate schedules: the optimizer's fixed learning_rate; cosine decay to 0 over the whole
training (Loshchilov & Hutter 2017, SGDR, arXiv:1608.03983, without restarts); halve on a val_loss
plateau (``keras.callbacks.ReduceLROnPlateau``)."""
MAX_AUGMENTATION = 0.5
"""Upper bound of each augmentation factor (half the image, half a turn, +-50% zoom)."""


class SpecError(InputError):
    """A spec is malformed or describes an impossible architecture.

    The message says which layer is wrong and how to fix it.
    """


@dataclass(frozen=True)
class Initializer:
    """A Keras initializer by name, with optional numeric arguments.

    JSON form: the bare name (``"he_normal"``) when there are no arguments, else an object
    ``{"name": "truncated_normal", "stddev": 0.01}``. Names are Keras 3 identifiers
    (``keras.initializers.get``).

    Args:
        name: Keras initializer identifier, e.g. "glorot_uniform", "he_normal", "zeros",
            "truncated_normal", "constant".
        arguments: sorted (argument, value) pairs passed to the initializer, e.g.
            (("mean", 0.0), ("stddev", 0.01)).
    """

    name: str
    arguments: tuple[tuple[str, float | str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"initializer name must be a non-empty string, got {self.name!r}")
        object.__setattr__(
            self,
            "arguments",
            tuple(
                sorted((str(k), v if isinstance(v, str) else float(v)) for k, v in self.arguments)
            ),
        )

    def to_json(self) -> str | dict[str, Any]:
        if not self.arguments:
            return self.name
        return {"name": self.name, **dict(self.arguments)}

    @classmethod
    def from_json(cls, value: str | Mapping[str, Any] | Initializer) -> Initializer:
        if isinstance(value, Initializer):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and "name" in value:
            return cls(value["name"], tuple((k, v) for k, v in value.items() if k != "name"))
        raise SpecError(f"an initializer is a name or an object with 'name', got {value!r}")

    def __str__(self) -> str:
        if not self.arguments:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={v:g}" for k, v in self.arguments) + ")"


def _initializer_field(default: str) -> Any:
    return field(default=Initializer(default))


def _coerce_initializers(layer: Any) -> None:
    """Accept initializer names or JSON objects in place of ``Initializer`` instances."""
    for name in ("kernel_initializer", "bias_initializer"):
        value = getattr(layer, name)
        if not isinstance(value, Initializer):
            object.__setattr__(layer, name, Initializer.from_json(value))


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution (``keras.layers.Conv2D``) with square kernel and strides.

    Defaults are Keras 3's Conv2D defaults, except the activation (relu, as in every notebook).
    """

    filters: int
    kernel_size: int
    strides: int = 1
    padding: str = "valid"
    activation: str = "relu"
    kernel_initializer: Initializer = _initializer_field("glorot_uniform")
    bias_initializer: Initializer = _initializer_field("zeros")
    type: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        _coerce_initializers(self)


@dataclass(frozen=True)
class MaxPool:
    """Max pooling (``keras.layers.MaxPooling2D``); ``strides=None`` means ``pool_size`` (Keras)."""

    pool_size: int = 2
    strides: int | None = None
    padding: str = "valid"
    type: ClassVar[str] = "max_pool"


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation (``keras.layers.BatchNormalization``): 4 params per channel."""

    type: ClassVar[str] = "batch_norm"


@dataclass(frozen=True)
class Dropout:
    """Dropout with ``rate`` in [0, 1)."""

    rate: float
    type: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        if isinstance(self.rate, int) and not isinstance(self.rate, bool):
            object.__setattr__(self, "rate", float(self.rate))


@dataclass(frozen=True)
class Flatten:
    """Flattens the feature map to a vector (needed before the first Dense layer)."""

    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Dense:
    """A fully connected layer (``keras.layers.Dense``)."""

    units: int
    activation: str = "relu"
    kernel_initializer: Initializer = _initializer_field("glorot_uniform")
    bias_initializer: Initializer = _initializer_field("zeros")
    type: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _coerce_initializers(self)


@dataclass(frozen=True)
class Branches:
    """Parallel paths from one input, concatenated on the channel axis (an inception-like stem).

    Each branch is a tuple of Conv / MaxPool / BatchNorm / Dropout layers; all branches must end at
    the same spatial size. Used by baseline s002_m10 (four branches: 1x1, 3x3, 5x5 conv and a 1x1
    conv followed by 3x3 max pooling with stride 1).
    """

    branches: tuple[tuple[Layer, ...], ...]
    type: ClassVar[str] = "branches"

    def __post_init__(self) -> None:
        if isinstance(self.branches, (list, tuple)):
            object.__setattr__(
                self,
                "branches",
                tuple(tuple(b) if isinstance(b, (list, tuple)) else b for b in self.branches),
            )


Layer = Conv | MaxPool | BatchNorm | Dropout | Flatten | Dense | Branches
LAYER_TYPES: dict[str, type] = {
    cls.type: cls for cls in (Conv, MaxPool, BatchNorm, Dropout, Flatten, Dense, Branches)
}
_SPATIAL_TYPES = (Conv, MaxPool, Branches)
_BRANCH_LAYER_TYPES = (Conv, MaxPool, BatchNorm, Dropout)


@dataclass(frozen=True)
class Augmentation:
    """Random data augmentation applied to training images inside the model.

    Each factor is the ``factor`` argument of a Keras 3 preprocessing layer, which draws a value
    uniformly in ``[-factor, factor]`` per image; the layers are identity at inference, so
    evaluation, prediction and exported models are unaffected. All zeros means no augmentation.

    Args:
        translation: shift, as a fraction of the image height and width
            (``keras.layers.RandomTranslation(height_factor, width_factor)``), in [0, 0.5].
        rotation: rotation, as a fraction of a full turn (2 pi) (``keras.layers.RandomRotation``),
            in [0, 0.5]; 0.05 means up to +-18 degrees.
        zoom: zoom in or out, as a fraction of the image size (``keras.layers.RandomZoom``'s
            height_factor; the width follows, keeping the aspect ratio), in [0, 0.5].
    """

    translation: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0

    def __post_init__(self) -> None:
        for name in ("translation", "rotation", "zoom"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))

    @property
    def enabled(self) -> bool:
        """True when any factor is non-zero."""
        return any((self.translation, self.rotation, self.zoom))

    def to_dict(self) -> dict[str, float]:
        """The non-zero factors (an empty dict means no augmentation)."""
        return {k: v for k, v in _fields(self).items() if v != 0}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Augmentation) -> Augmentation:
        """Inverse of ``to_dict``; missing factors are 0.

        Raises:
            SpecError: not an object, or unknown keys.
        """
        if isinstance(data, Augmentation):
            return data
        if not isinstance(data, Mapping):
            raise SpecError(f"augmentation is an object of factors, got {data!r}")
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise SpecError(
                f"augmentation: unknown key(s) {sorted(set(data) - known)}; "
                f"expected {sorted(known)}"
            )
        return cls(**data)

    def __str__(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.to_dict().items()) or "none"


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer and its learning_rate; other fields ``None`` mean Keras 3's default.

    Note: Keras 2's ``Adadelta()`` meant learning_rate=1.0 (Keras 3's default is 0.001), so a spec
    always states learning_rate explicitly.

    Args:
        name: one of "adam", "adadelta", "sgd", "rmsprop".
        learning_rate: step size, > 0.
        momentum: SGD / RMSprop momentum in [0, 1).
        rho: Adadelta / RMSprop decay in (0, 1).
        beta_1, beta_2: Adam moment decays in (0, 1).
        epsilon: numerical stability constant, > 0.
    """

    name: str
    learning_rate: float
    momentum: float | None = None
    rho: float | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None

    def __post_init__(self) -> None:
        # Store numbers as floats, so that equal specs have equal JSON and spec_id (1 == 1.0).
        for f in ("learning_rate", "momentum", "rho", "beta_1", "beta_2", "epsilon"):
            value = getattr(self, f)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f, float(value))

    def keras_arguments(self) -> dict[str, float]:
        """Keyword arguments for the Keras optimizer class (only the fields that are set)."""
        out = {"learning_rate": self.learning_rate}
        for f in ("momentum", "rho", "beta_1", "beta_2", "epsilon"):
            value = getattr(self, f)
            if value is not None:
                out[f] = value
        return out


# ---------------------------------------------------------------------------------------------
# Shape arithmetic
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShape:
    """One row of a spec's shape table: a layer, its output shape and its parameter count.

    ``shape`` is (height, width, channels) for feature maps and (units,) for vectors.
    """

    index: int
    description: str
    shape: tuple[int, ...]
    params: int


def _out_size(size: int, window: int, strides: int, padding: str) -> int:
    """Keras' output length of a conv/pool window (same: ceil(n/s); valid: floor((n-k)/s)+1)."""
    if padding == "same":
        return math.ceil(size / strides)
    return (size - window) // strides + 1


def _describe(layer: Layer) -> str:
    if isinstance(layer, Conv):
        stride = f"/{layer.strides}" if layer.strides != 1 else ""
        return (
            f"conv {layer.filters} {layer.kernel_size}x{layer.kernel_size}{stride} {layer.padding}"
        )
    if isinstance(layer, MaxPool):
        strides = layer.strides or layer.pool_size
        return f"max_pool {layer.pool_size}x{layer.pool_size}/{strides} {layer.padding}"
    if isinstance(layer, Dropout):
        return f"dropout {layer.rate:g}"
    if isinstance(layer, Dense):
        return f"dense {layer.units} {layer.activation}"
    if isinstance(layer, Branches):
        return (
            "branches["
            + " | ".join(", ".join(_describe(x) for x in b) for b in layer.branches)
            + "]"
        )
    return layer.type


def _apply(
    layer: Layer, shape: tuple[int, ...], where: str, trail: list[str]
) -> tuple[tuple[int, ...], int]:
    """Output shape and parameter count of ``layer`` on input ``shape``; raises SpecError."""
    if isinstance(layer, (Conv, MaxPool)):
        if len(shape) != 3:
            raise SpecError(
                f"{where} ({_describe(layer)}) comes after Flatten/Dense; "
                "put conv and pooling layers before Flatten"
            )
        h, w, c = shape
        window = layer.kernel_size if isinstance(layer, Conv) else layer.pool_size
        strides = layer.strides or window
        out_h, out_w = (
            _out_size(h, window, strides, layer.padding),
            _out_size(w, window, strides, layer.padding),
        )
        if out_h <= 0 or out_w <= 0:
            chain = " -> ".join([*trail, str(max(out_h, 0))])
            raise SpecError(
                f"{where} ({_describe(layer)}) reduces the feature map to "
                f"{max(out_h, 0)}x{max(out_w, 0)} ({chain}); use padding='same', "
                "smaller kernels, or fewer pools"
            )
        if isinstance(layer, Conv):
            return (out_h, out_w, layer.filters), (window * window * c + 1) * layer.filters
        return (out_h, out_w, c), 0
    if isinstance(layer, BatchNorm):
        return shape, 4 * shape[-1]
    if isinstance(layer, (Dropout,)):
        return shape, 0
    if isinstance(layer, Flatten):
        return (math.prod(shape),), 0
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise SpecError(f"{where} (dense) needs a vector input; put a Flatten layer before it")
        return (layer.units,), (shape[0] + 1) * layer.units
    if isinstance(layer, Branches):
        if len(shape) != 3:
            raise SpecError(f"{where} (branches) comes after Flatten/Dense; put it before Flatten")
        outs, params = [], 0
        for b, branch in enumerate(layer.branches):
            s = shape
            for j, sub in enumerate(branch):
                s, p = _apply(sub, s, f"{where} branch {b + 1} layer {j + 1}", [*trail])
                params += p
            outs.append(s)
        if len({s[:2] for s in outs}) != 1:
            sizes = ", ".join(f"{s[0]}x{s[1]}" for s in outs)
            raise SpecError(
                f"{where} (branches) ends its branches at different sizes ({sizes}); "
                "use padding='same' and stride 1 inside branches"
            )
        return (outs[0][0], outs[0][1], sum(s[2] for s in outs)), params
    raise SpecError(f"{where}: unknown layer {layer!r}")


def apply_layer(layer: Layer, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Output shape and parameter count of ``layer`` applied to an input of ``shape``.

    ``shape`` is (height, width, channels) for feature maps and (units,) for vectors, as in
    ``LayerShape``; a ``Branches`` block gives its concatenated output. Used to walk the layers
    inside a block (``ArchitectureSpec.shape_table`` shows only the block's output).

    Raises:
        SpecError: the layer cannot be applied to ``shape``.
    """
    return _apply(layer, shape, "layer", [str(shape[0])])


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchitectureSpec:
    """A whole model and its training recipe, validated when made.

    Args:
        layers: the body, applied in order to the (28, 28, 1) input. Conv/MaxPool/Branches act on
            feature maps; a Flatten must come before any Dense.
        optimizer: optimizer name and learning_rate.
        batch_size: training batch size, in images.
        output: the final layer; must have 10 units and softmax activation. Its initializers are
            part of some baselines' recipes.
        augmentation: random translation/rotation/zoom of training images (none by default).
        lr_schedule: one of ``LR_SCHEDULES``; "constant" keeps the optimizer's learning_rate.
        label_smoothing: in [0, 0.5); the target puts 1 - label_smoothing + label_smoothing / 10
            on the true class (Szegedy et al. 2016, arXiv:1512.00567; Keras' ``label_smoothing``).

    The last three default to the notebooks' recipe and are left out of ``to_dict`` at their
    defaults, so a spec without them has the same JSON and spec_id as before they existed.

    Raises:
        SpecError: a field is out of range, the layer order is impossible, or the feature map
            shrinks to zero; the message shows the sizes layer by layer.
    """

    layers: tuple[Layer, ...]
    optimizer: OptimizerSpec = OptimizerSpec("adam", 1e-3)
    batch_size: int = 128
    output: Dense = Dense(NUM_CLASSES, activation="softmax")
    augmentation: Augmentation = Augmentation()
    lr_schedule: str = "constant"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.augmentation, Mapping):
            object.__setattr__(self, "augmentation", Augmentation.from_dict(self.augmentation))
        if _is_int(self.label_smoothing):
            object.__setattr__(self, "label_smoothing", float(self.label_smoothing))
        _check_fields(self)
        self.shape_table()  # raises SpecError for impossible shapes

    # --- derived facts -------------------------------------------------------------------------

    def shape_table(self) -> list[LayerShape]:
        """Output shape and params of every layer, input first and output last.

        Raises:
            SpecError: a layer cannot be applied (e.g. the map shrinks to 0x0).
        """
        shape: tuple[int, ...] = INPUT_SHAPE
        rows = [LayerShape(0, "input", shape, 0)]
        trail = [str(shape[0])]
        layers = [*self.layers]
        if len(layers) == 0 or not any(isinstance(x, Flatten) for x in layers):
            layers.append(Flatten())  # an implicit flatten before the output layer
        for i, layer in enumerate([*layers, self.output], start=1):
            name = "output layer" if i == len(layers) + 1 else f"layer {i}"
            shape, params = _apply(layer, shape, name, trail)
            if isinstance(layer, _SPATIAL_TYPES):
                trail.append(str(shape[0]))
            rows.append(LayerShape(i, _describe(layer), shape, params))
        return rows

    @property
    def num_params(self) -> int:
        """Total parameters (trainable + non-trainable), as ``keras.Model.count_params()``."""
        return sum(row.params for row in self.shape_table())

    @property
    def conv_layers(self) -> tuple[Conv, ...]:
        """The conv layers of the main stack (a Branches block counts its widest-kernel conv)."""
        out = []
        for layer in self.layers:
            if isinstance(layer, Conv):
                out.append(layer)
            elif isinstance(layer, Branches):
                convs = [x for b in layer.branches for x in b if isinstance(x, Conv)]
                if convs:
                    out.append(max(convs, key=lambda c: c.kernel_size))
        return tuple(out)

    @property
    def depth(self) -> int:
        """Number of conv layers in the main stack (a Branches block counts as one)."""
        return len(self.conv_layers)

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        return tuple(c.kernel_size for c in self.conv_layers)

    def summary(self) -> dict[str, Any]:
        """A few human-readable facts for tables: depth, kernel sizes, pools, batch norm, ...

        Scalars only. augmentation (e.g. "translation=0.1,rotation=0.05"), lr_schedule and
        label_smoothing appear only when they differ from their defaults.
        """
        dense = [x for x in self.layers if isinstance(x, Dense)]
        return {
            "depth": self.depth,
            "kernel_sizes": ",".join(map(str, self.kernel_sizes)) or "-",
            "filters": ",".join(str(c.filters) for c in self.conv_layers) or "-",
            "paddings": ",".join(c.padding for c in self.conv_layers) or "-",
            "num_pools": sum(isinstance(x, MaxPool) for x in self.layers),
            "num_batch_norm": sum(isinstance(x, BatchNorm) for x in self.layers),
            "dropout_rates": ",".join(f"{x.rate:g}" for x in self.layers if isinstance(x, Dropout))
            or "-",
            "dense_units": ",".join(str(x.units) for x in dense) or "-",
            "optimizer": self.optimizer.name,
            "learning_rate": self.optimizer.learning_rate,
            "batch_size": self.batch_size,
            "params": self.num_params,
            **{
                k: str(self.augmentation) if k == "augmentation" else v
                for k, v in self._training_levers().items()
            },
        }

    def _training_levers(self) -> dict[str, Any]:
        """The recipe fields that differ from their defaults, as they appear in ``to_dict``."""
        out: dict[str, Any] = {}
        if self.augmentation.enabled:
            out["augmentation"] = self.augmentation.to_dict()
        if self.lr_schedule != "constant":
            out["lr_schedule"] = self.lr_schedule
        if self.label_smoothing != 0:
            out["label_smoothing"] = self.label_smoothing
        return out

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict; ``ArchitectureSpec.from_dict(d)`` gives the spec back."""
        return {
            "layers": [_layer_to_dict(x) for x in self.layers],
            "output": _layer_to_dict(self.output),
            "optimizer": {k: v for k, v in _fields(self.optimizer).items() if v is not None},
            "batch_size": self.batch_size,
            **self._training_levers(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchitectureSpec:
        """Inverse of ``to_dict``.

        Raises:
            SpecError: unknown keys or layer types, missing fields, or an invalid architecture.
        """
        try:
            return cls._from_dict(data)
        except (TypeError, ValueError) as exc:  # SpecError is a ValueError and passes unchanged
            if isinstance(exc, SpecError):
                raise
            raise SpecError(f"malformed spec: {exc}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> ArchitectureSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec is a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(_SPEC_KEYS)
        if unknown:
            raise SpecError(
                f"unknown spec keys {sorted(unknown)}; expected {', '.join(_SPEC_KEYS)}"
            )
        try:
            optimizer = OptimizerSpec(
                **data.get("optimizer", {"name": "adam", "learning_rate": 1e-3})
            )
        except TypeError as exc:
            raise SpecError(f"bad optimizer {data.get('optimizer')!r}: {exc}") from None
        kwargs: dict[str, Any] = {
            "layers": tuple(
                _layer_from_dict(x, f"layer {i}")
                for i, x in enumerate(data.get("layers", []), start=1)
            ),
            "optimizer": optimizer,
            "batch_size": data.get("batch_size", 128),
        }
        if "output" in data:
            kwargs["output"] = _layer_from_dict(data["output"], "output layer")
        if "augmentation" in data:
            kwargs["augmentation"] = Augmentation.from_dict(data["augmentation"])
        for key in ("lr_schedule", "label_smoothing"):
            if key in data:
                kwargs[key] = data[key]
        return cls(**kwargs)

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> ArchitectureSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None

    @property
    def spec_id(self) -> str:
        """A stable 12-hex-digit id: SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def flat_params(self) -> dict[str, str | int | float]:
        """Flat key/value params for MLflow: summary facts plus every layer field.

        Keys look like ``layer_03.kernel_size``; values are numbers or short strings.
        """
        out: dict[str, str | int | float] = {f"arch.{k}": v for k, v in self.summary().items()}
        for k, v in self.augmentation.to_dict().items():
            out[f"augmentation.{k}"] = v
        out["spec_id"] = self.spec_id
        for k, v in self.to_dict()["optimizer"].items():
            out[f"optimizer.{k}"] = v
        for i, layer in enumerate([*self.layers, self.output], start=1):
            key = "output" if i == len(self.layers) + 1 else f"layer_{i:02d}"
            for name, value in _layer_to_dict(layer).items():
                if name == "branches":
                    value = _describe(layer)
                elif isinstance(value, dict):
                    value = str(Initializer.from_json(value))
                if value is not None:
                    out[f"{key}.{name}"] = value
        return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_SPEC_KEYS = (
    "layers", "output", "optimizer", "batch_size", "augmentation", "lr_schedule", "label_smoothing"
)


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    out: dict[str, Any] = {"type": layer.type}
    for name, value in _fields(layer).items():
        if isinstance(value, Initializer):
            value = value.to_json()
        elif name == "branches":
            value = [[_layer_to_dict(x) for x in branch] for branch in value]
        out[name] = value
    return out


def _layer_from_dict(data: Any, where: str) -> Layer:
    if not isinstance(data, Mapping) or "type" not in data:
        raise SpecError(f"{where}: a layer is an object with a 'type' key, got {data!r}")
    kind = data["type"]
    if kind not in LAYER_TYPES:
        raise SpecError(
            f"{where}: unknown layer type {kind!r}; expected one of {sorted(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[kind]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    known = {f.name for f in fields(cls)}
    if set(kwargs) - known:
        raise SpecError(
            f"{where}: unknown field(s) {sorted(set(kwargs) - known)} for {kind!r}; "
            f"expected {sorted(known)}"
        )
    for name in ("kernel_initializer", "bias_initializer"):
        if name in kwargs:
            kwargs[name] = Initializer.from_json(kwargs[name])
    if cls is Branches:
        kwargs["branches"] = tuple(
            tuple(_layer_from_dict(x, f"{where} branch {b + 1}") for x in branch)
            for b, branch in enumerate(kwargs.get("branches", ()))
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_layer(layer: Any, where: str, in_branch: bool = False) -> None:
    allowed = _BRANCH_LAYER_TYPES if in_branch else tuple(LAYER_TYPES.values())
    if not isinstance(layer, allowed):
        names = sorted(t.type for t in allowed)
        raise SpecError(f"{where}: {layer!r} is not a layer here; expected one of {names}")
    if isinstance(layer, (Conv, Dense)):
        size = layer.filters if isinstance(layer, Conv) else layer.units
        if not _is_int(size) or size < 1:
            raise SpecError(f"{where}: filters/units must be a positive integer, got {size!r}")
        if layer.activation not in ACTIVATIONS:
            raise SpecError(
                f"{where}: activation {layer.activation!r} is not one of {list(ACTIVATIONS)}"
            )
    if isinstance(layer, (Conv, MaxPool)):
        window = layer.kernel_size if isinstance(layer, Conv) else layer.pool_size
        if not _is_int(window) or window < 1:
            raise SpecError(f"{where}: kernel/pool size must be a positive integer, got {window!r}")
        if layer.strides is not None and (not _is_int(layer.strides) or layer.strides < 1):
            raise SpecError(f"{where}: strides must be a positive integer, got {layer.strides!r}")
        if layer.padding not in PADDINGS:
            raise SpecError(f"{where}: padding must be 'valid' or 'same', got {layer.padding!r}")
    if isinstance(layer, Conv) and layer.strides is None:
        raise SpecError(f"{where}: conv strides must be a positive integer")
    if isinstance(layer, Dropout) and not (
        isinstance(layer.rate, (int, float)) and 0 <= layer.rate < 1
    ):
        raise SpecError(f"{where}: dropout rate must be in [0, 1), got {layer.rate!r}")
    if isinstance(layer, Branches):
        if not isinstance(layer.branches, tuple) or len(layer.branches) < 2:
            raise SpecError(f"{where}: branches needs at least two branches")
        for b, branch in enumerate(layer.branches):
            if not isinstance(branch, tuple) or not branch:
                raise SpecError(f"{where} branch {b + 1}: a branch is a non-empty tuple of layers")
            for j, sub in enumerate(branch):
                _check_layer(sub, f"{where} branch {b + 1} layer {j + 1}", in_branch=True)


def _check_fields(spec: ArchitectureSpec) -> None:
    for i, layer in enumerate(spec.layers, start=1):
        _check_layer(layer, f"layer {i}")
    out = spec.output
    if not isinstance(out, Dense) or out.units != NUM_CLASSES or out.activation != "softmax":
        raise SpecError(
            f"the output layer must be Dense({NUM_CLASSES}, activation='softmax'), got {out!r}"
        )
    _check_layer(out, "output layer")
    flattened = False
    for i, layer in enumerate(spec.layers, start=1):
        if isinstance(layer, Flatten):
            if flattened:
                raise SpecError(f"layer {i}: a second Flatten; a spec flattens once")
            flattened = True
    opt = spec.optimizer
    if not isinstance(opt, OptimizerSpec):
        raise SpecError(f"optimizer must be an OptimizerSpec, got {opt!r}")
    if opt.name not in OPTIMIZERS:
        raise SpecError(f"optimizer {opt.name!r} is not one of {list(OPTIMIZERS)}")
    if not (
        isinstance(opt.learning_rate, (int, float))
        and opt.learning_rate > 0
        and math.isfinite(opt.learning_rate)
    ):
        raise SpecError(f"learning_rate must be a positive number, got {opt.learning_rate!r}")
    _check_optimizer_fields(opt)
    if not _is_int(spec.batch_size) or spec.batch_size < 1:
        raise SpecError(f"batch_size must be a positive integer, got {spec.batch_size!r}")
    _check_training_levers(spec)


def _check_training_levers(spec: ArchitectureSpec) -> None:
    aug = spec.augmentation
    if not isinstance(aug, Augmentation):
        raise SpecError(f"augmentation must be an Augmentation, got {aug!r}")
    for name in ("translation", "rotation", "zoom"):
        value = getattr(aug, name)
        if not (
            isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_AUGMENTATION
        ):
            raise SpecError(
                f"augmentation {name} must be a number in [0, {MAX_AUGMENTATION}], got {value!r}; "
                "use 0 for none"
            )
    if spec.lr_schedule not in LR_SCHEDULES:
        raise SpecError(
            f"lr_schedule {spec.lr_schedule!r} is not one of {list(LR_SCHEDULES)}"
        )
    ls = spec.label_smoothing
    if not (isinstance(ls, float) and math.isfinite(ls) and 0 <= ls < 0.5):
        raise SpecError(f"label_smoothing must be a number in [0, 0.5), got {ls!r}")


# Which optional fields each optimizer takes (Keras 3's argument names) and their valid range.
_OPTIMIZER_FIELDS = {
    "adam": ("beta_1", "beta_2", "epsilon"),
    "adadelta": ("rho", "epsilon"),
    "sgd": ("momentum",),
    "rmsprop": ("rho", "momentum", "epsilon"),
}
_FIELD_RANGES = {
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "rho": (lambda v: 0 < v < 1, "in (0, 1)"),
    "beta_1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta_2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "epsilon": (lambda v: 0 < v < 1, "in (0, 1)"),
}


def _check_optimizer_fields(opt: OptimizerSpec) -> None:
    for name, (ok, expected) in _FIELD_RANGES.items():
        value = getattr(opt, name)
        if value is None:
            continue
        if name not in _OPTIMIZER_FIELDS[opt.name]:
            raise SpecError(
                f"optimizer {opt.name!r} takes no {name}; it takes "
                f"{', '.join(_OPTIMIZER_FIELDS[opt.name])}"
            )
        if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
            raise SpecError(f"optimizer {name} must be {expected}, got {value!r}")


