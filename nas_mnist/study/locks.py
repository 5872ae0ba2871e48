"""One worker per SQLite storage, guaranteed by an OS-level lock held for the whole search.

SQLite serialises writers with file locks and answers a busy database with "database is locked"
errors, so several workers on one SQLite study are not supported: they need PostgreSQL (see the
README's "Several workers"). The refusal must be a guarantee, not a poll of the study's RUNNING
trials (two searches started in the same second both saw none): ``single_worker`` takes an
exclusive, non-blocking ``flock`` on ``<database>.lock`` next to the database before the study is
opened, and holds it until the search ends. The kernel releases it when the process dies, so a
killed search never blocks the next one.

The lock is per database file, not per study: two searches on two studies of one SQLite file
would also write to it at once.

A journal storage (``journal:///FILE.log``) takes the N worker processes of one ``--jobs N``
search, which the search's own process starts and supervises; a second search on the same file is
refused the same way (its lock file is ``FILE.log.search.lock``: ``FILE.log.lock`` is the
journal's own append lock), so that one supervisor owns the file's budget and recovery. Several
machines share a study through PostgreSQL, with ``--jobs`` per machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from nas_mnist.study.storage import StorageError, journal_path
from nas_mnist.filelock import LockHeldError, file_lock, lock_path_for
from nas_mnist.sqlite_files import sqlite_path


class WorkerLockedError(StorageError):
    """Another search holds the SQLite storage; the message says to use PostgreSQL instead."""


@contextlib.contextmanager
def single_worker(storage_url: str, study_name: str) -> Iterator[None]:
    """Hold the storage's search lock while the block runs (SQLite and journal files; a no-op
    otherwise).

    Args:
        storage_url: the Optuna storage URL (already checked by ``validate_storage_url``).
        study_name: named in the error message.

    Raises:
        WorkerLockedError: another process (a search, or anything using ``single_worker``) holds
            the lock of this SQLite database now. Nothing is waited for.
    """
    database = sqlite_path(storage_url)
    journal = journal_path(storage_url)
    if database is None and journal is None:
        yield
        return
    lock = (lock_path_for(database.resolve()) if database is not None
            else Path(f"{journal.resolve()}.search.lock"))
    held = contextlib.ExitStack()
    try:
        held.enter_context(file_lock(lock))
    except LockHeldError:
        what = ("a SQLite storage takes one worker at a time" if database is not None else
                "a journal file takes one search (with its --jobs workers) at a time")
        raise WorkerLockedError(
            f"another search is running on {storage_url} (it holds {lock}); {what}. Wait for it "
            f"to end, run several trials at once with --jobs N on a journal storage (--storage "
            f"journal:///FILE.log), or run workers of study {study_name!r} on several machines "
            "on a PostgreSQL storage (--storage postgresql://USER:PASSWORD@HOST/DB; see the "
            "README's 'Several workers')"
        ) from None
    with held:
        yield
