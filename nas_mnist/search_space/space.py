"""Search spaces are data: load a YAML/JSON/TOML file and turn it into Optuna suggestions.

A space file (see ``search_spaces/default.yaml``) describes the choices; ``SearchSpace.suggest``
samples them through an ``optuna.Trial`` (or ``optuna.trial.FixedTrial``) and returns an
``ArchitectureSpec``. Conditional parameters are plain ``if``/loops on sampled values: per-block
and per-layer parameters exist only for the blocks and layers that the sampled depth creates.

Two layouts of the architecture part are understood:

- **blocks** (``blocks:`` section; the shipped default): a stack of conv blocks, each of 1-2 conv
  layers, an optional max pool, an optional BatchNorm and a dropout, then a dense head. Every
  documented CNN of the seed notebooks except ``s002_m10`` (parallel branches) is a point of the
  default space, so baselines are enqueued with params the sampler learns from.
- **per-layer** (``conv:`` and ``pooling:`` sections; ``small_cnn.yaml`` and older files): a depth
  of conv layers with a pool after every k-th one and one BatchNorm placement for the whole model.

Both share the ``optimizer``, ``batch_size`` and ``training`` (augmentation, learning-rate
schedule, label smoothing) sections. Plain Python: no TensorFlow/Keras import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import yaml

from nas_mnist.architecture.spec import (
    ACTIVATIONS,
    LR_SCHEDULES,
    MAX_AUGMENTATION,
    NUM_CLASSES,
    OPTIMIZERS,
    PADDINGS,
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
    SpecError,
)
from nas_mnist.errors import InputError

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
"""The search spaces shipped with the package (``search_spaces/`` in a checkout links here)."""
DEFAULT_SPACE_PATH = SPACES_DIR / "default.yaml"
BATCH_NORM_PLACEMENTS = ("none", "after_conv", "after_pool_block", "dense_head")
"""Per-layer layout: where BatchNorm goes (one choice for the whole model)."""
POOLS = ("none", "valid", "same")
"""Blocks layout: a block's pooling; "valid"/"same" are max pools with that padding."""

# Sections and their keys, per layout; used to reject typos with a clear message. ``None``
# means a leaf (no sub-keys).
_SHARED_SECTIONS: dict[str, set[str] | None] = {
    "name": None,
    "description": None,
    "optimizer": {"name", "learning_rate", "momentum", "variants"},
    "batch_size": None,
    "training": {"augmentation", "lr_schedule", "label_smoothing"},
}
_PER_LAYER_SCHEMA: dict[str, set[str] | None] = {
    **_SHARED_SECTIONS,
    "conv": {
        "depth",
        "filters",
        "kernel_size",
        "padding",
        "kernel_initializer",
        "strides",
        "activation",
    },
    "pooling": {"every", "pool_size", "padding"},
    "batch_norm": None,
    "dropout": {"conv", "dense"},
    "dense": {
        "num_layers",
        "units",
        "activation",
        "kernel_initializer",
        "output_kernel_initializer",
    },
}
_BLOCKS_SCHEMA: dict[str, set[str] | None] = {
    **_SHARED_SECTIONS,
    "blocks": {
        "num_blocks",
        "num_convs",
        "filters",
        "kernel_size",
        "padding",
        "strides",
        "activation",
        "pool",
        "pool_size",
        "pool_strides",
        "batch_norm",
        "dropout",
    },
    "initializers": {"kernel", "bias", "output_kernel"},
    "dense": {"num_layers", "units", "activation", "batch_norm", "dropout", "input_dropout"},
}
_AUGMENTATION_KEYS = ("translation", "rotation", "zoom")
# Optimizer arguments a variant may fix (momentum has its own leaf).
_VARIANT_ARGUMENTS = ("rho", "beta_1", "beta_2", "epsilon")
ROUND_DIGITS = 4
"""Sampled rates and factors are rounded to this many decimals (0.35000000000000003 -> 0.35)."""


class SearchSpaceError(InputError):
    """A search-space file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True)
class SearchSpace:
    """A loaded search space.

    Args:
        name: the space's ``name`` (defaults to the file stem).
        source: where it was loaded from (a path, or "<dict>").
        config: the parsed, validated file content.
    """

    name: str
    source: str
    config: Mapping[str, Any]

    @property
    def layout(self) -> str:
        """"blocks" (a ``blocks`` section) or "per_layer" (``conv`` and ``pooling`` sections)."""
        return "blocks" if "blocks" in self.config else "per_layer"

    # --- sampling ------------------------------------------------------------------------------

    def suggest(self, trial: Any) -> ArchitectureSpec:
        """Sample one architecture through ``trial``'s ``suggest_*`` API.

        Args:
            trial: an ``optuna.Trial`` or ``optuna.trial.FixedTrial``.

        Returns:
            The sampled spec.

        Raises:
            SpecError: the sampled combination is impossible (e.g. valid convolutions and pools
                shrink the map to zero); a study prunes such a trial without training it.
        """
        c = self.config
        if self.layout == "blocks":
            layers, head = _suggest_blocks(trial, c)
        else:
            layers, head = _suggest_per_layer(trial, c)
        return ArchitectureSpec(
            layers=tuple(layers),
            optimizer=_suggest_optimizer(trial, c["optimizer"]),
            output=head,
            batch_size=_sample(trial, "batch_size", c.get("batch_size", 128)),
            **_suggest_training(trial, c.get("training", {})),
        )

    def params_for_spec(self, spec: ArchitectureSpec) -> dict[str, Any] | None:
        """The trial params that make ``suggest`` return exactly ``spec``, or None if outside.

        Used to enqueue baselines that lie inside the space, so that the sampler learns from
        them. The params are read off the spec's layer pattern and then checked both ways: every
        value must lie in the space (choices, ranges and their steps) and ``suggest`` on them must
        give back a spec equal to ``spec``.

        Args:
            spec: any spec, e.g. a baseline's.

        Returns:
            {param name: value} with exactly the params ``suggest`` asks for, or None.
        """
        if self.layout == "blocks":
            params = _read_block_params(spec, self.config)
        else:
            params = _read_per_layer_params(spec)
        if params is None:
            return None
        params.update(_read_shared_params(spec, self.config))
        trial = _CheckingTrial(params)
        try:
            rebuilt = self.suggest(trial)
        except (SpecError, KeyError, TypeError, ValueError):
            return None
        if trial.outside or rebuilt != spec:
            return None
        return trial.used

    def describe(self) -> str:
        """One line: the space's name and source."""
        return f"search space {self.name!r} ({self.source})"


