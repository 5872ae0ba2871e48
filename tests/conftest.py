"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from support import REPO_ROOT, SMALL_SPACE


@pytest.fixture
def real_mnist_path() -> Path:
    """Path of the real MNIST .npz: $NAS_MNIST_DATA, else <repo>/../shared/data/mnist.npz."""
    path = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not path.exists():
        pytest.skip(f"real MNIST not found at {path}; set NAS_MNIST_DATA to run this test")
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (the current directory) holding ``small.yaml`` (``SMALL_SPACE``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    return tmp_path
