"""Precise batch norm: re-estimate BatchNormalization statistics for the current weights.

Keras' ``BatchNormalization`` keeps exponential moving averages of the batch statistics with
momentum 0.99 (PyTorch's equivalent is 0.9), so each average remembers about the last 100 steps,
taken with weights that have since moved. After a few hundred steps (one epoch on a subset, the
budgets of a low-fidelity search), the moving statistics lag the weights and inference-mode
accuracy says little about the architecture: measured here (``scripts/bench_precise_bn.py
--accuracy``), baseline ``s000_m2`` after one epoch on 10,000 images scored val_accuracy 0.107
with Keras' moving statistics and 0.956 after re-estimating them on 4,000 training images.

"Precise BN" (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576, section 3;
used by pycls and Detectron2, implemented as ``fvcore.nn.precise_bn.update_bn_stats``) replaces
the moving statistics by population statistics of each BN layer's inputs over a fixed set of
training images, computed with the current weights. fvcore runs the model in training mode and
averages the per-batch statistics; here the forward passes run in inference mode, BN layer by BN
layer: a BN layer's inputs are computed after the BN layers before it have been re-estimated, so
each layer's statistics are exactly those of the inputs it sees at inference (dropout off, earlier
BN layers normalising with their new statistics). BN layers that do not depend on each other
(parallel branches) share a pass.

Variances are population (biased) variances, as Keras' BatchNormalization uses for its moving
variance (``keras.ops.moments``); PyTorch stores the unbiased variance instead.

The module uses only ``keras`` and ``keras.ops``, so it runs on the TensorFlow and JAX backends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

logger = logging.getLogger(__name__)

PRECISE_BN_IMAGES = 2_000
"""Training images used to re-estimate BN statistics, per trial.

