"""Figures: a trial's learning curves, the best model's mistakes, and Optuna's study plots.

Our own figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``,
saved through the Agg canvas): no pyplot, no global state, no window, safe in the objective's
thread. Optuna's study plots come twice: interactive HTML from ``optuna.visualization`` (plotly)
and PNG from ``optuna.visualization.matplotlib``. PNG through plotly would need kaleido and a
Chrome binary, so it is not used. Optuna's matplotlib plots draw with pyplot; they are drawn
with pyplot's non-interactive Agg backend, inside ``matplotlib.rc_context`` so that the ggplot
style they switch on does not leak into other figures.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DPI = 100
"""Dots per inch of every PNG: a 10x6-inch figure is 1000x600 pixels."""

STUDY_PLOTS = (
    "optimization_history",
    "intermediate_values",
    "parallel_coordinate",
    "param_importances",
    "pareto_front",
)
"""Optuna plots written for a study; the file names are ``<kind>.html`` and ``<kind>.png``."""

MAX_LEGEND_ENTRIES = 20
"""Optuna's intermediate-values PNG has one legend entry per trial; above this it is dropped."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


EPOCH_AXIS_LABEL = "epoch (numbered from 0, as Optuna's and MLflow's steps)"
"""The x-axis label of every per-epoch plot. nas-mnist numbers epochs from 0 wherever a user
sees them (plots, report, progress bar, ``best_epoch``), as Optuna reports intermediate values
and MLflow logs metrics with step = 0-based epoch."""

_EPOCH_PLOTS = ("intermediate_values",)
"""Optuna plots whose x axis is the step, i.e. the 0-based epoch."""


def save_learning_curves(
    history: Sequence[Mapping[str, float]], path: str | Path, title: str = ""
) -> Path:
    """Two panels per epoch: loss and val_loss, accuracy and val_accuracy.

    Epochs are numbered from 0 (``EPOCH_AXIS_LABEL``).

    Args:
        history: one dict per epoch with any of loss, accuracy, val_loss, val_accuracy (as in
            ``TrainingResult.history``); accuracies are fractions in [0, 1], losses are
            cross-entropy in nats.
        path: the PNG to write.
        title: figure title (e.g. the trial's run name).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: ``history`` is empty.
    """
    if not history:
        raise ValueError("no epochs to plot: the history is empty")
    epochs = np.arange(len(history))
    fig = _figure(10, 4)
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    for ax, metric, label in ((loss_ax, "loss", "loss"), (accuracy_ax, "accuracy", "accuracy")):
        for key, style in ((metric, "o-"), (f"val_{metric}", "s--")):
            values = [row.get(key, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, label=key)
        ax.set_xlabel(EPOCH_AXIS_LABEL)
        ax.set_ylabel(label)
        ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(0, len(epochs) - 1, 10).round())
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    return Path(path)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Counts of (true class, predicted class).

    Args:
        y_true: int array (n,), values 0..num_classes-1.
        y_pred: int array (n,), values 0..num_classes-1.
        num_classes: number of classes.

    Returns:
        int64 array (num_classes, num_classes); row = true class, column = predicted class.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def save_confusion_matrix(matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The confusion matrix as a heat map with the count in every cell.

    Args:
        matrix: int array (k, k) from ``confusion_matrix``; row = true class.
        path: the PNG to write.
        title: figure title.

    Returns:
        ``path`` as a ``Path``.
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    fig = _figure(7, 6)
    ax = fig.subplots()
    # Log colour scale so that the few mistakes stand out next to the large diagonal.
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    threshold = np.log1p(matrix).max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if np.log1p(matrix[i, j]) > threshold else "black",
            )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
    heading = f"{title}\n" if title else ""
    ax.set_title(f"{heading}accuracy {accuracy:.4f} on {int(matrix.sum()):,} images")
    fig.savefig(path)
    return Path(path)


def save_misclassified_grid(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    path: str | Path,
    max_images: int = 36,
    title: str = "",
) -> Path:
    """A grid of misclassified images, most confident mistakes first.

    Args:
        images: float array (n, 28, 28) or (n, 28, 28, 1), values in [0, 1] (or uint8 0..255).
        y_true: int array (n,), true classes.
        y_pred: int array (n,), predicted classes.
        confidence: float array (n,), the predicted class's probability, in [0, 1].
        path: the PNG to write.
        max_images: at most this many images (a square-ish grid).
        title: figure title.

    Returns:
        ``path`` as a ``Path``; with no mistakes the figure says so.
    """
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    wrong = wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")][:max_images]
    columns = max(1, min(len(wrong), int(np.ceil(np.sqrt(max_images)))))
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig = _figure(1.4 * columns + 0.4, 1.5 * rows + 0.6)
    header = f"{title}: " if title else ""
    fig.suptitle(f"{header}{len(wrong)} of the most confident mistakes (true -> predicted)")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    if len(wrong) == 0:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for ax, i in zip(axes, wrong, strict=False):
        ax.imshow(np.asarray(images[i]).squeeze(), cmap="gray_r")
        ax.set_title(f"{y_true[i]} -> {y_pred[i]} ({confidence[i]:.2f})", fontsize=9)
    fig.savefig(path)
    return Path(path)


def save_study_plot(
    kind: str,
    study: Any,
    out_dir: str | Path,
    include_plotlyjs: bool | str = True,
    **kwargs: Any,
) -> list[Path]:
    """Write one of Optuna's study plots as ``<kind>.html`` (plotly) and ``<kind>.png``.

    Args:
        kind: one of ``STUDY_PLOTS``.
        study: an ``optuna.Study`` (the real study, or a study of derived features).
        out_dir: an existing folder.
        include_plotlyjs: plotly's ``write_html`` option: ``True`` inlines plotly.js (about
            4.7 MB, works offline and inside MLflow's artifact viewer), ``"directory"`` writes
            ``plotly.min.js`` once next to the HTML files.
        **kwargs: passed to both Optuna functions (e.g. ``target_name``).

    Returns:
        The two files written.

    Raises:
        ValueError: unknown ``kind``; or Optuna cannot draw it for this study (e.g. parameter
            importances with fewer than two complete trials).
    """
    if kind not in STUDY_PLOTS:
        raise ValueError(f"unknown study plot {kind!r}; expected one of {', '.join(STUDY_PLOTS)}")
    import matplotlib
    import optuna.visualization
    import optuna.visualization.matplotlib

    out_dir = Path(out_dir)
    html = out_dir / f"{kind}.html"
    png = out_dir / f"{kind}.png"
    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        interactive = getattr(optuna.visualization, f"plot_{kind}")(study, **kwargs)
        if kind in _EPOCH_PLOTS:
            interactive.update_xaxes(title_text=EPOCH_AXIS_LABEL)
        interactive.write_html(html, include_plotlyjs=include_plotlyjs, full_html=True)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        plt.switch_backend("agg")  # no window; Optuna's matplotlib plots draw with pyplot
        with matplotlib.rc_context({"figure.figsize": (10, 6), "figure.dpi": DPI}):
            axes = getattr(optuna.visualization.matplotlib, f"plot_{kind}")(study, **kwargs)
            figure = np.ravel(axes)[0].figure
            try:
                for ax in np.ravel(axes):
                    if kind in _EPOCH_PLOTS:
                        ax.set_xlabel(EPOCH_AXIS_LABEL)
                        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                    legend = ax.get_legend()
                    if legend is not None and len(legend.get_texts()) > MAX_LEGEND_ENTRIES:
                        legend.remove()
                figure.savefig(png, bbox_inches="tight")
            finally:
                plt.close(figure)
    return [html, png]