# ---------------------------------------------------------------------------------------------
# Sampling: the blocks layout
# ---------------------------------------------------------------------------------------------


def _suggest_blocks(trial: Any, c: Mapping[str, Any]) -> tuple[list[Any], Dense]:
    """The body and head of the blocks layout, and the output layer.

    Per block ``b`` (1-based): ``block{b}_num_convs``, ``block{b}_strides`` (of its first conv),
    ``block{b}_conv{k}_filters|kernel_size|padding``, ``block{b}_pool`` ("none", "valid",
    "same"), ``block{b}_pool_strides`` (only for a pooled block), ``block{b}_batch_norm`` and
    ``block{b}_dropout``. Layer order in a block: conv(s), pool, BatchNorm, Dropout.
    """
    blocks = c["blocks"]
    initializers = c.get("initializers", {})
    kernel_initializer = parse_initializer(
        _sample(trial, "kernel_initializer", initializers.get("kernel", "glorot_uniform"))
    )
    bias_initializer = parse_initializer(
        _sample(trial, "bias_initializer", initializers.get("bias", "zeros"))
    )
    activation = _sample(trial, "conv_activation", blocks.get("activation", "relu"))

    layers: list[Any] = []
    for b in range(1, _sample(trial, "num_blocks", blocks["num_blocks"]) + 1):
        prefix = f"block{b}_"
        num_convs = _sample(trial, f"{prefix}num_convs", blocks.get("num_convs", 1))
        strides = _sample(trial, f"{prefix}strides", blocks.get("strides", 1))
        for k in range(1, num_convs + 1):
            layers.append(
                Conv(
                    filters=_sample(trial, f"{prefix}conv{k}_filters", blocks["filters"]),
                    kernel_size=_sample(
                        trial, f"{prefix}conv{k}_kernel_size", blocks["kernel_size"]
                    ),
                    strides=strides if k == 1 else 1,
                    padding=_sample(
                        trial, f"{prefix}conv{k}_padding", blocks.get("padding", "same")
                    ),
                    activation=activation,
                    kernel_initializer=kernel_initializer,
                    bias_initializer=bias_initializer,
                )
            )
        pool = _sample(trial, f"{prefix}pool", blocks.get("pool", "none"))
        if pool != "none":
            pool_size = _sample(trial, f"{prefix}pool_size", blocks.get("pool_size", 2))
            pool_strides = _sample(
                trial, f"{prefix}pool_strides", blocks.get("pool_strides", pool_size)
            )
            # Keras' strides=None means pool_size: the catalog writes MaxPool(2), not strides=2.
            layers.append(
                MaxPool(
                    pool_size,
                    strides=None if pool_strides == pool_size else pool_strides,
                    padding=pool,
                )
            )
        if _sample(trial, f"{prefix}batch_norm", blocks.get("batch_norm", False)):
            layers.append(BatchNorm())
        rate = _sample(trial, f"{prefix}dropout", blocks.get("dropout", 0.0))
        if rate > 0:
            layers.append(Dropout(round(rate, ROUND_DIGITS)))
    layers.append(Flatten())

    dense = c.get("dense", {"num_layers": 0})
    rate = _sample(trial, "dense_input_dropout", dense.get("input_dropout", 0.0))
    if rate > 0:
        layers.append(Dropout(round(rate, ROUND_DIGITS)))
    num_dense = _sample(trial, "dense_num_layers", dense.get("num_layers", 1))
    if num_dense:
        dense_activation = _sample(trial, "dense_activation", dense.get("activation", "relu"))
        batch_norm = _sample(trial, "dense_batch_norm", dense.get("batch_norm", False))
        dense_rate = _sample(trial, "dense_dropout", dense.get("dropout", 0.0))
        for j in range(1, num_dense + 1):
            layers.append(
                Dense(
                    units=_sample(trial, f"dense{j}_units", dense["units"]),
                    activation=dense_activation,
                    kernel_initializer=kernel_initializer,
                    bias_initializer=bias_initializer,
                )
            )
            if batch_norm:
                layers.append(BatchNorm())
            if dense_rate > 0:
                layers.append(Dropout(round(dense_rate, ROUND_DIGITS)))
    output = Dense(
        NUM_CLASSES,
        activation="softmax",
        kernel_initializer=parse_initializer(
            _sample(
                trial,
                "output_kernel_initializer",
                initializers.get("output_kernel", "glorot_uniform"),
            )
        ),
    )
    return layers, output


# ---------------------------------------------------------------------------------------------
# Sampling: the per-layer layout
# ---------------------------------------------------------------------------------------------