On ``s000_m2`` and ``s001_m1`` (1 epoch on 10,000 images) 250 to 10,000 images give val_accuracy
within 0.002 of each other (``docs/benchmarks.md``), while the cost grows with the number: at
4,000 images it reached 3.1% of a full-data epoch for ``s001_m1`` (over the 3% per-trial overhead
budget), at 2,000 it is about half that for the same accuracy.
"""

STATISTICS_BATCH_SIZE = 1_000
"""Images per forward pass when collecting statistics (inference only, no gradients)."""


class _PerImageMoments(keras.layers.Layer):
    """Per-image mean and variance of each channel: (batch, ...) -> (batch, 2, channels).

    Reduces over every axis except the batch axis and ``axis`` (the BN layer's channel axis).
    Per-image moments combine exactly into population moments (every image has the same number of
    positions), and the output is a few floats per image, so ``predict`` keeps no feature maps.
    """

    def __init__(self, axis: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x: Any) -> Any:
        x = keras.ops.cast(x, "float32")
        rank = len(x.shape)
        axis = self.axis % rank
        reduce = [i for i in range(1, rank) if i != axis]
        if reduce:
            mean, variance = keras.ops.moments(x, axes=reduce)
        else:  # a BN on a (batch, units) vector: one position per image
            mean, variance = x, keras.ops.zeros_like(x)
        return keras.ops.stack([mean, variance], axis=1)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The ``BatchNormalization`` layers of ``model`` (top level), in topological order."""
    return [
        layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _input_of(model: keras.Model, layer: keras.layers.Layer) -> Any:
    """The symbolic input of ``layer`` inside ``model``'s own graph.

    ``layer.input`` is the input of the layer's first call anywhere; building a probe model from
    intermediate tensors calls the layers again (Keras clones that part of the graph), so the
    call that belongs to ``model`` is found by Keras' node keys (``make_node_key`` in
    ``keras/src/ops/function.py``), which a functional model keeps in ``_nodes``.

    Raises:
        ValueError: the layer is called more than once in ``model`` (a shared layer).
    """
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph there
    own = getattr(graph, "_nodes", None)
    if own is None:
        return layer.input
    calls = [
        node for index, node in enumerate(layer._inbound_nodes)
        if f"{id(layer)}_ib-{index}" in own
    ]
    if len(calls) != 1:
        raise ValueError(f"layer {layer.name!r} is called {len(calls)} times in the model")
    return calls[0].input_tensors[0]


def _group_by_depth(
    model: keras.Model, layers: Sequence[keras.layers.BatchNormalization]
) -> list[list[keras.layers.BatchNormalization]]:
    """Groups of BN layers: group k holds the layers with k-1 BN layers on the longest BN chain
    upstream of their input.

    A layer's statistics depend on those of every BN layer upstream of it, so groups are
    re-estimated in order; the layers within one group share a forward pass.
    """
    depth: dict[int, int] = {}
    for layer in layers:  # model.layers is topologically sorted
        upstream = keras.Model(model.inputs, _input_of(model, layer))
        before = [depth[id(x)] for x in upstream.layers if id(x) in depth]
        depth[id(layer)] = 1 + max(before, default=0)
    groups: list[list[keras.layers.BatchNormalization]] = [
        [] for _ in range(max(depth.values(), default=0))
    ]
    for layer in layers:
        groups[depth[id(layer)] - 1].append(layer)
    return groups


CACHE_BYTES_PER_IMAGE = 32 * 1024
"""Largest BN input (bytes per image, all BN layers of one pass) kept in memory between passes.

A pass whose BN inputs are at most this size keeps them (128 MiB for 4,000 images), and the next
pass starts from them instead of from the images, so the layers before them run once rather than
once per pass. After a pass with larger inputs, the next pass starts from the images again.
Either way the statistics come from per-image moments computed inside the probe model.
"""


@dataclass
class _Pass:
    """One forward pass: the BN layers it re-estimates and the model that feeds them."""

    layers: list[keras.layers.BatchNormalization]
    probe: keras.Model
    from_previous: bool  # inputs are the previous pass's kept BN inputs, not the images
    keeps_inputs: bool  # also outputs the raw BN inputs (kept for the next pass)
    slots: list[int]  # for each layer, the index of its input's moments among the outputs


def _unique_inputs(
    model: keras.Model, layers: Sequence[keras.layers.BatchNormalization],
) -> tuple[list[Any], list[int]]:
    """The distinct input tensors of ``layers`` and, per layer, the index of its input."""
    tensors: list[Any] = []
    slots = []
    for layer in layers:
        tensor = _input_of(model, layer)
        index = next((i for i, t in enumerate(tensors) if t is tensor), None)
        if index is None:
            tensors.append(tensor)
            index = len(tensors) - 1
        slots.append(index)
    return tensors, slots


def _itemsize(dtype: Any) -> int:
    """Bytes per element of a Keras dtype name ("float32", "bfloat16", ...)."""
    digits = "".join(c for c in str(dtype) if c.isdigit())
    return int(digits) // 8 if digits else 4


def _structure(tensors: Sequence[Any]) -> Any:
    """One tensor as itself, several as a list: the structure ``_predict`` feeds."""
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _plan(model: keras.Model, layers: Sequence[keras.layers.BatchNormalization]) -> list[_Pass]:
    passes: list[_Pass] = []
    groups = _group_by_depth(model, layers)
    previous: list[Any] | None = None  # the kept inputs of the previous pass, if it kept them
    for number, group in enumerate(groups):
        tensors, slots = _unique_inputs(model, group)
        is_last = number == len(groups) - 1
        size = sum(math.prod(t.shape[1:]) * _itemsize(t.dtype) for t in tensors)
        keeps = not is_last and size <= CACHE_BYTES_PER_IMAGE
        outputs = [_PerImageMoments(group[slots.index(i)].axis)(t) for i, t in enumerate(tensors)]
        if keeps:
            outputs += list(tensors)
        probe = None
        if previous is not None:
            try:
                probe = keras.Model(_structure(previous), outputs)
            except ValueError:  # a path to this pass bypasses the kept tensors: start afresh
                probe = None
        passes.append(_Pass(
            layers=list(group),
            probe=probe if probe is not None else keras.Model(_structure(model.inputs), outputs),
            from_previous=probe is not None,
            keeps_inputs=keeps,
            slots=slots,
        ))
        previous = tensors if keeps else None
    return passes


def _moments_of(per_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population mean and variance per channel from (n, 2, channels) per-image moments."""
    per_image = np.asarray(per_image, dtype=np.float64)
    means, variances = per_image[:, 0], per_image[:, 1]
    # Law of total variance: mean within-image variance plus variance of the image means.
    return means.mean(axis=0), variances.mean(axis=0) + means.var(axis=0)


def _predict(probe: keras.Model, feed: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """``probe``'s outputs on ``feed``, batch by batch, concatenated (a list, one per output).

    ``predict_on_batch`` in a loop: ``predict`` builds a data adapter and iterator per call,
    which cost about 0.1 s each here, more than a pass over small BN inputs itself. All batches
    have one size (the last one padded by repeating its first row, the padding's outputs
    dropped; every output is per image), so the compiled function is traced once.
    """
    n = len(feed[0])
    num_batches = math.ceil(n / batch_size)
    size = math.ceil(n / num_batches)  # equal batches, the last at most num_batches - 1 short
    chunks: list[list[np.ndarray]] = []
    for begin in range(0, n, size):
        batch = [x[begin:begin + size] for x in feed]
        short = size - len(batch[0])
        if short:
            batch = [np.concatenate([x, np.repeat(x[:1], short, axis=0)]) for x in batch]
        out = probe.predict_on_batch(batch if len(batch) > 1 else batch[0])
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        chunks.append([np.asarray(y)[: size - short] for y in out])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


class BatchNormStatistics:
    """Re-estimates the BN statistics of one model; the probe models are built once.

    Args:
        model: a built functional (or Sequential) ``keras.Model``; its top-level
            ``BatchNormalization`` layers are the ones updated.

    Raises:
        ValueError: the model is not functional (no symbolic inputs), or a BN layer is shared
            (called on more than one input), so its inputs are not one tensor.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.layers = batch_norm_layers(model)
        self._passes: list[_Pass] = []
        if not self.layers:
            return
        try:
            self._passes = _plan(model, self.layers)
        except (AttributeError, ValueError) as exc:
            raise ValueError(
                f"cannot re-estimate BN statistics of model {model.name!r}: it must be a "
                f"functional model whose BatchNormalization layers are each called once ({exc})"
            ) from None

    @property
    def num_passes(self) -> int:
        """Forward passes per re-estimation (BN layers that depend on each other need one each;
        passes after a kept one start from its BN inputs rather than the images)."""
        return len(self._passes)

    def recompute(self, images: np.ndarray, batch_size: int = STATISTICS_BATCH_SIZE) -> int:
        """Set every BN layer's moving mean and variance to the statistics of its inputs.

        Args:
            images: float32 array (n, 28, 28, 1) in [0, 1] (any shape the model accepts), n >= 1:
                training images, never validation or test images.
            batch_size: images per forward pass, >= 1.

        Returns:
            The number of BN layers updated (0 for a model without BN; then nothing runs).

        Raises:
            ValueError: ``images`` is empty or ``batch_size`` < 1.
        """
        if not self.layers:
            return 0
        if len(images) == 0 or batch_size < 1:
            raise ValueError(
                f"need at least one image and batch_size >= 1, got {len(images)} images and "
                f"batch_size {batch_size}"
            )
        start = time.perf_counter()
        kept: list[np.ndarray] | None = None
        for step in self._passes:
            outputs = _predict(step.probe, kept if step.from_previous else [images], batch_size)
            for layer, slot in zip(step.layers, step.slots, strict=True):
                mean, variance = _moments_of(outputs[slot])
                layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
                layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
            num_moments = max(step.slots) + 1
            kept = outputs[num_moments:] if step.keeps_inputs else None
        logger.debug(
            "re-estimated %d BN layers (%d passes) on %d images in %.2f s",
            len(self.layers), len(self._passes), len(images), time.perf_counter() - start,
        )
        return len(self.layers)


def recompute_batch_norm_statistics(
    model: keras.Model, images: np.ndarray, batch_size: int = STATISTICS_BATCH_SIZE
) -> int:
    """Set every BN layer's moving mean and variance to the population statistics of its inputs.

    Each BN layer's inputs are computed in inference mode on ``images`` after the BN layers
    upstream of it have been updated (see the module docstring); trainable weights, the optimizer
    and BN's gamma/beta are untouched. To do this repeatedly for one model, keep a
    ``BatchNormStatistics(model)``, which builds its probe models once.

    Args:
        model: a built functional (or Sequential) ``keras.Model``; its top-level
            ``BatchNormalization`` layers are updated in place.
        images: float32 array (n, 28, 28, 1) in [0, 1] (any shape the model accepts), n >= 1:
            training images, never validation or test images.
        batch_size: images per forward pass, >= 1.

    Returns:
        The number of BN layers updated (0 for a model without BatchNormalization; nothing runs).

    Raises:
        ValueError: ``images`` is empty or ``batch_size`` < 1; or a BN layer is shared (called
            more than once), or the model is not functional, so its inputs are not one tensor.
    """
    return BatchNormStatistics(model).recompute(images, batch_size)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Re-estimates BN statistics before every validation inside ``fit``.

    Keras 3's ``fit`` validates inside the epoch loop (``evaluate(..., callbacks=callbacks)``) and
    calls ``on_epoch_end`` only afterwards, with the validation metrics; ``on_test_begin`` is the
    hook that runs after the epoch's last training step and before the first validation batch,
    on the TensorFlow and JAX backends alike (``keras/src/backend/*/trainer.py``). Weights saved at
    ``on_epoch_end`` (the best-epoch tracker) therefore carry the re-estimated statistics.

    Args:
        images: the fixed training images (see ``recompute_batch_norm_statistics``).
        batch_size: images per forward pass.

    Attributes:
        durations: wall-clock seconds of each re-estimation (the first includes building and
            tracing the probe models).
        seconds: their sum.
        calls: how many times statistics were re-estimated.
    """

    def __init__(self, images: np.ndarray, batch_size: int = STATISTICS_BATCH_SIZE) -> None:
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self.durations: list[float] = []
        self._statistics: BatchNormStatistics | None = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        start = time.perf_counter()
        if self._statistics is None or self._statistics.model is not self.model:
            self._statistics = BatchNormStatistics(self.model)
        if self._statistics.recompute(self.images, self.batch_size):
            self.durations.append(time.perf_counter() - start)

    @property
    def seconds(self) -> float:
        return sum(self.durations)

    @property
    def calls(self) -> int:
        return len(self.durations)


def precise_bn_images(
    x_train: np.ndarray, num_images: int = PRECISE_BN_IMAGES, seed: int | None = None
) -> np.ndarray:
    """A fixed random subset of the training images for BN re-estimation, in index order.

    Args:
        x_train: float32 array (n, 28, 28, 1), the training split.
        num_images: how many to draw (all of them when n is smaller), >= 1.
        seed: NumPy seed (the trial's seed), so a trial uses the same images every epoch and a
            re-run the same images again.

    Returns:
        float32 array (min(n, num_images), 28, 28, 1), a copy.
    """
    if num_images >= len(x_train):
        return x_train
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(x_train), size=num_images, replace=False))
    return x_train[index]
