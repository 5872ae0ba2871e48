"""Train one spec on the MNIST splits: build, compile, fit, keep the best epoch, evaluate.

The trial-specific parts (Optuna reports, MLflow logging, progress bars) come in as Keras
callbacks, so the same function trains a search trial, a baseline and an export ``--retrain``.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.data import DataSplits
from nas_mnist.errors import TrialFailure
from nas_mnist.model.builder import build_model, compile_model
from nas_mnist.model.precise_bn import (
    PRECISE_BN_IMAGES,
    PreciseBatchNorm,
    batch_norm_layers,
    precise_bn_images,
)

EVAL_BATCH_SIZE = 1000
"""Images per batch when evaluating: larger than training batches, since no gradients are kept.
A divisor of the 10,000 validation and test images, so every evaluation batch has one shape: on
JAX, XLA compiles one function per batch shape, and 1,024 left a last batch of 784 images that
compiled the test step a second time."""


@dataclass(frozen=True)
class TrainingOptions:
    """How batches reach the model; none of these changes what is learned.

    ``scripts/bench_training.py`` measures each option against the notebooks' plain ``model.fit``
    on NumPy arrays; ``docs/benchmarks.md`` has the table behind the defaults.

    Attributes:
        input_pipeline: "dataset" feeds ``tf.data`` pipelines built once per process from tensors
            (TensorFlow backend only); "arrays" passes the NumPy arrays to ``fit`` as the
            notebooks do. On JAX both feed ``FullBatches`` (one batch shape for XLA).
        eval_batch_size: images per batch for validation and test evaluation.
        steps_per_execution: training steps per compiled call (Keras' ``steps_per_execution``);
            more steps per call means less Python work per step.
        precise_bn_images: training images on which BN statistics are re-estimated before every
            validation ("precise BN", ``nas_mnist.model.precise_bn``); 0 keeps Keras' moving
            averages. This changes what is measured (validation, test, the kept model's BN
            statistics), not the trainable weights.
    """

    input_pipeline: str = "dataset"
    eval_batch_size: int = EVAL_BATCH_SIZE
    steps_per_execution: int = 1
    precise_bn_images: int = PRECISE_BN_IMAGES

    def __post_init__(self) -> None:
        if self.input_pipeline not in ("dataset", "arrays"):
            raise ValueError(f"input_pipeline must be 'dataset' or 'arrays', got "
                             f"{self.input_pipeline!r}")
        if self.eval_batch_size < 1 or self.steps_per_execution < 1:
            raise ValueError("eval_batch_size and steps_per_execution must be >= 1")
        if self.precise_bn_images < 0:
            raise ValueError(f"precise_bn_images must be >= 0, got {self.precise_bn_images}")


REDUCE_ON_PLATEAU = {"monitor": "val_loss", "factor": 0.5, "patience": 2}
"""``keras.callbacks.ReduceLROnPlateau`` arguments for ``lr_schedule="reduce_on_plateau"``.

Keras' defaults are factor 0.1 and patience 10 epochs, which would never act within a search's
few epochs; halving after 2 epochs without a val_loss improvement acts within them. The other
arguments keep Keras' defaults (min_delta 1e-4, cooldown 0, min_lr 0, mode "auto").
"""


def learning_rate_for(
    spec: ArchitectureSpec, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's learning_rate argument for ``spec.lr_schedule``.

    Args:
        spec: the spec (optimizer.learning_rate, lr_schedule).
        epochs: epochs of the whole training, >= 1.
        steps_per_epoch: optimizer steps per epoch (ceil(training images / batch size)), >= 1.

    Returns:
        ``spec.optimizer.learning_rate`` for "constant" and "reduce_on_plateau" (the callback of
        ``schedule_callbacks`` lowers it), a ``keras.optimizers.schedules.CosineDecay`` from it
        to 0 over ``epochs * steps_per_epoch`` steps for "cosine" (Loshchilov & Hutter 2017,
        arXiv:1608.03983, without restarts or warm-up).
    """
    if spec.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            spec.optimizer.learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
        )
    return spec.optimizer.learning_rate


