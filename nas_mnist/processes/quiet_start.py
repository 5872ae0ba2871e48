"""A worker process's quiet start: TensorFlow imported with its C++ start-up lines dropped.

The single-process CLI hides TensorFlow's absl/cudart start-up lines (``cli.main``); a ``--jobs``
worker is a fresh interpreter that imports TensorFlow itself, so it does the same here, before
anything imports TensorFlow (``import_tensorflow_quietly``). The CLI's ``cli.quiet`` can import
these names from here (one list of fragments for both).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

TENSORFLOW_STARTUP_NOISE = ("All log messages before absl::InitializeLog()", "I0000 ",
                            "oneDNN custom operations are on", "Could not find cuda drivers",
                            "This TensorFlow binary is optimized to use available CPU",
                            "To enable the following instructions", "rebuild TensorFlow with",
                            "Unable to register cuDNN factory", "Unable to register cuFFT factory",
                            "Unable to register cuBLAS factory", "computation placer already",
                            "cuda_dnn.cc", "cuda_fft.cc", "cuda_blas.cc", "cudart stub")
"""Fragments of the lines TensorFlow's C++ runtime writes to stderr while it is imported.

TensorFlow 2.21 logs through absl before ``absl::InitializeLog()`` runs, so
``TF_CPP_MIN_LOG_LEVEL`` no longer hides them; ``import_tensorflow_quietly`` drops them."""


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (``TENSORFLOW_STARTUP_NOISE``) dropped from
    stderr; any other line it writes is passed on. A no-op once TensorFlow is imported, when
    ``KERAS_BACKEND`` names another backend (e.g. ``jax`` on a GPU host without TensorFlow), or
    when TensorFlow is not installed.

    Works on the file descriptor (the lines come from C++, not Python's ``sys.stderr``).
    """
    import importlib.util
    import sys
    import tempfile

    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if line.strip() and not any(n in line for n in TENSORFLOW_STARTUP_NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


RETRACING_WARNING = "triggered tf.function retracing"
"""TensorFlow's warning when a ``tf.function`` is traced again (Keras' predict and evaluate
functions, once per new model and last-batch shape). It names an internal function and advises on
code nas-mnist's users do not write; the CLI hides it unless ``--verbose``."""


TQDM_WIDGETS_WARNING = "IProgress not found"
"""The start of tqdm's warning when ``tqdm.auto`` is imported in Jupyter without ipywidgets
("IProgress not found. Please update jupyter and ipywidgets ..."); Optuna and MLflow import
``tqdm.auto``, and ``quiet_libraries`` hides it while they are imported."""


class _DropRetracingWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING_WARNING not in record.getMessage()


_RETRACING_FILTER = _DropRetracingWarnings()


def hide_retracing_warnings(hide: bool = True) -> None:
    """Drop (``hide=False``: stop dropping) TensorFlow's ``RETRACING_WARNING`` records on the
    ``tensorflow`` logger, before any of its handlers (absl's and the root's) prints them."""
    logger = logging.getLogger("tensorflow")
    if hide:
        logger.addFilter(_RETRACING_FILTER)
    else:
        logger.removeFilter(_RETRACING_FILTER)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While an API function runs (``nas_mnist.search``, ``retrain``, ``export``, ``report`` in a
    notebook or script): the libraries' chatter hidden as the CLI hides it, and put back after.

    Hidden: TensorFlow's C++ start-up lines (``TF_CPP_MIN_LOG_LEVEL=3`` unless set, and
    ``import_tensorflow_quietly``), its retracing warnings, Optuna's INFO lines (a line per trial
    with every parameter, "A new study created in memory ..."), MLflow's and Alembic's INFO lines
    ("Creating initial MLflow database tables..."; MLflow is imported first, as its import sets
    its logger's level), tqdm's ipywidgets warning in Jupyter (``TQDM_WIDGETS_WARNING``, when
    Optuna or MLflow is first imported here), and the tracebacks Optuna logs for a trial's
    expected failures (``signals.quiet_expected_failures``: interrupted, NaN loss, full disk, ...;
    one line each instead). Other warnings and errors still show. With the
    ``nas_mnist`` logger at DEBUG (``logging.getLogger("nas_mnist").setLevel(logging.DEBUG)``)
    nothing is hidden. Nested uses (the CLI, which sets up its own) change nothing more.
    """
    if logging.getLogger("nas_mnist").isEnabledFor(logging.DEBUG):
        yield
        return
    set_env = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if set_env:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TQDM_WIDGETS_WARNING)
        import_tensorflow_quietly()
        # MLflow sets its logger's level when imported (MLFLOW_LOGGING_LEVEL, else INFO): import
        # it first, or the level set below is undone by an import during the call.
        import mlflow  # noqa: F401
        import optuna

        from nas_mnist.processes.signals import quiet_expected_failures
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, logging.WARNING))
    hidden = _RETRACING_FILTER in logging.getLogger("tensorflow").filters  # by the CLI
    hide_retracing_warnings()
    try:
        with quiet_expected_failures():
            yield
    finally:
        hide_retracing_warnings(hidden)
        optuna.logging.set_verbosity(verbosity)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if set_env and "tensorflow" not in sys.modules:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def quiet_worker_start() -> None:
    """Set up a worker process as the CLI sets up itself without ``--verbose``: TensorFlow's
    and MLflow's log levels (environment, read when they are imported; a value the parent set,
    e.g. ``TF_CPP_MIN_LOG_LEVEL=0`` under ``--verbose``, is kept), then TensorFlow imported
    quietly. Under ``--verbose`` (``TF_CPP_MIN_LOG_LEVEL`` is "0") TensorFlow's lines are kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    hide_retracing_warnings()
    import_tensorflow_quietly()
