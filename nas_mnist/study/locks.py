"""Locks on a storage: one search per storage file, and named locks across a storage's workers.

``one_search_per_storage``: SQLite serialises writers with file locks and answers a busy database
with "database is locked" errors, so several workers on one SQLite study are not supported (they
need PostgreSQL: "Several workers" in docs/jobs.md). The refusal must be a guarantee, not a poll of
the study's RUNNING trials (two searches started in the same second both saw none): it takes an
exclusive, non-blocking lock on ``<database>.lock`` next to the database before the study is
opened, and holds it until the search ends. The kernel releases it when the process dies, so a
killed search never blocks the next one. The lock is per database file, not per study: two
searches on two studies of one SQLite file would also write to it at once. A journal storage
(``journal:///FILE.log``) takes the N worker processes of one ``--jobs N`` search, which the
search's own process starts and supervises; a second search on the same file is refused the same
way (its lock file is ``FILE.log.search.lock``: ``FILE.log.lock`` is the journal's own append
lock), so that one supervisor owns the file's budget and recovery. Several machines share a study
through PostgreSQL, with ``--jobs`` per machine.

``storage_lock``: a named lock across every worker of one storage, for read-then-write steps
such as seeding baselines. File storages use ``nas_mnist.filelock`` (the one file-lock helper);
PostgreSQL a session advisory lock (``pg_advisory_lock``), MySQL ``GET_LOCK``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from nas_mnist.filelock import LockHeldError, file_lock, lock_path_for
from nas_mnist.study.storage_url import StorageError, StorageURL


class StorageLockedError(StorageError):
    """Another search holds the storage file; the message says what to use instead."""


def _search_lock_path(storage: StorageURL) -> Path:
    """The lock file that one search holds on a file storage."""
    if storage.kind == "sqlite":
        return lock_path_for(storage.path.resolve())
    return Path(f"{storage.path.resolve()}.search.lock")


@contextlib.contextmanager
def one_search_per_storage(storage_url: str | StorageURL, study_name: str) -> Iterator[None]:
    """Hold the storage file's search lock while the block runs (SQLite and journal files; a
    no-op for server storages).

    Args:
        storage_url: the Optuna storage URL.
        study_name: named in the error message.

    Raises:
        StorageLockedError: another process (a search, or anything using this lock) holds the
            lock of this storage file now. Nothing is waited for.
    """
    storage = StorageURL.parse(storage_url)
    if not storage.is_file:
        yield
        return
    lock = _search_lock_path(storage)
    held = contextlib.ExitStack()
    try:
        held.enter_context(file_lock(lock))
    except LockHeldError:
        what = ("a SQLite storage takes one worker at a time" if storage.one_writer else
                "a journal file takes one search (with its --jobs workers) at a time")
        raise StorageLockedError(
            f"another search is running on {storage} (it holds {lock}); {what}. Wait for it "
            f"to end, run several trials at once with --jobs N on a journal storage (--storage "
            f"journal:///FILE.log), or run workers of study {study_name!r} on several machines "
            "on a PostgreSQL storage (--storage postgresql://USER:PASSWORD@HOST/DB; see "
            "'Several workers' in docs/jobs.md)"
        ) from None
    with held:
        yield


def _lock_key(name: str) -> int:
    """A 63-bit key from a lock's name, for ``pg_advisory_lock(bigint)``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


@contextlib.contextmanager
def storage_lock(storage_url: str | StorageURL, name: str,
                 timeout: float = 120.0) -> Iterator[None]:
    """Hold a lock named ``name`` across every worker of one storage while the block runs.

    Used where workers must not interleave read-then-write steps, such as seeding baselines
    (two workers that both see an empty study would both enqueue them).

    Args:
        storage_url: the Optuna storage URL.
        name: the lock's name; locks of other names do not exclude each other.
        timeout: seconds to wait for the lock.

    Raises:
        TimeoutError: the lock was not acquired within ``timeout`` seconds.
    """
    storage = StorageURL.parse(storage_url)
    if storage.is_file:
        lock = Path(f"{storage.path.resolve()}.{_lock_key(name):016x}.lock")
        try:
            with file_lock(lock, timeout=timeout):
                yield
        except LockHeldError:
            raise TimeoutError(f"lock {name!r} on {storage} not acquired") from None
        return
    with _server_lock(storage, name, timeout):
        yield


@contextlib.contextmanager
def _server_lock(storage: StorageURL, name: str, timeout: float) -> Iterator[None]:
    """``storage_lock`` on PostgreSQL (advisory lock) or MySQL (``GET_LOCK``)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = _lock_key(name)
    engine = create_engine(storage.url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if storage.kind == "postgresql":
                connection.execute(text(f"SET lock_timeout = {int(timeout * 1000)}"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                release = text("SELECT pg_advisory_unlock(:key)")
            else:
                got = connection.execute(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": f"nas-mnist:{key}", "timeout": int(timeout)},
                ).scalar()
                if got != 1:
                    raise TimeoutError(f"lock {name!r} on {storage} not acquired")
                release = text(f"SELECT RELEASE_LOCK('nas-mnist:{key}')")
            try:
                yield
            finally:
                connection.execute(release, {"key": key})
    finally:
        engine.dispose()
