"""What a spec costs to train: FLOPs of a forward pass, and seconds per training image measured.

``forward_flops`` is arithmetic on the spec (no TensorFlow import): the multiply-accumulates of
its conv and dense layers, the output layer included, counted as 2 FLOPs each (the convention of
most papers' FLOPs tables). Pooling, batch norm, activations, dropout and augmentation are
elementwise and left out: they are a small share of the time of every catalog model
(``docs/benchmarks.md``).

``measure_step_cost`` times a few training and evaluation steps of one spec on this process's
device, on real images, after one warm-up step each (graph tracing). A search's projection
measures two specs and scales the others by their FLOPs (``nas_mnist.timing.CostModel``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, Branches, Conv, Dense, Layer, apply_layer
from nas_mnist.trial_attributes import TOO_COSTLY_REASON, TOO_LARGE_REASON

CALIBRATION_STEPS = 3
"""Training (and evaluation) steps timed per spec by ``measure_step_cost``, after one warm-up."""


def _layer_macs(layer: Layer, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """(multiply-accumulates per image, output shape) of ``layer`` on an input of ``shape``."""
    out, params = apply_layer(layer, shape)
    if isinstance(layer, Conv):  # params = (k * k * c_in + 1) * filters
        return out[0] * out[1] * (params - layer.filters), out
    if isinstance(layer, Dense):  # params = (inputs + 1) * units
        return params - layer.units, out
    if isinstance(layer, Branches):
        total = 0
        for branch in layer.branches:
            inner = shape
            for sub in branch:
                macs, inner = _layer_macs(sub, inner)
                total += macs
        return total, out
    return 0, out


def forward_flops(spec: ArchitectureSpec) -> int:
    """FLOPs of one forward pass of one 28x28x1 image through ``spec``.

    2 FLOPs per multiply-accumulate of every conv (``out_h * out_w * filters * k * k * c_in``) and
    dense (``inputs * units``) layer, branches and the output layer included. A training step
    costs about 3 forward passes (forward, and the two products of the backward pass).

    Example:
        >>> from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
        >>> forward_flops(ArchitectureSpec(layers=(Flatten(), Dense(128))))
        203264

    Returns:
        FLOPs per image (an int >= 0).
    """
    shape = tuple(spec.shape_table()[0].shape)
    macs = 0
    for layer in spec.layers:
        layer_macs, shape = _layer_macs(layer, shape)
        macs += layer_macs
    if len(shape) != 1:  # the implicit Flatten before the output layer
        shape = (shape[0] * shape[1] * shape[2],)
    macs += _layer_macs(spec.output, shape)[0]
    return 2 * macs


def limit_reason(spec: ArchitectureSpec, max_params: int | None = None,
                 max_mflops: int | None = None) -> str | None:
    """Why a search prunes ``spec`` before training, or None when it is within the limits.

    Args:
        spec: the spec.
        max_params: ``--max-params``, the most parameters (a memory guard); None: no limit.
        max_mflops: ``--max-mflops``, the most forward MFLOPs per image (``forward_flops`` /
            1e6; a time guard: a trial's seconds follow its FLOPs); None: no limit.

    Returns:
        "too_large: N params exceed --max-params M", "too_costly: X MFLOPs per image exceed
        --max-mflops M", or None.
    """
    if max_params is not None and spec.num_params > max_params:
        return (f"{TOO_LARGE_REASON}: {spec.num_params:,} params exceed --max-params "
                f"{max_params:,}")
    if max_mflops is not None and forward_flops(spec) > max_mflops * 1e6:
        return (f"{TOO_COSTLY_REASON}: {forward_flops(spec) / 1e6:,.1f} MFLOPs per image exceed "
                f"--max-mflops {max_mflops:,}")
    return None


@dataclass(frozen=True)
class StepCost:
    """Measured seconds per image of one spec on this process's device.

    Attributes:
        flops: the spec's ``forward_flops``.
        train: seconds per training image (forward and backward pass and the optimizer's update,
            at the spec's batch size).
        evaluate: seconds per evaluated image (forward pass, at the evaluation batch size), what
            validation, precise BN and the test evaluation cost per image.
    """

    flops: int
    train: float
    evaluate: float


def _median_seconds(step: Callable[[], Any], steps: int) -> float:
    """Median wall-clock seconds of ``steps`` calls of ``step``, after one untimed call."""
    step()  # warm-up: traces the function
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure_step_cost(
    spec: ArchitectureSpec,
    images: Any,
    labels: Any,
    *,
    steps: int = CALIBRATION_STEPS,
    batch_size: int | None = None,
    eval_batch_size: int = 1000,
) -> StepCost:
    """Seconds per training image and per evaluated image of ``spec``, measured on this
    process's Keras device.

    Builds and compiles the model as a trial does (augmentation and label smoothing included),
    then times ``steps`` training steps (``train_on_batch``) and ``steps`` evaluation steps
    (``test_on_batch``), each after one untimed warm-up step (graph tracing). Keras' global state
    gains one model: call it before training starts (``train_spec`` clears the state) or in a
    benchmark.

    Args:
        spec: the architecture and recipe.
        images: float32 images (n, 28, 28, 1) in [0, 1]; batches are the first images.
        labels: int labels 0..9, shape (n,).
        steps: timed steps of each kind, >= 1.
        batch_size: training images per step; None: ``spec.batch_size`` (at most n).
        eval_batch_size: evaluated images per step (at most n); the default is the search's
            (``nas_mnist.model.training.EVAL_BATCH_SIZE``).

    Returns:
        The ``StepCost`` (medians over the timed steps).

    Raises:
        ValueError: no images, or ``steps`` < 1.
    """
    from nas_mnist.model.builder import build_model, compile_model

    if steps < 1 or len(images) == 0:
        raise ValueError(f"need steps >= 1 and some images, got steps={steps}, "
                         f"{len(images)} images")
    train_n = min(batch_size or spec.batch_size, len(images))
    eval_n = min(eval_batch_size, len(images))
    model = compile_model(build_model(spec), spec)
    train = _median_seconds(lambda: model.train_on_batch(images[:train_n], labels[:train_n]),
                            steps)
    evaluate = _median_seconds(lambda: model.test_on_batch(images[:eval_n], labels[:eval_n]),
                               steps)
    return StepCost(forward_flops(spec), train / train_n, evaluate / eval_n)
