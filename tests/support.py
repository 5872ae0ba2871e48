"""Helpers shared by the test modules: a small search space, the CLI's search arguments, MLflow
runs of a study, a snippet run on the JAX backend. Test modules import them with
``from support import ...`` (``tests`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nas_mnist.data import DataSplits

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every architecture is valid ('same' padding) and trains in about a second.
TINY_SPACE = {
    "name": "tiny",
    "conv": {"depth": [3], "filters": [4, 8], "kernel_size": [3], "padding": ["same"]},
    "pooling": {"every": [1], "pool_size": 2, "padding": "valid"},
    "batch_norm": ["none"],
    "dense": {"num_layers": 1, "units": [16]},
    "optimizer": {"name": ["adam"],
                  "learning_rate": {"adam": {"low": 1e-3, "high": 1e-2, "log": True}}},
    "batch_size": [128],
}

# A small space so that each trial trains in seconds on CPU; it keeps 'valid' 7x7 convs so that
# some sampled architectures are impossible (pruned without training).
SMALL_SPACE = {
    "name": "small",
    "conv": {"depth": [3], "filters": [4, 8], "kernel_size": [3, 7], "padding": ["same", "valid"]},
    "pooling": {"every": [1], "pool_size": 2, "padding": "valid"},
    "batch_norm": ["none", "after_conv"],
    "dense": {"num_layers": 1, "units": [16]},
    "optimizer": {"name": ["adam"], "learning_rate": {"adam": {"low": 1e-3, "high": 1e-2,
                                                                "log": True}}},
    "batch_size": [128],
}


def random_splits(n: int = 300, test: int = 20, validation: int = 50) -> DataSplits:
    """``DataSplits`` of random images and labels (seed 0): ``n`` training images, of which the
    last ``validation`` are held out, and ``test`` test images."""
    import numpy as np

    from nas_mnist.data import MnistArrays, make_splits

    rng = np.random.default_rng(0)
    arrays = MnistArrays(
        x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n), x_test=rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, test), source="random")
    return make_splits(arrays, validation_size=validation)

def mlflow_uri() -> str:
    """The MLflow store of the current folder, as an absolute URI: MLflow caches one store per
    URI string in a process, so a relative URI would reach the first test's folder."""
    return f"sqlite:///{Path.cwd() / 'm.db'}"


def search_args(data: Path, trials: int, *extra: str) -> list[str]:
    return ["search", "--trials", str(trials), "--epochs", "1", "--max-train-samples", "500",
            "--data", str(data), "--storage", "sqlite:///s.db", "--study-name", "demo",
            "--tracking-uri", mlflow_uri(), "--no-progress", *extra]


def mlflow_runs(tracking_uri: str, experiment: str) -> tuple[list, list]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nas_mnist.role") == "study"]
    children = [r for r in runs if r.data.tags.get("nas_mnist.role") == "trial"]
    return parents, children


def run_on_jax(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the Python snippet ``code`` in a fresh process with ``KERAS_BACKEND=jax`` (the backend
    is fixed per process), from the repository root; its output captured as text."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=timeout)
