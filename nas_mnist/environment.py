"""Small process-level helpers shared across the stages: environment variables set for a block,
and whether a process is alive."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def temporary_environ(**values: str) -> Iterator[None]:
    """Set environment variables while the block runs, then restore what was there (or unset).

    Example: ``with temporary_environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"): ...``
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (signal 0, POSIX).

    A process owned by another user, or one we cannot query, counts as alive: callers use this to
    decide whether something may be cleaned up, and must not clean up after a live process.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


TENSORFLOW_STARTUP_NOISE = ("All log messages before absl::InitializeLog()", "I0000 ",
                            "oneDNN custom operations are on", "Could not find cuda drivers",
                            "This TensorFlow binary is optimized to use available CPU",
                            "To enable the following instructions", "rebuild TensorFlow with")
"""Fragments of the lines TensorFlow's C++ runtime writes to stderr while it is imported.

TensorFlow 2.21 logs through absl before ``absl::InitializeLog()`` runs, so
``TF_CPP_MIN_LOG_LEVEL`` no longer hides them; ``import_tensorflow_quietly`` drops them."""


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (``TENSORFLOW_STARTUP_NOISE``) dropped from
    stderr; any other line it writes is passed on. A no-op once TensorFlow is imported.

    Works on the file descriptor (the lines come from C++, not Python's ``sys.stderr``).
    """
    import sys
    import tempfile

    if "tensorflow" in sys.modules:
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
