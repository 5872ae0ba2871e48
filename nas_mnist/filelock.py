"""OS-level exclusive locks on lock files (``fcntl.flock``), for what must happen once per machine.

Two uses: one search per SQLite study at a time (``engine.locks.one_search_per_storage``), and the
creation of an MLflow SQLite store by exactly one process (``tracking.tracker``). The kernel drops
a ``flock`` when its holder exits, however it exits (SIGKILL included), so a lock is never left
behind by a dead process; the lock file itself is removed by the holder on release.

Removing the file safely: a process may open the file, then lose the race to the holder, which
removes the file and releases; the late process then locks an inode that no longer has a name
while a third process creates and locks a new file. ``file_lock`` therefore checks, after
``flock`` succeeds, that the path still names the inode it locked, and starts over if not (the
pattern of e.g. the ``filelock`` and ``fasteners`` projects' Unix locks).

``flock`` locks are advisory and local: they exclude processes on one machine, and are not
reliable on network file systems (NFS); SQLite itself is not safe there either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nas_mnist.errors import RuntimeFailure


class LockHeldError(RuntimeFailure):
    """The lock is held by another process (and ``timeout`` ran out, or was 0)."""


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path``: ``path`` with ``.lock`` appended, in the same folder."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None if another holds it."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our flock: start over


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike[str], timeout: float = 0.0, poll_seconds: float = 0.1
) -> Iterator[Path]:
    """Hold an exclusive lock on the lock file ``path`` while the block runs.

    The file is created if missing and removed on release. The lock dies with its process.

    Args:
        path: the lock file (its folder must exist and be writable).
        timeout: seconds to wait for another holder to release it; 0 tries once.
        poll_seconds: seconds between two tries while waiting.

    Yields:
        ``path`` as a ``Path``.

    Raises:
        LockHeldError: another process holds the lock after ``timeout`` seconds.
        OSError: the lock file cannot be created (missing or read-only folder).
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    while (fd := _try_lock(path)) is None:
        if time.monotonic() >= deadline:
            raise LockHeldError(f"{path} is locked by another process")
        time.sleep(poll_seconds)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())  # for people looking at the file; not read
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before unlocking: see the module docstring
        os.close(fd)