def schedule_callbacks(spec: ArchitectureSpec) -> list[keras.callbacks.Callback]:
    """Callbacks that carry out ``spec.lr_schedule`` during ``fit`` (``REDUCE_ON_PLATEAU``)."""
    if spec.lr_schedule == "reduce_on_plateau":
        return [keras.callbacks.ReduceLROnPlateau(**REDUCE_ON_PLATEAU, verbose=0)]
    return []


def precise_bn_callbacks(
    model: keras.Model, data: DataSplits, seed: int | None, options: TrainingOptions
) -> list[PreciseBatchNorm]:
    """A ``PreciseBatchNorm`` callback on ``options.precise_bn_images`` training images drawn with
    ``seed``, for a model with BatchNormalization layers; else nothing."""
    if options.precise_bn_images == 0 or not batch_norm_layers(model):
        return []
    images = precise_bn_images(data.x_train, options.precise_bn_images, seed)
    return [PreciseBatchNorm(images, batch_size=options.eval_batch_size)]

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class NanLossError(TrialFailure):
    """The training loss became NaN or infinite; ``reason`` is "nan_loss"."""

    reason = "nan_loss"

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(
            f"training loss is {loss} after epoch {epoch + 1}; "
            "lower the learning_rate or add batch norm"
        )
        self.epoch = epoch


@dataclass
class TrainingResult:
    """What training one spec produced.

    Attributes:
        model: the trained ``keras.Model`` with the best epoch's weights (by val_accuracy).
        history: one dict per epoch with loss, accuracy, val_loss, val_accuracy and seconds.
        best_epoch: 0-based index of the epoch with the highest val_accuracy.
        val_accuracy: val_accuracy of the best epoch, fraction in [0, 1].
        test_accuracy: accuracy of the best-epoch model on the test split, or None if not asked.
        test_loss: cross-entropy on the test split, or None.
        num_params: the model's parameter count.
        train_seconds: wall-clock seconds spent in ``fit`` (all epochs, validation included).
        phase_seconds: wall-clock seconds per phase: "build" (spec to compiled model), "fit"
            (= ``train_seconds``), "test_eval" (0 when the test split is not evaluated),
            "precise_bn" (re-estimating BN statistics, part of "fit"; only for models with BN
            when precise BN is on).
    """

    model: keras.Model
    history: list[dict[str, float]]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float | None
    test_loss: float | None
    num_params: int
    train_seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)


