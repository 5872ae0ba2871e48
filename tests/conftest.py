"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def real_mnist_path() -> Path:
    """Path of the real MNIST .npz: $NAS_MNIST_DATA, else <repo>/../shared/data/mnist.npz."""
    path = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not path.exists():
        pytest.skip(f"real MNIST not found at {path}; set NAS_MNIST_DATA to run this test")
    return path
