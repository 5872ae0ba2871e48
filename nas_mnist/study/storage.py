"""Optuna storages: RDB storages with heartbeats, journal files, and loading a study that must
exist. URLs are parsed and checked by ``storage_url.StorageURL``."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.storages.journal import JournalFileSymlinkLock

from nas_mnist.database_servers import connection_error, engine_kwargs, server_kind
from nas_mnist.errors import RuntimeFailure
from nas_mnist.study.storage_url import StorageError, StorageURL

__all__ = ["StorageError", "StorageURL", "TornJournalError", "load_existing_study",
           "make_storage", "validate_storage_url"]

SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite connection waits for another one's write lock before "database is locked"
(Python's ``sqlite3`` waits 5 s): the heartbeat thread writes beside the trials, and on a loaded
2-core machine a write once waited longer than 5 s while a stopped search failed its trial."""

HEARTBEAT_INTERVAL = 30
"""Seconds between a running trial's heartbeats on RDB storages (Optuna's heartbeat)."""


HEARTBEAT_GRACE_PERIOD = 90
"""Seconds without a heartbeat after which a RUNNING trial counts as dead and is failed."""


class TornJournalError(RuntimeFailure):
    """A journal's last record was torn while this process had it open (a full disk, another
    process killed mid-write): the append was refused, nothing was written."""


class _WholeRecordsLock(JournalFileSymlinkLock):
    """Optuna's append lock of a journal (``FILE.lock``, the default of ``JournalFileBackend``),
    which also checks, once held, that the file ends with a newline: an append after a torn
    record would join it into a line that no reader can decode (issue 19). ``StorageURL.parse``
    checks the whole file when it is opened; this covers a record torn later, e.g. by this very
    process on a full disk. Costs one 1-byte read per append."""

    def __init__(self, journal: str) -> None:
        super().__init__(journal)
        self._journal = journal

    def acquire(self) -> bool:
        """Take the lock; refuse (and release it) if the journal ends in a torn record.

        Raises:
            TornJournalError: the file does not end with a newline.
        """
        acquired = super().acquire()
        try:
            with open(self._journal, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(size - 1, 0))
                torn = size > 0 and handle.read(1) != b"\n"
        except BaseException:
            self.release()
            raise
        if torn:
            self.release()
            error = TornJournalError(f"{self._journal} ends in a torn record (a write was cut, "
                                     "e.g. by a full disk); nothing more was appended to it")
            error.hint = (f"Free some space, run 'nas-mnist doctor --storage "
                          f"journal:///{self._journal}', then the same command again")
            raise error
        return acquired


def validate_storage_url(url: str, must_exist: bool = False) -> str:
    """Check a storage URL before anything is created (``StorageURL.parse``).

    Args:
        url: the ``--storage`` URL.
        must_exist: the SQLite or journal file must exist (commands that read a study).

    Returns:
        ``url`` unchanged.

    Raises:
        StorageError: unknown scheme, unparsable URL, missing driver, or a file that cannot be
            used.
    """
    return StorageURL.parse(url, must_exist=must_exist).url


def _sqlite_kwargs(url: str) -> dict:
    """``create_engine`` arguments for a SQLite URL (``SQLITE_BUSY_TIMEOUT``); none otherwise."""
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if url.startswith("sqlite") else {}


def make_storage(
    url: str | StorageURL,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker end as failed; or a journal.

    ``journal:///FILE`` gives Optuna's ``JournalStorage(JournalFileBackend(FILE))``, whose
    append lock refuses to append after a torn record (``TornJournalError``). It has no
    heartbeats (``JournalStorage`` does not implement Optuna's ``BaseHeartbeat``): its workers
    run on this machine, and a dead one's trial is found by its PID
    (``recovery.recover_dead_trials``, which the ``--jobs`` supervisor runs when a worker dies).

    A RUNNING trial whose worker sent no heartbeat for ``HEARTBEAT_GRACE_PERIOD`` seconds is
    failed by the next worker that starts a trial, which then calls ``on_stale_trial`` (see
    ``recovery.handle_dead_trial``: close its MLflow run, retry it once).

    Raises:
        ServerConnectionError: a server storage that refused or did not answer the
            connection (``database_servers``).
    """
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    parsed = StorageURL.parse(url)
    if parsed.kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = str(parsed.path)
        return JournalStorage(JournalFileBackend(path, lock_obj=_WholeRecordsLock(path)))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    parsed.url,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=HEARTBEAT_GRACE_PERIOD,
                    heartbeat_stale_trial_callback=on_stale_trial,
                    engine_kwargs=engine_kwargs(parsed.url) or _sqlite_kwargs(parsed.url),
                )
        except SQLAlchemyError as exc:
            if isinstance(exc, OperationalError) and server_kind(parsed.url):
                raise connection_error(parsed.url, exc, "storage") from None  # not a race
            # Workers started together on an empty database race to create its tables; the
            # loser finds them created a moment later.
            if attempt == 2:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def load_existing_study(storage_url: str | StorageURL, study_name: str) -> optuna.Study:
    """Load a study that must exist.

    Never creates anything: a SQLite file that does not exist is refused, not created.

    Raises:
        StorageError: no study of that name in the storage (the message lists those that exist).
        StorageError: a SQLite storage file that does not exist.
    """
    parsed = StorageURL.parse(storage_url, must_exist=True)
    storage = make_storage(parsed)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if study_name not in names:
        raise StorageError(
            f"no study named {study_name!r} in {parsed}; studies there: "
            f"{', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=storage)
