"""Shared fixtures, and the repository-wide rule that no command prints a Python traceback."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture(autouse=True)
def _runs_in_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with its ``tmp_path`` as the current directory, so that what lands in a
    relative path (MLflow's default artifact root ``./mlruns`` under a SQLite tracking URI, a
    SavedModel's default folder) never lands in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (the current directory) holding ``small.yaml`` (``SMALL_SPACE``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    return tmp_path


TRACEBACK = "Traceback (most recent call last)"
_process_outputs: list[str] = []
_communicate = subprocess.Popen.communicate


def _recording_communicate(self, *args, **kwargs):
    """``Popen.communicate`` (and so ``subprocess.run``) that keeps what the process printed."""
    out, err = _communicate(self, *args, **kwargs)
    for text in (out, err):
        if text:
            _process_outputs.append(text if isinstance(text, str)
                                    else text.decode("utf-8", "replace"))
    return out, err


subprocess.Popen.communicate = _recording_communicate


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "traceback_expected: the test makes a process print a "
                            "Python traceback on purpose (exempt from the no-traceback rule)")


@pytest.fixture(autouse=True)
def no_traceback_printed(request: pytest.FixtureRequest):
    """Issue 19's rule for every test: no command prints a Python traceback for a user error or
    a known runtime failure. Scans what the test's processes printed (``communicate``,
    ``subprocess.run``: the commands run as a user runs them). In-process calls need no scan: an
    exception that escapes ``main`` fails the test."""
    _process_outputs.clear()
    yield
    if request.node.get_closest_marker("traceback_expected"):
        return
    for text in _process_outputs:
        if TRACEBACK in text:
            printed = text[text.index(TRACEBACK):]
            if len(printed) > 6000:  # its start, and its end, which names the exception
                printed = printed[:2000] + "\n[...]\n" + printed[-4000:]
            pytest.fail("a command printed a Python traceback:\n" + printed, pytrace=False)
