"""The quiet start imports TensorFlow only for the TensorFlow backend; the CLI hides TensorFlow's
retracing warnings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

CHECK = ("import sys; from nas_mnist.processes.quiet_start import import_tensorflow_quietly; "
         "import_tensorflow_quietly(); print('tensorflow' in sys.modules)")


def test_quiet_start_leaves_tensorflow_alone_on_another_backend():
    # A GPU host with JAX and no TensorFlow (scripts/gpu_check.sh) must not import it.
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False"


RETRACING = ("5 out of the last 13 calls to <function TensorFlowTrainer.make_predict_function."
             "<locals>.one_step_on_data_distributed> triggered tf.function retracing. Tracing is "
             "expensive")


def test_the_cli_hides_retracing_warnings_unless_verbose(caplog):
    from nas_mnist.cli.main import _command_logging

    tf_logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING):
        with _command_logging(verbose=False):
            tf_logger.warning(RETRACING)
            tf_logger.warning("another TensorFlow warning")
        shown = [r.getMessage() for r in caplog.records]
        assert shown == ["another TensorFlow warning"]
        caplog.clear()
        tf_logger.warning(RETRACING)  # the filter is gone with the command
        with _command_logging(verbose=True):
            tf_logger.warning(RETRACING)
        assert [r.getMessage() for r in caplog.records] == [RETRACING, RETRACING]


def test_api_calls_hide_library_info_lines_and_put_them_back(monkeypatch):
    import mlflow  # noqa: F401  (imported first: its import sets its logger's level)
    import optuna

    from nas_mnist.processes.quiet_start import quiet_libraries

    def shown(logger: logging.Logger, level: int, message: str) -> bool:
        record = logging.makeLogRecord({"name": logger.name, "levelno": level, "msg": message})
        return logger.isEnabledFor(level) and bool(logger.filter(record))

    mlflow_logger, tf_logger = logging.getLogger("mlflow"), logging.getLogger("tensorflow")
    monkeypatch.setattr(mlflow_logger, "level", logging.INFO)  # as MLflow sets it by default
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO)
    try:
        with quiet_libraries():
            assert optuna.logging.get_verbosity() == logging.WARNING  # no INFO line per trial
            assert not shown(mlflow_logger, logging.INFO, "Creating initial MLflow tables...")
            assert shown(mlflow_logger, logging.WARNING, "a real warning")
            assert not shown(tf_logger, logging.WARNING, RETRACING)
            assert shown(tf_logger, logging.WARNING, "another TensorFlow warning")
        assert optuna.logging.get_verbosity() == logging.INFO
        assert shown(mlflow_logger, logging.INFO, "Creating initial MLflow tables...")
        assert shown(tf_logger, logging.WARNING, RETRACING)
        monkeypatch.setattr(logging.getLogger("nas_mnist"), "level", logging.DEBUG)
        with quiet_libraries():  # the user asked for everything
            assert shown(mlflow_logger, logging.INFO, "Creating initial MLflow tables...")
            assert optuna.logging.get_verbosity() == logging.INFO
    finally:
        optuna.logging.set_verbosity(before)