def _suggest_per_layer(trial: Any, c: Mapping[str, Any]) -> tuple[list[Any], Dense]:
    """The layers of the per-layer layout (``conv``/``pooling`` sections) and the output layer."""
    conv, pool = c["conv"], c["pooling"]
    depth = _sample(trial, "depth", conv["depth"])
    pool_every = _sample(trial, "pool_every", pool["every"])
    batch_norm = _sample(trial, "batch_norm", c.get("batch_norm", "none"))
    dropout = c.get("dropout", {})
    conv_dropout = _sample(trial, "conv_dropout", dropout.get("conv", 0.0))
    dense_dropout = _sample(trial, "dense_dropout", dropout.get("dense", 0.0))

    layers: list[Any] = []
    for i in range(1, depth + 1):
        layers.append(
            Conv(
                filters=_sample(trial, f"conv{i}_filters", conv["filters"]),
                kernel_size=_sample(trial, f"conv{i}_kernel_size", conv["kernel_size"]),
                strides=_sample(trial, f"conv{i}_strides", conv.get("strides", 1)),
                padding=_sample(trial, f"conv{i}_padding", conv.get("padding", "valid")),
                activation=_sample(trial, "conv_activation", conv.get("activation", "relu")),
                kernel_initializer=_sample(
                    trial,
                    f"conv{i}_kernel_initializer",
                    conv.get("kernel_initializer", "glorot_uniform"),
                ),
            )
        )
        if batch_norm == "after_conv":
            layers.append(BatchNorm())
        if i % pool_every == 0:
            layers.append(
                MaxPool(
                    pool_size=_sample(trial, "pool_size", pool.get("pool_size", 2)),
                    padding=_sample(trial, "pool_padding", pool.get("padding", "same")),
                )
            )
            if batch_norm == "after_pool_block":
                layers.append(BatchNorm())
            if conv_dropout > 0:
                layers.append(Dropout(round(conv_dropout, ROUND_DIGITS)))
    layers.append(Flatten())

    dense = c.get("dense", {"num_layers": 1, "units": 128})
    for j in range(1, _sample(trial, "dense_num_layers", dense.get("num_layers", 1)) + 1):
        layers.append(
            Dense(
                units=_sample(trial, f"dense{j}_units", dense["units"]),
                activation=_sample(trial, "dense_activation", dense.get("activation", "relu")),
                kernel_initializer=_sample(
                    trial,
                    f"dense{j}_kernel_initializer",
                    dense.get("kernel_initializer", "glorot_uniform"),
                ),
            )
        )
        if batch_norm == "dense_head":
            layers.append(BatchNorm())
        if dense_dropout > 0:
            layers.append(Dropout(round(dense_dropout, ROUND_DIGITS)))
    output = Dense(
        NUM_CLASSES,
        activation="softmax",
        kernel_initializer=_sample(
            trial,
            "output_kernel_initializer",
            dense.get("output_kernel_initializer", "glorot_uniform"),
        ),
    )
    return layers, output


# ---------------------------------------------------------------------------------------------
# Sampling: optimizer and training levers (both layouts)
# ---------------------------------------------------------------------------------------------


def _suggest_optimizer(trial: Any, opt: Mapping[str, Any]) -> OptimizerSpec:
    """Optimizer name, its learning_rate (one param per optimizer), momentum and variant."""
    name = _sample(trial, "optimizer", opt["name"])
    arguments: dict[str, float] = {}
    variants = opt.get("variants", {}).get(name)
    if variants:
        variant = _sample(trial, f"{name}_variant", list(variants))
        arguments.update(variants[variant] or {})
    return OptimizerSpec(
        name=name,
        learning_rate=_sample(
            trial, f"learning_rate_{name}", _per_optimizer(opt["learning_rate"], name)
        ),
        momentum=_optional(trial, f"momentum_{name}", opt.get("momentum"), name),
        **arguments,
    )


def _suggest_training(trial: Any, training: Mapping[str, Any]) -> dict[str, Any]:
    """The training levers: augmentation factors, lr_schedule, label_smoothing."""
    augmentation = training.get("augmentation", {})
    factors = {
        key: round(_sample(trial, f"augmentation_{key}", augmentation.get(key, 0.0)), ROUND_DIGITS)
        for key in _AUGMENTATION_KEYS
    }
    return {
        "augmentation": Augmentation(**factors),
        "lr_schedule": _sample(trial, "lr_schedule", training.get("lr_schedule", "constant")),
        "label_smoothing": round(
            _sample(trial, "label_smoothing", training.get("label_smoothing", 0.0)), ROUND_DIGITS
        ),
    }


_INITIALIZER_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def parse_initializer(text: str | Initializer) -> Initializer:
    """An initializer from its text form, as ``str(Initializer)`` writes it.

    Examples: ``"he_normal"``, ``"truncated_normal(mean=0, stddev=0.01)"``,
    ``"constant(value=0.1)"``.

    Raises:
        SpecError: not of the form ``name`` or ``name(argument=number, ...)``.
    """
    if isinstance(text, Initializer):
        return text
    match = _INITIALIZER_PATTERN.match(str(text))
    if not match:
        raise SpecError(f"initializer {text!r} is not 'name' or 'name(argument=number, ...)'")
    name, body = match.group(1), match.group(2)
    arguments = []
    for part in filter(None, (p.strip() for p in (body or "").split(","))):
        key, sep, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key.strip().isidentifier() or not math.isfinite(number):
            raise SpecError(
                f"initializer {text!r}: argument {part!r} is not 'name=number'"
            )
        arguments.append((key.strip(), number))
    return Initializer(name, tuple(arguments))


