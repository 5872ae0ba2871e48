"""The per-layer layout (``conv:`` and ``pooling:`` sections; ``small_cnn.yaml`` and older files):
a depth of conv layers with a pool after every k-th one and one BatchNorm placement for the
whole model, then a dense head.

Params: ``depth``, ``pool_every``, ``batch_norm`` (a placement), ``conv_dropout``,
``dense_dropout``, per conv layer ``i`` (1-based) ``conv{i}_filters|kernel_size|strides|padding|
kernel_initializer``, ``conv_activation``, ``pool_size``, ``pool_padding``, ``dense_num_layers``,
per dense layer ``j`` ``dense{j}_units|kernel_initializer``, ``dense_activation`` and
``output_kernel_initializer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_mnist.architecture.spec import (
    NUM_CLASSES,
    ArchitectureSpec,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool,
)
from nas_mnist.search_space.layout import split_at_flatten
from nas_mnist.search_space.leaves import ROUND_DIGITS, sample
from nas_mnist.search_space.trials import SuggestingTrial

BATCH_NORM_PLACEMENTS = ("none", "after_conv", "after_pool_block", "dense_head")
"""Where BatchNorm goes (one choice for the whole model)."""


class PerLayerLayout:
    """The per-layer layout (see the module docstring); implements ``layout.Layout``."""

    name = "per_layer"

    def suggest(
        self, trial: SuggestingTrial, config: Mapping[str, Any]
    ) -> tuple[list[Layer], Dense]:
        """The conv layers, pools, ``Flatten`` and dense head, and the 10-unit softmax output
        layer."""
        return suggest_per_layer(trial, config)

    def read_params(
        self, spec: ArchitectureSpec, config: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The per-layer params read off ``spec``, or None (see ``read_per_layer_params``)."""
        return read_per_layer_params(spec)


PER_LAYER = PerLayerLayout()


# --- sampling ----------------------------------------------------------------------------------


def suggest_per_layer(
    trial: SuggestingTrial, c: Mapping[str, Any]
) -> tuple[list[Layer], Dense]:
    """The layers of the per-layer layout and the output layer (see the module docstring)."""
    depth = sample(trial, "depth", c["conv"]["depth"])
    pool_every = sample(trial, "pool_every", c["pooling"]["every"])
    batch_norm = sample(trial, "batch_norm", c.get("batch_norm", "none"))
    dropout = c.get("dropout", {})
    conv_dropout = sample(trial, "conv_dropout", dropout.get("conv", 0.0))
    dense_dropout = sample(trial, "dense_dropout", dropout.get("dense", 0.0))

    layers: list[Layer] = []
    for i in range(1, depth + 1):
        layers += _suggest_conv(trial, c, i, batch_norm, pooled=i % pool_every == 0,
                                dropout=conv_dropout)
    layers.append(Flatten())
    dense = c.get("dense", {"num_layers": 1, "units": 128})
    layers += _suggest_dense_head(trial, dense, batch_norm, dense_dropout)
    output = Dense(
        NUM_CLASSES,
        activation="softmax",
        kernel_initializer=sample(
            trial,
            "output_kernel_initializer",
            dense.get("output_kernel_initializer", "glorot_uniform"),
        ),
    )
    return layers, output


def _suggest_conv(
    trial: SuggestingTrial,
    c: Mapping[str, Any],
    i: int,
    batch_norm: str,
    pooled: bool,
    dropout: float,
) -> list[Layer]:
    """Conv layer ``i`` (1-based), then its BatchNorm, pool and dropout where they go."""
    conv, pool = c["conv"], c["pooling"]
    layers: list[Layer] = [
        Conv(
            filters=sample(trial, f"conv{i}_filters", conv["filters"]),
            kernel_size=sample(trial, f"conv{i}_kernel_size", conv["kernel_size"]),
            strides=sample(trial, f"conv{i}_strides", conv.get("strides", 1)),
            padding=sample(trial, f"conv{i}_padding", conv.get("padding", "valid")),
            activation=sample(trial, "conv_activation", conv.get("activation", "relu")),
            kernel_initializer=sample(
                trial,
                f"conv{i}_kernel_initializer",
                conv.get("kernel_initializer", "glorot_uniform"),
            ),
        )
    ]
    if batch_norm == "after_conv":
        layers.append(BatchNorm())
    if pooled:
        layers.append(
            MaxPool(
                pool_size=sample(trial, "pool_size", pool.get("pool_size", 2)),
                padding=sample(trial, "pool_padding", pool.get("padding", "same")),
            )
        )
        if batch_norm == "after_pool_block":
            layers.append(BatchNorm())
        if dropout > 0:
            layers.append(Dropout(round(dropout, ROUND_DIGITS)))
    return layers