class BestEpoch(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest val_accuracy; stops on a NaN loss."""

    def __init__(self) -> None:
        super().__init__()
        self.best_value = -math.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.history: list[dict[str, float]] = []
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        row = {k: float(logs[k]) for k in EPOCH_METRICS if k in logs}
        row["seconds"] = time.perf_counter() - self._epoch_start
        self.history.append(row)
        loss = row.get("loss", math.nan)
        if not math.isfinite(loss):
            raise NanLossError(epoch, loss)
        value = row.get("val_accuracy", -math.inf)
        if value > self.best_value:
            self.best_value, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze()``).

    Call once per process after start-up (TensorFlow, MLflow, Optuna imported; data loaded).
    Each trial collects garbage up to three times (``release_memory``, Keras' ``clear_session``
    and Optuna's ``gc_after_trial``); with those half a million start-up objects tracked, each
    full collection took about 0.26 s on this project's 2-core CPU machine, after the freeze a
    few microseconds (``scripts/bench_training.py`` measures the per-trial overhead). Frozen
    objects are never freed, which is what start-up objects are anyway.
    """
    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """Free what earlier trials of this process left behind: Keras' global state and garbage.

    Measured with ``scripts/memory_across_trials.py`` (TensorFlow 2.21, CPU): the resident size
    still grows by about 5 to 6 MiB per small trial, inside ``model.fit`` itself (the same growth
    shows when training alone runs in a loop), so a process that runs many trials carries that
    growth; ``docs/results.md`` has the numbers.
    """
    keras.backend.clear_session()
    gc.collect()


class _DatasetCache:
    """``tf.data`` inputs made once per process for one ``DataSplits`` and kept as tensors.

    Converting the NumPy splits to tensors costs a copy of every image; doing it once per process
    (not once per trial, as ``fit`` on arrays does) is the point of this cache.
    """

    def __init__(self) -> None:
        self._splits: DataSplits | None = None
        self._tensors: dict[str, Any] = {}

    def tensors(self, data: DataSplits) -> dict[str, Any]:
        import tensorflow as tf

        if self._splits is not data:
            self._tensors = {}
            self._splits = data
            # On a GPU the splits stay in GPU memory for the whole process (one copy, 220 MB
            # for full MNIST in float32), so no batch is copied from the host.
            device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
            with tf.device(device):
                for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
                    self._tensors[name] = tf.constant(getattr(data, name))
        return self._tensors

    def train(self, data: DataSplits, batch_size: int, seed: int | None) -> Any:
        """Shuffled each epoch (seeded), batched, prefetched.

        The shuffle buffer holds image indices, and each batch is gathered from the tensors: a
        buffer of the images themselves (150 MB for 50,000) made a full-data epoch about 1.5
        times slower than Keras' own NumPy adapter (``docs/benchmarks.md``).
        """
        import tensorflow as tf

        t = self.tensors(data)
        x, y = t["x_train"], t["y_train"]
        return (
            tf.data.Dataset.range(data.num_train)
            .shuffle(data.num_train, seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .map(lambda i: (tf.gather(x, i), tf.gather(y, i)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    def evaluation(self, data: DataSplits, split: str, batch_size: int) -> Any:
        import tensorflow as tf

        t = self.tensors(data)
        return (
            tf.data.Dataset.from_tensor_slices((t[f"x_{split}"], t[f"y_{split}"]))
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )


_DATASETS = _DatasetCache()


def reset_training_state() -> None:
    """Start a new search with nothing of an earlier one in this process (a notebook re-run):
    the cached ``tf.data`` tensors, Keras' global state (``clear_session``) and garbage."""
    global _DATASETS
    _DATASETS = _DatasetCache()
    _JAX_ARRAYS.clear()
    release_memory()


_JAX_ARRAYS: dict[str, Any] = {}


def _device_arrays(data: DataSplits) -> dict[str, Any]:
    """The splits as arrays for ``model.fit``: NumPy, or with JAX on a GPU, ``jax.Array``s put
    on the GPU once per process (``jax.device_put``), so batches are sliced on the device instead
    of copied from the host at every step."""
    names = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    if keras.backend.backend() != "jax":
        return {name: getattr(data, name) for name in names}
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        return {name: getattr(data, name) for name in names}
    if _JAX_ARRAYS.get("splits") is not data:
        _JAX_ARRAYS.clear()
        _JAX_ARRAYS.update({name: jax.device_put(getattr(data, name)) for name in names})
        _JAX_ARRAYS["splits"] = data
    return _JAX_ARRAYS


class FullBatches(keras.utils.PyDataset):
    """Training batches that all hold ``batch_size`` images, reshuffled every epoch (for JAX).

    XLA compiles one train step per batch shape. Keras' array adapter ends an epoch with a
    smaller batch whenever ``batch_size`` does not divide the number of images (50,000 % 128 =
    80), and on JAX that compiled the whole train step a second time: the first epoch of
    ``s000_m1`` on 2,000 images took 7.7 to 8.0 s on this project's CPU, and 5.7 to 6.3 s with
    one batch shape (``scripts/bench_gpu.py batches``; docs/benchmarks.md, section 5). Here every
    epoch takes each image once, in a new seeded order, and fills its last batch up with images
    from the start of that order, so an epoch has as many steps as Keras' own, all of one shape.
    With fewer images than ``batch_size``, the one batch holds all of them.

    Args:
        x: images, (n, 28, 28, 1) float32 (a NumPy array, or a ``jax.Array`` on the GPU).
        y: labels, (n,) int32.
        batch_size: images per batch.
        seed: seed of the shuffling (None: not reproducible).
    """

    def __init__(self, x: Any, y: Any, batch_size: int, seed: int | None) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.num_images = int(x.shape[0])
        self.batch_size = min(batch_size, self.num_images)
        self._rng = np.random.default_rng(seed)
        self.order = self._new_order()

    def __len__(self) -> int:
        return math.ceil(self.num_images / self.batch_size)

    def _new_order(self) -> np.ndarray:
        """A permutation of the images, its first ones repeated to fill the last batch."""
        permutation = self._rng.permutation(self.num_images)
        return np.resize(permutation, len(self) * self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        batch = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[batch], self.y[batch]

    def on_epoch_end(self) -> None:
        self.order = self._new_order()


def _uses_datasets(options: TrainingOptions) -> bool:
    return options.input_pipeline == "dataset" and keras.backend.backend() == "tensorflow"


def fit_inputs(
    data: DataSplits, batch_size: int, seed: int | None, options: TrainingOptions
) -> dict[str, Any]:
    """Keyword arguments for ``model.fit``: training data, batch size, validation data.

    With ``options.input_pipeline == "dataset"`` on TensorFlow, seeded-shuffle ``tf.data``
    pipelines over tensors made once per process; on JAX, ``FullBatches`` over the arrays (one
    batch shape, so one compiled train step); else the NumPy arrays.
    """
    if _uses_datasets(options):
        return {
            "x": _DATASETS.train(data, batch_size, seed),
            "validation_data": _DATASETS.evaluation(data, "val", options.eval_batch_size),
            "shuffle": False,  # the dataset shuffles itself
        }
    arrays = _device_arrays(data)
    validation = {"validation_data": (arrays["x_val"], arrays["y_val"]),
                  "validation_batch_size": options.eval_batch_size}
    if keras.backend.backend() == "jax":
        return {"x": FullBatches(arrays["x_train"], arrays["y_train"], batch_size, seed),
                "shuffle": False, **validation}  # FullBatches shuffles itself
    return {"x": arrays["x_train"], "y": arrays["y_train"], "batch_size": batch_size,
            **validation}


def test_metrics(model: keras.Model, data: DataSplits, options: TrainingOptions) -> tuple[
    float, float
]:
    """(test_loss, test_accuracy) of ``model`` on the test split, in batches of
    ``options.eval_batch_size``. Reporting only: the test split never selects anything."""
    inputs = (
        {"x": _DATASETS.evaluation(data, "test", options.eval_batch_size)}
        if _uses_datasets(options)
        else {"x": _device_arrays(data)["x_test"], "y": _device_arrays(data)["y_test"],
              "batch_size": options.eval_batch_size}
    )
    loss, accuracy = model.evaluate(**inputs, verbose=0)
    return float(loss), float(accuracy)


def train_spec(
    spec: ArchitectureSpec,
    data: DataSplits,
    epochs: int,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int | None = None,
    evaluate_test: bool = True,
    batch_size: int | None = None,
    options: TrainingOptions | None = None,
) -> TrainingResult:
    """Train ``spec`` on ``data.x_train`` and validate each epoch on ``data.x_val``.

    The spec's recipe applies: its augmentation (inside the model), ``lr_schedule``
    (``learning_rate_for``, ``schedule_callbacks``) and label smoothing (in the loss). Before every
    validation, BN statistics are re-estimated for the current weights on
    ``options.precise_bn_images`` training images drawn with ``seed`` ("precise BN",
    ``nas_mnist.model.precise_bn``), so the kept model, its test evaluation and an export carry
    statistics that match their weights.

    Args:
        spec: the architecture and recipe.
        data: the splits (float32 images (n, 28, 28, 1) in [0, 1], int32 labels 0..9).
        epochs: number of passes over the training split, >= 1.
        callbacks: extra Keras callbacks, called after the built-in best-epoch tracker and the
            schedule's callbacks (so ``history`` of the epoch is already recorded when they
            run). A callback may raise
            (e.g. ``optuna.TrialPruned``) to stop training; the exception propagates.
        seed: seeds Python, NumPy and the backend (``keras.utils.set_random_seed``) before the
            model is built, for reproducible initial weights and shuffling.
        evaluate_test: evaluate the best-epoch model once on the test split (reporting only; the
            test split never selects anything).
        batch_size: overrides ``spec.batch_size`` (images per step).
        options: input pipeline settings (default ``TrainingOptions()``).

    Returns:
        A ``TrainingResult`` whose model holds the best epoch's weights.

    Raises:
        NanLossError: the training loss became NaN/inf; raised at the end of that epoch.
        ValueError: ``epochs`` < 1.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    options = options or TrainingOptions()
    release_memory()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    batch_size = batch_size or spec.batch_size
    learning_rate = learning_rate_for(spec, epochs, math.ceil(data.num_train / batch_size))
    model = compile_model(build_model(spec), spec, steps_per_execution=options.steps_per_execution,
                          learning_rate=learning_rate)
    build_seconds = time.perf_counter() - start
    result = fit_compiled_model(model, spec, data, epochs, callbacks=callbacks, seed=seed,
                                batch_size=batch_size, options=options,
                                evaluate_test=evaluate_test)
    result.phase_seconds = {"build": build_seconds, **result.phase_seconds}
    return result


def fit_compiled_model(
    model: keras.Model,
    spec: ArchitectureSpec,
    data: DataSplits,
    epochs: int,
    *,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int | None = None,
    batch_size: int | None = None,
    options: TrainingOptions | None = None,
    evaluate_test: bool = True,
) -> TrainingResult:
    """Train a model built and compiled already: ``train_spec``'s training, also for KerasTuner,
    which builds its trials' models (and Hyperband loads an earlier trial's weights into them).

    Fits epochs ``initial_epoch`` to ``epochs`` with precise BN, the best-epoch tracker, the
    spec's schedule callbacks and ``callbacks`` (in that order), restores the best epoch's weights
    (which include the BN statistics re-estimated for exactly these weights just before that
    epoch's validation, so the test evaluation and an export use them too) and evaluates them on
    the test split. The arguments are ``train_spec``'s; ``seed`` draws the shuffling and the
    precise-BN images only (the weights exist already).

    Returns:
        A ``TrainingResult`` whose phases are "fit", "test_eval" (and "precise_bn").

    Raises:
        NanLossError: the training loss became NaN or infinite.
    """
    options = options or TrainingOptions()
    best = BestEpoch()
    inputs = fit_inputs(data, batch_size or spec.batch_size, seed, options)
    precise_bn = precise_bn_callbacks(model, data, seed, options)
    fit_start = time.perf_counter()
    model.fit(**inputs, epochs=epochs, initial_epoch=initial_epoch,
              callbacks=[*precise_bn, best, *schedule_callbacks(spec), *callbacks], verbose=0)
    train_seconds = time.perf_counter() - fit_start
    phases = {"fit": train_seconds, "test_eval": 0.0}
    if precise_bn:
        phases["precise_bn"] = sum(c.seconds for c in precise_bn)
    if best.best_weights is not None:
        model.set_weights(best.best_weights)
    test_loss = test_accuracy = None
    if evaluate_test:
        eval_start = time.perf_counter()
        test_loss, test_accuracy = test_metrics(model, data, options)
        phases["test_eval"] = time.perf_counter() - eval_start
    return TrainingResult(model=model, history=best.history, best_epoch=best.best_epoch,
                          val_accuracy=best.best_value, test_accuracy=test_accuracy,
                          test_loss=test_loss, num_params=int(model.count_params()),
                          train_seconds=train_seconds, phase_seconds=phases)