# ---------------------------------------------------------------------------------------------
# Spec -> params (for enqueueing baselines)
# ---------------------------------------------------------------------------------------------


class _CheckingTrial:
    """Stands in for ``optuna.Trial``: answers from ``params``, notes out-of-space values."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.used: dict[str, Any] = {}
        self.outside = False

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(name)
        self.used[name] = self.params[name]
        return self.params[name]

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        value = self._get(name)
        # Equal and of the same kind: False == 0 in Python, but a flag is not a number.
        self.outside |= not any(_kind(value) == _kind(c) and value == c for c in choices)
        return value

    def suggest_int(
        self, name: str, low: int, high: int, step: int = 1, log: bool = False
    ) -> int:
        value = self._get(name)
        self.outside |= not (
            _is_int(value) and low <= value <= high and (value - low) % step == 0
        )
        return value

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> float:
        value = self._get(name)
        inside = isinstance(value, (int, float)) and low <= value <= high
        if inside and step:
            k = (value - low) / step
            inside = abs(k - round(k)) < 1e-8  # Optuna's FloatDistribution._contains
        self.outside |= not inside
        return value


def _choice_for(leaf: Any, wanted: Initializer) -> Any:
    """The leaf's choice that parses to the initializer ``wanted`` (else its plain name)."""
    for value in leaf if isinstance(leaf, list) else [leaf]:
        try:
            if parse_initializer(value) == wanted:
                return value
        except SpecError:
            continue
    return str(wanted)


def _read_block_params(spec: ArchitectureSpec, c: Mapping[str, Any]) -> dict[str, Any] | None:
    """Read the blocks layout's params off a spec, else None (it has no such shape).

    Blocks are read greedily: a conv starts a block, a following stride-1 conv joins it, then
    an optional pool, BatchNorm and Dropout close it. (Two 1-conv blocks with nothing between
    them describe the same layers as one 2-conv block; the greedy reading picks the latter.)
    """
    layers = list(spec.layers)
    if any(isinstance(x, Branches) for x in layers) or Flatten() not in layers:
        return None
    cut = layers.index(Flatten())
    body, head = layers[:cut], layers[cut + 1 :]
    convs = [x for x in body if isinstance(x, Conv)]
    if not convs:
        return None
    initializers = c.get("initializers", {})
    params: dict[str, Any] = {
        "kernel_initializer": _choice_for(
            initializers.get("kernel", "glorot_uniform"), convs[0].kernel_initializer
        ),
        "bias_initializer": _choice_for(
            initializers.get("bias", "zeros"), convs[0].bias_initializer
        ),
        "conv_activation": convs[0].activation,
        "output_kernel_initializer": _choice_for(
            initializers.get("output_kernel", "glorot_uniform"), spec.output.kernel_initializer
        ),
    }
    i, b = 0, 0
    while i < len(body):
        if not isinstance(body[i], Conv):
            return None
        b += 1
        prefix = f"block{b}_"
        block = [body[i]]
        i += 1
        if i < len(body) and isinstance(body[i], Conv) and body[i].strides == 1:
            block.append(body[i])
            i += 1
        params[f"{prefix}num_convs"] = len(block)
        params[f"{prefix}strides"] = block[0].strides
        for k, conv in enumerate(block, start=1):
            params[f"{prefix}conv{k}_filters"] = conv.filters
            params[f"{prefix}conv{k}_kernel_size"] = conv.kernel_size
            params[f"{prefix}conv{k}_padding"] = conv.padding
        params[f"{prefix}pool"] = "none"
        if i < len(body) and isinstance(body[i], MaxPool):
            pool = body[i]
            params[f"{prefix}pool"] = pool.padding
            params[f"{prefix}pool_size"] = pool.pool_size
            params[f"{prefix}pool_strides"] = pool.strides or pool.pool_size
            i += 1
        params[f"{prefix}batch_norm"] = i < len(body) and isinstance(body[i], BatchNorm)
        i += params[f"{prefix}batch_norm"]
        params[f"{prefix}dropout"] = 0.0
        if i < len(body) and isinstance(body[i], Dropout):
            params[f"{prefix}dropout"] = body[i].rate
            i += 1
    params["num_blocks"] = b

    params["dense_input_dropout"] = 0.0
    if head and isinstance(head[0], Dropout):
        params["dense_input_dropout"] = head[0].rate
        head = head[1:]
    dense = [x for x in head if isinstance(x, Dense)]
    params["dense_num_layers"] = len(dense)
    if dense:
        after = head[head.index(dense[0]) + 1 :]
        params["dense_activation"] = dense[0].activation
        params["dense_batch_norm"] = bool(after) and isinstance(after[0], BatchNorm)
        rates = [x.rate for x in after[:2] if isinstance(x, Dropout)]
        params["dense_dropout"] = rates[0] if rates else 0.0
    for j, layer in enumerate(dense, start=1):
        params[f"dense{j}_units"] = layer.units
    return params


