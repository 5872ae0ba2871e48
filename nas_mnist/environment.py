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


