"""The blocks layout (a ``blocks:`` section; the shipped default): a stack of conv blocks, each of
1-2 conv layers, an optional max pool, an optional BatchNorm and a dropout, then a dense head.

Params, per block ``b`` (1-based): ``block{b}_num_convs``, ``block{b}_strides`` (of its first
conv), ``block{b}_conv{k}_filters|kernel_size|padding``, ``block{b}_pool`` ("none", "valid",
"same"), ``block{b}_pool_size`` and ``block{b}_pool_strides`` (only for a pooled block),
``block{b}_batch_norm`` and ``block{b}_dropout``; per model: ``kernel_initializer``,
``bias_initializer``, ``conv_activation``, ``num_blocks``, ``dense_input_dropout``,
``dense_num_layers``, ``dense_activation``, ``dense_batch_norm``, ``dense_dropout``,
``dense{j}_units`` and ``output_kernel_initializer``. Layer order in a block: conv(s), pool,
BatchNorm, Dropout.
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
    Initializer,
    Layer,
    MaxPool,
)
from nas_mnist.search_space.initializers import initializer_choice, parse_initializer
from nas_mnist.search_space.layout import split_at_flatten
from nas_mnist.search_space.leaves import ROUND_DIGITS, sample
from nas_mnist.search_space.trials import SuggestingTrial

POOLS = ("none", "valid", "same")
"""A block's pooling; "valid"/"same" are max pools with that padding."""