def _read_per_layer_params(spec: ArchitectureSpec) -> dict[str, Any] | None:
    """Read the per-layer layout's params off a spec, else None (it has no such shape)."""
    layers = list(spec.layers)
    if any(isinstance(x, Branches) for x in layers) or Flatten() not in layers:
        return None
    cut = layers.index(Flatten())
    body, head = layers[:cut], layers[cut + 1 :]
    params: dict[str, Any] = {}
    convs = [x for x in body if isinstance(x, Conv)]
    if not convs or not isinstance(body[0], Conv):
        return None
    params["depth"] = len(convs)
    pooled = []  # 1-based conv indices followed (after an optional BatchNorm) by a pool
    conv_index = 0
    for layer in body:
        if isinstance(layer, Conv):
            conv_index += 1
            params.update(
                {
                    f"conv{conv_index}_filters": layer.filters,
                    f"conv{conv_index}_kernel_size": layer.kernel_size,
                    f"conv{conv_index}_strides": layer.strides,
                    f"conv{conv_index}_padding": layer.padding,
                    f"conv{conv_index}_kernel_initializer": layer.kernel_initializer.name,
                }
            )
            params["conv_activation"] = layer.activation
        elif isinstance(layer, MaxPool):
            pooled.append(conv_index)
            params["pool_size"], params["pool_padding"] = layer.pool_size, layer.padding
    params["pool_every"] = pooled[0] if pooled else len(convs) + 1
    dropouts = [x.rate for x in body if isinstance(x, Dropout)]
    params["conv_dropout"] = dropouts[0] if dropouts else 0.0
    dense = [x for x in head if isinstance(x, Dense)]
    head_dropouts = [x.rate for x in head if isinstance(x, Dropout)]
    params["dense_dropout"] = head_dropouts[0] if head_dropouts else 0.0
    params["dense_num_layers"] = len(dense)
    for j, layer in enumerate(dense, start=1):
        params[f"dense{j}_units"] = layer.units
        params[f"dense{j}_kernel_initializer"] = layer.kernel_initializer.name
        params["dense_activation"] = layer.activation
    if any(isinstance(x, BatchNorm) for x in head):
        params["batch_norm"] = "dense_head"
    elif any(isinstance(x, BatchNorm) for x in body):
        after = body[body.index(BatchNorm()) - 1]
        params["batch_norm"] = "after_conv" if isinstance(after, Conv) else "after_pool_block"
    else:
        params["batch_norm"] = "none"
    params["output_kernel_initializer"] = spec.output.kernel_initializer.name
    return params


def _read_shared_params(spec: ArchitectureSpec, c: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer, batch-size and training-lever params of a spec (both layouts)."""
    opt = spec.optimizer
    params: dict[str, Any] = {
        "optimizer": opt.name,
        f"learning_rate_{opt.name}": opt.learning_rate,
        "batch_size": spec.batch_size,
        "lr_schedule": spec.lr_schedule,
        "label_smoothing": spec.label_smoothing,
        **{
            f"augmentation_{key}": getattr(spec.augmentation, key)
            for key in _AUGMENTATION_KEYS
        },
    }
    if opt.momentum is not None:
        params[f"momentum_{opt.name}"] = opt.momentum
    fixed = {k: getattr(opt, k) for k in _VARIANT_ARGUMENTS if getattr(opt, k) is not None}
    for variant, arguments in c["optimizer"].get("variants", {}).get(opt.name, {}).items():
        if dict(arguments or {}) == fixed:
            params[f"{opt.name}_variant"] = variant
    return params


# ---------------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """"bool", "number" or the type's name: how a categorical choice compares."""
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_range(value: Any) -> bool:
    return isinstance(value, Mapping) and "low" in value and "high" in value


def _range_kind(leaf: Mapping[str, Any]) -> str:
    if leaf.get("type"):
        return leaf["type"]
    return "int" if all(_is_int(leaf[k]) for k in ("low", "high")) else "float"


def _sample(trial: Any, name: str, leaf: Any) -> Any:
    """Sample one leaf: fixed scalar, categorical list, or int/float range."""
    if isinstance(leaf, list):
        return leaf[0] if len(leaf) == 1 else trial.suggest_categorical(name, leaf)
    if _is_range(leaf):
        kwargs = {k: leaf[k] for k in ("step", "log") if k in leaf}
        if _range_kind(leaf) == "int":
            return trial.suggest_int(name, int(leaf["low"]), int(leaf["high"]), **kwargs)
        value = trial.suggest_float(name, float(leaf["low"]), float(leaf["high"]), **kwargs)
        return round_to_step(value, leaf["low"], leaf["step"]) if "step" in leaf else value
    return leaf


def _decimals(number: float) -> int:
    """Digits after the decimal point of a number as written (0.05 -> 2, 1e-3 -> 3, 2 -> 0)."""
    import decimal

    exponent = decimal.Decimal(repr(float(number))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_to_step(value: float, low: float, step: float) -> float:
    """``value`` on the grid ``low + k * step`` without binary noise: Optuna computes
    ``low + k * step`` in floating point (0.30000000000000004 for 0 + 6 * 0.05); this rounds it
    to the decimals of ``low`` and ``step`` (0.3), so specs, MLflow params and the dashboard
    show the grid's own numbers."""
    k = round((float(value) - float(low)) / float(step))
    return round(float(low) + k * float(step), max(_decimals(low), _decimals(step)))


def _per_optimizer(leaf: Any, optimizer: str) -> Any:
    """A leaf that may be given per optimizer name ({adam: ..., sgd: ...})."""
    if isinstance(leaf, Mapping) and not _is_range(leaf):
        return leaf[optimizer]
    return leaf


def _optional(trial: Any, name: str, leaf: Any, optimizer: str) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, Mapping) and not _is_range(leaf):
        if optimizer not in leaf:
            return None
        leaf = leaf[optimizer]
    return _sample(trial, name, leaf)


class _LeastShrinkingTrial:
    """Answers every ``suggest_*`` with the choice that shrinks the feature map least.

    Used once when a space is loaded: if even this point is impossible, every point is (sizes
    only shrink more with fewer 'same' paddings, larger kernels and strides, more blocks and
    more pools), and the file is refused. Parameters that do not affect sizes take their first
    choice or their low bound.
    """

    # (parameter-name suffix, preference): "min", "max", or values in order of preference.
    _RULES: tuple[tuple[str, Any], ...] = (
        ("num_blocks", "min"),
        ("depth", "min"),
        ("num_convs", "min"),
        ("kernel_size", "min"),
        ("strides", "min"),
        ("pool_size", "min"),
        ("pool_every", "max"),
        ("padding", ("same", "valid")),
        ("pool", ("none", "same", "valid")),
    )

    def _rule(self, name: str) -> Any:
        for suffix, preference in self._RULES:
            if name == suffix or name.endswith(f"_{suffix}"):
                return preference
        return None

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        rule = self._rule(name)
        if rule == "min":
            return min(choices)
        if rule == "max":
            return max(choices)
        if rule:
            return min(choices, key=lambda v: rule.index(v) if v in rule else len(rule))
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return high - (high - low) % step if self._rule(name) == "max" else low

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        return low


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def _parse_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    raise SearchSpaceError(
        f"{path}: unknown search-space format {suffix!r}; use .yaml, .json or .toml"
    )


def shipped_spaces() -> tuple[str, ...]:
    """Names of the search spaces shipped with the package (``default``, ``small_cnn``, ...)."""
    return tuple(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))