def _suggest_dense_head(
    trial: SuggestingTrial, dense: Mapping[str, Any], batch_norm: str, dropout: float
) -> list[Layer]:
    """The hidden dense layers after ``Flatten``, each with its BatchNorm and dropout."""
    layers: list[Layer] = []
    for j in range(1, sample(trial, "dense_num_layers", dense.get("num_layers", 1)) + 1):
        layers.append(
            Dense(
                units=sample(trial, f"dense{j}_units", dense["units"]),
                activation=sample(trial, "dense_activation", dense.get("activation", "relu")),
                kernel_initializer=sample(
                    trial,
                    f"dense{j}_kernel_initializer",
                    dense.get("kernel_initializer", "glorot_uniform"),
                ),
            )
        )
        if batch_norm == "dense_head":
            layers.append(BatchNorm())
        if dropout > 0:
            layers.append(Dropout(round(dropout, ROUND_DIGITS)))
    return layers


# --- spec -> params ----------------------------------------------------------------------------


def read_per_layer_params(spec: ArchitectureSpec) -> dict[str, Any] | None:
    """Read the per-layer layout's params off a spec, else None (it has no such shape)."""
    split = split_at_flatten(spec)
    if split is None:
        return None
    body, head = split
    convs = [x for x in body if isinstance(x, Conv)]
    if not convs or not isinstance(body[0], Conv):
        return None
    params = _read_convs(body)
    params.update(_read_dense_head(head))
    params["batch_norm"] = _batch_norm_placement(body, head)
    params["output_kernel_initializer"] = spec.output.kernel_initializer.name
    return params


def _read_convs(body: list[Layer]) -> dict[str, Any]:
    """The conv, pooling and conv-dropout params of the layers before ``Flatten``."""
    params: dict[str, Any] = {}
    pooled = []  # 1-based conv indices followed (after an optional BatchNorm) by a pool
    i = 0
    for layer in body:
        if isinstance(layer, Conv):
            i += 1
            params.update(
                {
                    f"conv{i}_filters": layer.filters,
                    f"conv{i}_kernel_size": layer.kernel_size,
                    f"conv{i}_strides": layer.strides,
                    f"conv{i}_padding": layer.padding,
                    f"conv{i}_kernel_initializer": layer.kernel_initializer.name,
                }
            )
            params["conv_activation"] = layer.activation
        elif isinstance(layer, MaxPool):
            pooled.append(i)
            params["pool_size"], params["pool_padding"] = layer.pool_size, layer.padding
    params["depth"] = i
    params["pool_every"] = pooled[0] if pooled else i + 1
    dropouts = [x.rate for x in body if isinstance(x, Dropout)]
    params["conv_dropout"] = dropouts[0] if dropouts else 0.0
    return params


def _read_dense_head(head: list[Layer]) -> dict[str, Any]:
    """The dense-head params of the layers between ``Flatten`` and the output layer."""
    dense = [x for x in head if isinstance(x, Dense)]
    dropouts = [x.rate for x in head if isinstance(x, Dropout)]
    params: dict[str, Any] = {
        "dense_dropout": dropouts[0] if dropouts else 0.0,
        "dense_num_layers": len(dense),
    }
    for j, layer in enumerate(dense, start=1):
        params[f"dense{j}_units"] = layer.units
        params[f"dense{j}_kernel_initializer"] = layer.kernel_initializer.name
        params["dense_activation"] = layer.activation
    return params


def _batch_norm_placement(body: list[Layer], head: list[Layer]) -> str:
    """The ``batch_norm`` placement the layers show (one of ``BATCH_NORM_PLACEMENTS``)."""
    if any(isinstance(x, BatchNorm) for x in head):
        return "dense_head"
    if any(isinstance(x, BatchNorm) for x in body):
        after = body[body.index(BatchNorm()) - 1]
        return "after_conv" if isinstance(after, Conv) else "after_pool_block"
    return "none"
