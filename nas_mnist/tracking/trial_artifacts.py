"""What each completed trial's MLflow run shows besides its metrics: the Keras model summary
(``model_summary.txt``), its learning curves (``learning_curves.png``) and numeric encodings of its
architecture as metrics (``num.depth``, ``num.mean_kernel_size``, ...).

MLflow's parallel-coordinates chart plots numbers, while the spec's flat params are strings such
as ``arch.kernel_sizes = "3,5,2"``; the encodings are those numbers. They are also what the
study's parallel coordinates and parameter importances use (``nas_mnist.study.plots``):
the raw search-space params are conditional (``conv5_kernel_size`` exists only for depth >= 5)
and out-of-space baselines have none, while the encodings exist for every trial with a spec.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import OPTIMIZERS, ArchitectureSpec, Dense
from nas_mnist.disk_space import is_disk_full

logger = logging.getLogger(__name__)


NUMERIC_PREFIX = "num."
"""Prefix of the numeric architecture encodings logged as MLflow metrics."""


SUMMARY_FILE = "model_summary.txt"


CURVES_FILE = "learning_curves.png"


def numeric_params(spec: ArchitectureSpec) -> dict[str, float]:
    """Numbers that describe an architecture, for parallel-coordinate charts and importances.

    Args:
        spec: the architecture.

    Returns:
        ``depth`` (conv layers), ``mean_kernel_size`` and ``max_kernel_size`` (pixels; 0 without
        convs), ``num_pools``, ``num_batch_norm``, ``num_dense`` (hidden dense layers),
        ``log10_learning_rate``, ``optimizer_index`` (position in ``spec.OPTIMIZERS``: adam 0,
        adadelta 1, sgd 2, rmsprop 3), ``batch_size`` (images per step) and ``log10_params``.
    """
    summary = spec.summary()
    kernels = spec.kernel_sizes
    return {
        "depth": float(spec.depth),
        "mean_kernel_size": float(sum(kernels) / len(kernels)) if kernels else 0.0,
        "max_kernel_size": float(max(kernels, default=0)),
        "num_pools": float(summary["num_pools"]),
        "num_batch_norm": float(summary["num_batch_norm"]),
        "num_dense": float(sum(isinstance(layer, Dense) for layer in spec.layers)),
        "log10_learning_rate": math.log10(spec.optimizer.learning_rate),
        "optimizer_index": float(OPTIMIZERS.index(spec.optimizer.name)),
        "batch_size": float(spec.batch_size),
        "log10_params": math.log10(max(spec.num_params, 1)),
    }


def model_summary_text(model: Any) -> str:
    """``model.summary()`` as text (Keras 3 draws it with box-drawing characters).

    Keras captures the summary with a rich ``Console``; in Jupyter such a console also shows
    an empty output in the cell (one per trial, seen with Keras 3.15 and rich 15), so rich is
    told that this is not Jupyter while the summary is drawn.
    """
    import rich.console

    lines: list[str] = []
    detect = getattr(rich.console, "_is_jupyter", None)
    if detect is not None:
        rich.console._is_jupyter = lambda: False
    try:
        model.summary(print_fn=lambda text, **_: lines.append(text))
    finally:
        if detect is not None:
            rich.console._is_jupyter = detect
    return "\n".join(lines)


def log_trial_artifacts(
    tracker: Any, run_id: str, spec: ArchitectureSpec, result: Any, title: str = ""
) -> None:
    """Log a trained trial's model summary, learning curves and numeric encodings to its run.

    Never raises, but on a full disk (``disk_space.is_disk_full``: the trial stops as the
    free-space check stops it): these are for looking at, and a failure here must not fail a
    trained trial; it is logged as a warning.

    Args:
        tracker: the ``Tracker``.
        run_id: the trial's MLflow run.
        spec: the trial's architecture.
        result: its ``TrainingResult`` (model and per-epoch history).
        title: the learning curves' title (the run name).
    """
    from nas_mnist.plots import save_learning_curves

    try:
        tracker.log_metrics(
            run_id, {NUMERIC_PREFIX + k: v for k, v in numeric_params(spec).items()}
        )
        tracker.log_text(run_id, model_summary_text(result.model), SUMMARY_FILE)
        if result.history:
            with tempfile.TemporaryDirectory(prefix="nas_mnist_") as tmp:
                path = save_learning_curves(result.history, Path(tmp) / CURVES_FILE, title)
                tracker.log_artifact(run_id, str(path))
    except Exception as exc:
        if is_disk_full(exc):
            raise
        logger.warning("could not log the report artifacts of run %s", run_id, exc_info=True)