def resolve_space_path(path: str | Path | None) -> Path:
    """The file behind ``--space``: a path, else the name of a shipped space, else the default.

    Raises:
        SearchSpaceError: neither an existing file nor a shipped space's name.
    """
    if path is None:
        return DEFAULT_SPACE_PATH
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    if str(path) in shipped_spaces():
        return SPACES_DIR / f"{path}.yaml"
    raise SearchSpaceError(
        f"{path}: search-space file not found; pass --space FILE or the name of a shipped "
        f"space ({', '.join(shipped_spaces())}; see search_spaces/default.yaml for the format)"
    )


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    """Load and validate a search-space file.

    Args:
        path: a .yaml/.yml, .json or .toml file, or the name of a shipped space (see
            ``shipped_spaces``); ``None`` means the shipped ``default``.

    Returns:
        The validated ``SearchSpace``.

    Raises:
        SearchSpaceError: the file is missing, unparsable, has unknown/invalid keys or values,
            or no choice of it gives a valid architecture; the message names the file and the
            key (or the reason).
    """
    path = resolve_space_path(path)
    try:
        data = _parse_file(path)
    except SearchSpaceError:
        raise
    except (
        yaml.YAMLError,
        json.JSONDecodeError,
        tomllib.TOMLDecodeError,
        UnicodeDecodeError,
    ) as exc:
        raise SearchSpaceError(f"{path}: cannot parse the search-space file: {exc}") from None
    return search_space_from_dict(data, source=str(path), default_name=path.stem)


def search_space_from_dict(
    data: Any, source: str = "<dict>", default_name: str = "custom"
) -> SearchSpace:
    """Validate parsed space content (see ``load_search_space``) and wrap it.

    Besides each key and value, checks that the space holds at least one valid architecture:
    the point whose choices shrink the feature map least must build.

    Raises:
        SearchSpaceError: invalid content; the message names ``source`` and the key.
    """
    checker = _Checker(source)
    if not isinstance(data, Mapping):
        raise checker.fail("a search space is a mapping of sections (blocks or conv/pooling, "
                           "optimizer, ...)")
    blocks_layout = "blocks" in data
    schema = _BLOCKS_SCHEMA if blocks_layout else _PER_LAYER_SCHEMA
    unknown = set(data) - set(schema)
    if unknown:
        hint = " (the blocks layout replaces conv/pooling/batch_norm/dropout)" if (
            blocks_layout and unknown & set(_PER_LAYER_SCHEMA)) else ""
        raise checker.fail(
            f"unknown section(s) {sorted(unknown)}; expected some of {sorted(schema)}{hint}"
        )
    for key in ("blocks", "optimizer") if blocks_layout else ("conv", "pooling", "optimizer"):
        if key not in data:
            raise checker.fail(f"missing section {key!r}")
    for section, keys in schema.items():
        if keys is None or section not in data:
            continue
        if not isinstance(data[section], Mapping):
            raise checker.fail(f"section {section!r} must be a mapping of {sorted(keys)}")
        bad = set(data[section]) - keys
        if bad:
            raise checker.fail(
                f"unknown key(s) {sorted(bad)} in {section!r}; expected some of {sorted(keys)}"
            )

    if blocks_layout:
        _check_blocks_layout(checker, data)
    else:
        _check_per_layer_layout(checker, data)
    checker.check("batch_size", data.get("batch_size", 128), _positive_int, "a positive integer")
    _check_optimizer(checker, data["optimizer"])
    _check_training(checker, data.get("training", {}))

    space = SearchSpace(name=str(data.get("name", default_name)), source=source, config=data)
    try:
        space.suggest(_LeastShrinkingTrial())
    except SpecError as exc:
        raise checker.fail(
            "no choice of this space gives a valid architecture; even the choices that shrink "
            f"the feature map least (fewest blocks and pools, 'same' padding, smallest kernels "
            f"and strides) fail: {exc}"
        ) from None
    return space


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


