"""The MNIST a study trains on, as the MLflow dataset input of its runs.

MLflow's runs table has a "Datasets" column and each run page a "Datasets used" section, filled
by ``log_inputs``. nas-mnist logs one metadata-only dataset (the file is not copied): its name,
its source (the local file as a ``file://`` URI, or Keras' download URL) and its digest (the
file's SHA-256, the one the study remembers), with the context ``training``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

DATASET_NAME = "mnist"
"""The dataset's name in MLflow."""

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
"""Where ``keras.datasets.mnist.load_data`` downloads MNIST from, and the SHA-256 it checks
(``keras/src/datasets/mnist.py``, Keras 3.15)."""

DIGEST_LENGTH = 16
"""Hex characters of the SHA-256 kept as MLflow's digest (MLflow stores at most 36)."""


def mnist_dataset(source: str, sha256: str | None) -> Any:
    """An ``mlflow.data.meta_dataset.MetaDataset`` for the data of a search.

    Args:
        source: ``DataFingerprint.source``: the resolved path of the ``.npz`` file or IDX folder,
            or ``data.KERAS_SOURCE`` for Keras' download.
        sha256: the file's hex SHA-256 (``DataFingerprint.sha256``); None for Keras' download,
            whose SHA-256 Keras checks (``KERAS_MNIST_SHA256``).
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    from nas_mnist.data import KERAS_SOURCE

    if source == KERAS_SOURCE:
        origin, digest = HTTPDatasetSource(KERAS_MNIST_URL), KERAS_MNIST_SHA256
    else:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local file
            warnings.simplefilter("ignore", UserWarning)
            origin = resolve_dataset_source(Path(os.fspath(source)).resolve().as_uri())
        digest = sha256
    return MetaDataset(origin, name=DATASET_NAME,
                       digest=digest[:DIGEST_LENGTH] if digest else None)


def log_dataset(client: Any, run_id: str, dataset: Any, context: str = "training") -> None:
    """Log ``dataset`` (``mnist_dataset``) as an input of run ``run_id``, tagged with its
    context (``mlflow.data.context``)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    client.log_inputs(run_id, datasets=[DatasetInput(
        dataset._to_mlflow_entity(), tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)])])