class BlocksLayout:
    """The blocks layout (see the module docstring); implements ``layout.Layout``."""

    name = "blocks"

    def suggest(
        self, trial: SuggestingTrial, config: Mapping[str, Any]
    ) -> tuple[list[Layer], Dense]:
        """The conv blocks, ``Flatten`` and dense head, and the 10-unit softmax output layer.

        Raises:
            SpecError: a sampled initializer is not of the form ``name(argument=number, ...)``.
        """
        return suggest_blocks(trial, config)

    def read_params(
        self, spec: ArchitectureSpec, config: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The blocks layout's params read off ``spec``, or None (see ``read_block_params``)."""
        return read_block_params(spec, config)


BLOCKS = BlocksLayout()


# --- sampling ----------------------------------------------------------------------------------


def suggest_blocks(trial: SuggestingTrial, c: Mapping[str, Any]) -> tuple[list[Layer], Dense]:
    """The layers of the blocks layout and the output layer (see the module docstring)."""
    blocks = c["blocks"]
    initializers = c.get("initializers", {})
    shared = {
        "kernel_initializer": parse_initializer(
            sample(trial, "kernel_initializer", initializers.get("kernel", "glorot_uniform"))
        ),
        "bias_initializer": parse_initializer(
            sample(trial, "bias_initializer", initializers.get("bias", "zeros"))
        ),
    }
    activation = sample(trial, "conv_activation", blocks.get("activation", "relu"))

    layers: list[Layer] = []
    for b in range(1, sample(trial, "num_blocks", blocks["num_blocks"]) + 1):
        layers += _suggest_block(trial, blocks, f"block{b}_", activation=activation, **shared)
    layers.append(Flatten())
    layers += _suggest_dense_head(trial, c.get("dense", {"num_layers": 0}), **shared)
    output = Dense(
        NUM_CLASSES,
        activation="softmax",
        kernel_initializer=parse_initializer(
            sample(
                trial,
                "output_kernel_initializer",
                initializers.get("output_kernel", "glorot_uniform"),
            )
        ),
    )
    return layers, output


def _suggest_block(
    trial: SuggestingTrial, blocks: Mapping[str, Any], prefix: str, **conv_arguments: Any
) -> list[Layer]:
    """One conv block's layers; its params are named ``{prefix}...`` (``block2_pool``).

    ``conv_arguments`` (activation and initializers) go to every conv layer of the block.
    """
    num_convs = sample(trial, f"{prefix}num_convs", blocks.get("num_convs", 1))
    strides = sample(trial, f"{prefix}strides", blocks.get("strides", 1))
    layers: list[Layer] = []
    for k in range(1, num_convs + 1):
        layers.append(
            Conv(
                filters=sample(trial, f"{prefix}conv{k}_filters", blocks["filters"]),
                kernel_size=sample(trial, f"{prefix}conv{k}_kernel_size", blocks["kernel_size"]),
                strides=strides if k == 1 else 1,
                padding=sample(trial, f"{prefix}conv{k}_padding", blocks.get("padding", "same")),
                **conv_arguments,
            )
        )
    pool = sample(trial, f"{prefix}pool", blocks.get("pool", "none"))
    if pool != "none":
        pool_size = sample(trial, f"{prefix}pool_size", blocks.get("pool_size", 2))
        pool_strides = sample(
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
    if sample(trial, f"{prefix}batch_norm", blocks.get("batch_norm", False)):
        layers.append(BatchNorm())
    rate = sample(trial, f"{prefix}dropout", blocks.get("dropout", 0.0))
    if rate > 0:
        layers.append(Dropout(round(rate, ROUND_DIGITS)))
    return layers


def _suggest_dense_head(
    trial: SuggestingTrial,
    dense: Mapping[str, Any],
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
) -> list[Layer]:
    """The layers after ``Flatten`` up to the output layer: input dropout, hidden dense layers
    (each followed by an optional BatchNorm and a dropout)."""
    layers: list[Layer] = []
    rate = sample(trial, "dense_input_dropout", dense.get("input_dropout", 0.0))
    if rate > 0:
        layers.append(Dropout(round(rate, ROUND_DIGITS)))
    num_dense = sample(trial, "dense_num_layers", dense.get("num_layers", 1))
    if not num_dense:
        return layers
    activation = sample(trial, "dense_activation", dense.get("activation", "relu"))
    batch_norm = sample(trial, "dense_batch_norm", dense.get("batch_norm", False))
    dense_rate = sample(trial, "dense_dropout", dense.get("dropout", 0.0))
    for j in range(1, num_dense + 1):
        layers.append(
            Dense(
                units=sample(trial, f"dense{j}_units", dense["units"]),
                activation=activation,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
            )
        )
        if batch_norm:
            layers.append(BatchNorm())
        if dense_rate > 0:
            layers.append(Dropout(round(dense_rate, ROUND_DIGITS)))
    return layers


# --- spec -> params ----------------------------------------------------------------------------


def read_block_params(spec: ArchitectureSpec, c: Mapping[str, Any]) -> dict[str, Any] | None:
    """Read the blocks layout's params off a spec, else None (it has no such shape).

    Blocks are read greedily: a conv starts a block, a following stride-1 conv joins it, then
    an optional pool, BatchNorm and Dropout close it. (Two 1-conv blocks with nothing between
    them describe the same layers as one 2-conv block; the greedy reading picks the latter.)
    """
    split = split_at_flatten(spec)
    if split is None:
        return None
    body, head = split
    convs = [x for x in body if isinstance(x, Conv)]
    if not convs:
        return None
    block_params = _read_blocks(body)
    if block_params is None:
        return None
    initializers = c.get("initializers", {})
    return {
        "kernel_initializer": initializer_choice(
            initializers.get("kernel", "glorot_uniform"), convs[0].kernel_initializer
        ),
        "bias_initializer": initializer_choice(
            initializers.get("bias", "zeros"), convs[0].bias_initializer
        ),
        "conv_activation": convs[0].activation,
        "output_kernel_initializer": initializer_choice(
            initializers.get("output_kernel", "glorot_uniform"), spec.output.kernel_initializer
        ),
        **block_params,
        **_read_dense_head(head),
    }


def _read_blocks(body: list[Layer]) -> dict[str, Any] | None:
    """The per-block params and ``num_blocks`` of the layers before ``Flatten``, else None."""
    params: dict[str, Any] = {}
    i, b = 0, 0
    while i < len(body):
        first = body[i]
        if not isinstance(first, Conv):
            return None
        b += 1
        i = _read_block(first, body, i + 1, f"block{b}_", params)
    params["num_blocks"] = b
    return params


def _read_block(
    first: Conv, body: list[Layer], i: int, prefix: str, params: dict[str, Any]
) -> int:
    """Read the block that starts with the conv ``first`` (``body[i]`` follows it) into
    ``params``; the index after the block."""
    block = [first]
    nxt = body[i] if i < len(body) else None
    if isinstance(nxt, Conv) and nxt.strides == 1:
        block.append(nxt)
        i += 1
    params[f"{prefix}num_convs"] = len(block)
    params[f"{prefix}strides"] = block[0].strides
    for k, conv in enumerate(block, start=1):
        params[f"{prefix}conv{k}_filters"] = conv.filters
        params[f"{prefix}conv{k}_kernel_size"] = conv.kernel_size
        params[f"{prefix}conv{k}_padding"] = conv.padding
    params[f"{prefix}pool"] = "none"
    pool = body[i] if i < len(body) else None
    if isinstance(pool, MaxPool):
        params[f"{prefix}pool"] = pool.padding
        params[f"{prefix}pool_size"] = pool.pool_size
        params[f"{prefix}pool_strides"] = pool.strides or pool.pool_size
        i += 1
    params[f"{prefix}batch_norm"] = i < len(body) and isinstance(body[i], BatchNorm)
    i += params[f"{prefix}batch_norm"]
    params[f"{prefix}dropout"] = 0.0
    dropout = body[i] if i < len(body) else None
    if isinstance(dropout, Dropout):
        params[f"{prefix}dropout"] = dropout.rate
        i += 1
    return i


def _read_dense_head(head: list[Layer]) -> dict[str, Any]:
    """The dense-head params of the layers between ``Flatten`` and the output layer."""
    params: dict[str, Any] = {"dense_input_dropout": 0.0}
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