def _non_negative_int(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _rate(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1


class _Checker:
    """Checks leaves of one space file; every error names the file (``source``) and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, msg: str) -> SearchSpaceError:
        return SearchSpaceError(f"{self.source}: {msg}")

    def leaf_values(self, where: str, leaf: Any) -> list[Any]:
        """Check a leaf's form; return its possible values (ranges return their bounds)."""
        if isinstance(leaf, list):
            if not leaf:
                raise self.fail(f"{where}: an empty list of choices")
            for v in leaf:
                if not isinstance(v, (str, int, float, bool)) or v is None:
                    raise self.fail(f"{where}: choices must be strings or numbers, got {v!r}")
                if isinstance(v, float) and not math.isfinite(v):
                    raise self.fail(f"{where}: choices must be finite numbers, got {v!r}")
            return list(leaf)
        if isinstance(leaf, Mapping):
            return self._range_bounds(where, leaf)
        if leaf is None:
            raise self.fail(f"{where}: no value")
        if isinstance(leaf, float) and not math.isfinite(leaf):
            raise self.fail(f"{where}: {leaf!r} is not a finite number")
        return [leaf]

    def _range_bounds(self, where: str, leaf: Mapping[str, Any]) -> list[Any]:
        if not _is_range(leaf):
            raise self.fail(f"{where}: a range needs 'low' and 'high', got {dict(leaf)!r}")
        extra = set(leaf) - {"low", "high", "log", "step", "type"}
        if extra:
            raise self.fail(f"{where}: unknown range key(s) {sorted(extra)}")
        low, high = leaf["low"], leaf["high"]
        for key, v in (("low", low), ("high", high)):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise self.fail(f"{where}: low and high must be numbers, got {low!r}, {high!r}")
            if not math.isfinite(v):
                raise self.fail(f"{where}.{key}: {v!r} is not a finite number")
        if low > high:
            raise self.fail(f"{where}: low {low} is above high {high}")
        kind = leaf.get("type", "int" if _is_int(low) and _is_int(high) else "float")
        if kind not in ("int", "float"):
            raise self.fail(f"{where}.type: must be 'int' or 'float', got {kind!r}")
        log = leaf.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log: must be true or false, got {log!r}")
        if log and low <= 0:
            raise self.fail(f"{where}: a log range needs low > 0, got {low}")
        if "step" in leaf:
            step = leaf["step"]
            if log:
                raise self.fail(f"{where}.step: a log range takes no step (Optuna samples log "
                                "ranges continuously); drop 'step' or 'log'")
            if (not isinstance(step, (int, float)) or isinstance(step, bool)
                    or not math.isfinite(step) or step <= 0):
                raise self.fail(f"{where}.step: must be a positive number, got {step!r}")
            if kind == "int" and not _is_int(step):
                raise self.fail(f"{where}.step: an int range needs an integer step, got {step!r}")
        if kind == "int" and not (_is_int(low) and _is_int(high)):
            raise self.fail(f"{where}: an int range needs integer low and high, got {low!r}, "
                            f"{high!r}")
        return [low, high]

    def check(self, where: str, leaf: Any, ok: Callable[[Any], bool], expected: Any) -> None:
        for v in self.leaf_values(where, leaf):
            if not ok(v):
                raise self.fail(f"{where}: {v!r} is not valid; expected {expected}")

    def check_initializers(self, where: str, leaf: Any) -> None:
        for v in self.leaf_values(where, leaf):
            try:
                parse_initializer(v)
            except SpecError as exc:
                raise self.fail(f"{where}: {exc}") from None

    def check_flags(self, where: str, leaf: Any) -> None:
        """A true/false leaf: a bool or a list of bools (not a range)."""
        if isinstance(leaf, Mapping):
            raise self.fail(f"{where}: a flag is true, false or [false, true], not a range")
        self.check(where, leaf, lambda v: isinstance(v, bool), "true or false")


def _check_blocks_layout(checker: _Checker, data: Mapping[str, Any]) -> None:
    blocks = data["blocks"]
    for key in ("num_blocks", "filters", "kernel_size"):
        if key not in blocks:
            raise checker.fail(f"missing blocks.{key}")
    for key in ("num_blocks", "filters", "kernel_size", "pool_size", "pool_strides", "strides"):
        if key in blocks:
            checker.check(f"blocks.{key}", blocks[key], _positive_int, "a positive integer")
    checker.check("blocks.num_convs", blocks.get("num_convs", 1), lambda v: v in (1, 2)
                  and _is_int(v), "1 or 2 (conv layers per block)")
    checker.check("blocks.padding", blocks.get("padding", "same"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("blocks.activation", blocks.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))
    checker.check("blocks.pool", blocks.get("pool", "none"), lambda v: v in POOLS, list(POOLS))
    checker.check_flags("blocks.batch_norm", blocks.get("batch_norm", False))
    checker.check("blocks.dropout", blocks.get("dropout", 0.0), _rate, "a rate in [0, 1)")
    initializers = data.get("initializers", {})
    for key in ("kernel", "bias", "output_kernel"):
        if key in initializers:
            checker.check_initializers(f"initializers.{key}", initializers[key])
    dense = data.get("dense", {})
    checker.check("dense.num_layers", dense.get("num_layers", 0), _non_negative_int,
                  "a number of dense layers >= 0")
    if max(checker.leaf_values("dense.num_layers", dense.get("num_layers", 0))) > 0:
        if "units" not in dense:
            raise checker.fail("missing dense.units")
        checker.check("dense.units", dense["units"], _positive_int, "a positive integer")
    checker.check("dense.activation", dense.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))
    checker.check_flags("dense.batch_norm", dense.get("batch_norm", False))
    for key in ("dropout", "input_dropout"):
        checker.check(f"dense.{key}", dense.get(key, 0.0), _rate, "a rate in [0, 1)")


def _check_per_layer_layout(checker: _Checker, data: Mapping[str, Any]) -> None:
    conv, pool = data["conv"], data["pooling"]
    for key in ("depth", "filters", "kernel_size"):
        if key not in conv:
            raise checker.fail(f"missing conv.{key}")
        checker.check(f"conv.{key}", conv[key], _positive_int, "a positive integer")
    checker.check("conv.strides", conv.get("strides", 1), _positive_int, "a positive integer")
    checker.check("conv.padding", conv.get("padding", "valid"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("conv.activation", conv.get("activation", "relu"), lambda v: v in ACTIVATIONS,
                  list(ACTIVATIONS))
    checker.check("conv.kernel_initializer", conv.get("kernel_initializer", "glorot_uniform"),
                  lambda v: isinstance(v, str), "a Keras initializer name")
    if "every" not in pool:
        raise checker.fail("missing pooling.every (a pool after every k-th conv layer)")
    checker.check("pooling.every", pool["every"], _positive_int, "a positive integer")
    checker.check("pooling.pool_size", pool.get("pool_size", 2), _positive_int,
                  "a positive integer")
    checker.check("pooling.padding", pool.get("padding", "same"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("batch_norm", data.get("batch_norm", "none"),
                  lambda v: v in BATCH_NORM_PLACEMENTS, list(BATCH_NORM_PLACEMENTS))
    if not isinstance(data.get("dropout", {}), Mapping):
        raise checker.fail("section 'dropout' must be a mapping of ['conv', 'dense']")
    for key, leaf in data.get("dropout", {}).items():
        checker.check(f"dropout.{key}", leaf, _rate, "a rate in [0, 1)")
    dense = data.get("dense", {})
    if "dense" in data and "units" not in dense:
        raise checker.fail("missing dense.units")
    for key in ("num_layers", "units"):
        if key in dense:
            checker.check(f"dense.{key}", dense[key], _positive_int, "a positive integer")
    checker.check("dense.activation", dense.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))


def _check_optimizer(checker: _Checker, opt: Mapping[str, Any]) -> None:
    if "name" not in opt or "learning_rate" not in opt:
        raise checker.fail("the optimizer section needs 'name' and 'learning_rate'")
    names = checker.leaf_values("optimizer.name", opt["name"])
    for name in names:
        if name not in OPTIMIZERS:
            raise checker.fail(f"optimizer.name: {name!r} is not one of {list(OPTIMIZERS)}")
    lr = opt["learning_rate"]
    for name in names:
        if isinstance(lr, Mapping) and not _is_range(lr) and name not in lr:
            raise checker.fail(f"optimizer.learning_rate has no entry for optimizer {name!r}")
        checker.check(
            f"optimizer.learning_rate.{name}",
            _per_optimizer(lr, name),
            lambda v: isinstance(v, (int, float)) and v > 0,
            "a positive number",
        )
    momentum = opt.get("momentum")
    if momentum is not None:
        if not (isinstance(momentum, Mapping) and not _is_range(momentum)):
            raise checker.fail("optimizer.momentum is given per optimizer, e.g. {sgd: 0.9}")
        for name, leaf in momentum.items():
            if name not in ("sgd", "rmsprop"):
                raise checker.fail(
                    f"optimizer.momentum.{name}: only sgd and rmsprop take a momentum"
                )
            checker.check(f"optimizer.momentum.{name}", leaf, _rate, "a number in [0, 1)")
    variants = opt.get("variants", {})
    if not isinstance(variants, Mapping):
        raise checker.fail("optimizer.variants is given per optimizer, e.g. "
                           "{adam: {keras: {}, tf1: {epsilon: 1.0e-8}}}")
    for name, named in variants.items():
        where = f"optimizer.variants.{name}"
        if name not in OPTIMIZERS:
            raise checker.fail(f"{where}: {name!r} is not one of {list(OPTIMIZERS)}")
        if not isinstance(named, Mapping) or not named:
            raise checker.fail(f"{where}: a mapping of variant names to Keras arguments")
        for variant, arguments in named.items():
            arguments = arguments or {}
            bad = set(arguments) - set(_VARIANT_ARGUMENTS) if isinstance(arguments, Mapping) \
                else {"(not a mapping)"}
            if bad:
                raise checker.fail(f"{where}.{variant}: unknown argument(s) {sorted(bad)}; "
                                   f"a variant fixes some of {list(_VARIANT_ARGUMENTS)}")
            try:  # the spec's own checks: which optimizer takes which argument, and ranges
                ArchitectureSpec((Flatten(),), optimizer=OptimizerSpec(name, 1.0, **arguments))
            except (SpecError, TypeError) as exc:
                raise checker.fail(f"{where}.{variant}: {exc}") from None


def _check_training(checker: _Checker, training: Mapping[str, Any]) -> None:
    augmentation = training.get("augmentation", {})
    if not isinstance(augmentation, Mapping):
        raise checker.fail(f"training.augmentation: a mapping of {list(_AUGMENTATION_KEYS)}")
    bad = set(augmentation) - set(_AUGMENTATION_KEYS)
    if bad:
        raise checker.fail(f"unknown key(s) {sorted(bad)} in 'training.augmentation'; "
                           f"expected some of {list(_AUGMENTATION_KEYS)}")
    for key, leaf in augmentation.items():
        checker.check(
            f"training.augmentation.{key}", leaf,
            lambda v: isinstance(v, (int, float)) and 0 <= v <= MAX_AUGMENTATION,
            f"a factor in [0, {MAX_AUGMENTATION}]",
        )
    checker.check("training.lr_schedule", training.get("lr_schedule", "constant"),
                  lambda v: v in LR_SCHEDULES, list(LR_SCHEDULES))
    checker.check("training.label_smoothing", training.get("label_smoothing", 0.0),
                  lambda v: isinstance(v, (int, float)) and 0 <= v < 0.5, "a number in [0, 0.5)")
