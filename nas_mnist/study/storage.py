"""Optuna storages: URL checks, RDB storages with heartbeats, existing studies, and a lock shared
by every worker of one storage."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna

from nas_mnist.errors import InputError
from nas_mnist.sqlite_files import check_sqlite_file

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "mysql", "journal")

JOURNAL_PREFIX = "journal:///"
"""``journal:///FILE.log``: Optuna's ``JournalStorage`` on a ``JournalFileBackend`` (an append-only
log file; every process appends under a lock and replays the log to read). Like ``sqlite:///``,
three slashes and a relative path, four for an absolute one. Made for several processes on one
machine without a server, which is what ``--jobs N`` needs (Optuna's docs, "JournalStorage")."""


HEARTBEAT_INTERVAL = 30
"""Seconds between a running trial's heartbeats on RDB storages (Optuna's heartbeat)."""


HEARTBEAT_GRACE_PERIOD = 90
"""Seconds without a heartbeat after which a RUNNING trial counts as dead and is failed."""


class StorageError(InputError):
    """A ``--storage`` URL that nas-mnist cannot use; the message says what to pass instead."""


DRIVERS = {"postgresql": "psycopg2-binary (or pass postgresql+psycopg://... with psycopg)",
           "mysql": "PyMySQL and pass mysql+pymysql://..."}
"""What to install when a storage's database driver is missing."""


def validate_storage_url(url: str, must_exist: bool = False) -> str:
    """Check a storage URL before anything is created.

    Accepts SQLAlchemy URLs whose scheme is sqlite, postgresql or mysql (with an optional driver,
    e.g. ``postgresql+psycopg2://``) whose database driver is installed. For SQLite, see
    ``nas_mnist.sqlite_files.check_sqlite_file``.

    Args:
        url: the ``--storage`` URL.
        must_exist: for SQLite, the database file must exist (commands that read a study).

    Returns:
        ``url`` unchanged.

    Raises:
        StorageError: unknown scheme, unparsable URL, missing driver, or a SQLite file that
            cannot be used.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if url.startswith("journal:"):
        _check_journal_file(url, must_exist)
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"cannot parse storage URL {url!r}; use sqlite:///FILE.db or "
            "postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    scheme = parsed.get_backend_name()
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"unknown storage scheme {scheme!r} in {url!r}; use sqlite:///FILE.db "
            "(one worker), journal:///FILE.log (--jobs N on one machine) or "
            "postgresql://USER:PASSWORD@HOST/DB (several machines)"
        )
    if scheme == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"{url!r} is an in-memory SQLite database, which is lost at exit; "
                "use sqlite:///FILE.db"
            )
        check_sqlite_file(database, f"--storage {url}", must_exist=must_exist, error=StorageError)
        return url
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as exc:
        raise StorageError(
            f"--storage {parsed.render_as_string(hide_password=True)}: the database driver for "
            f"{parsed.drivername} is not installed ({exc}); install {DRIVERS.get(scheme, 'it')}"
        ) from None
    return url


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal:///FILE`` URL; None for other schemes."""
    if not url.startswith(JOURNAL_PREFIX) or len(url) == len(JOURNAL_PREFIX):
        return None
    return Path(url[len(JOURNAL_PREFIX):]).expanduser()


def _check_journal_file(url: str, must_exist: bool) -> Path:
    """A ``journal:///FILE`` URL whose file can be used (its folder exists and is writable).

    Raises:
        StorageError: a malformed URL, a missing folder or file, or an unwritable place.
    """
    path = journal_path(url)
    if path is None:
        raise StorageError(f"cannot parse storage URL {url!r}; use journal:///FILE.log (three "
                           "slashes and a relative path, four for an absolute one)")
    folder = path.absolute().parent
    if must_exist and not path.is_file():
        raise StorageError(f"--storage {url}: {path.absolute()} does not exist; run from the "
                           "folder the search ran in, or pass the right path")
    if path.exists() and not path.is_file():
        raise StorageError(f"--storage {url}: {path} is not a file")
    if not folder.is_dir():
        raise StorageError(f"--storage {url}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(f"--storage {url}: {path} or its folder is read-only; the journal "
                           "appends to the file and locks it with a file next to it")
    return path


def make_storage(
    url: str,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker end as failed; or a journal.

    ``journal:///FILE`` gives Optuna's ``JournalStorage(JournalFileBackend(FILE))``. It has no
    heartbeats (``JournalStorage`` does not implement Optuna's ``BaseHeartbeat``): its workers
    run on this machine, and a dead one's trial is found by its PID
    (``recovery.recover_dead_trials``, which the ``--jobs`` supervisor runs when a worker dies).

    A RUNNING trial whose worker sent no heartbeat for ``HEARTBEAT_GRACE_PERIOD`` seconds is
    failed by the next worker that starts a trial, which then calls ``on_stale_trial`` (see
    ``recovery.handle_dead_trial``: close its MLflow run, retry it once).
    """
    from sqlalchemy.exc import SQLAlchemyError

    path = journal_path(url)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=HEARTBEAT_GRACE_PERIOD,
                    heartbeat_stale_trial_callback=on_stale_trial,
                )
        except SQLAlchemyError:
            # Workers started together on an empty database race to create its tables; the
            # loser finds them created a moment later.
            if attempt == 2:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def load_existing_study(storage_url: str, study_name: str) -> optuna.Study:
    """Load a study that must exist.

    Never creates anything: a SQLite file that does not exist is refused, not created.

    Raises:
        StorageError: no study of that name in the storage (the message lists those that exist).
        StorageError: a SQLite storage file that does not exist.
    """
    validate_storage_url(storage_url, must_exist=True)
    storage = make_storage(storage_url)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if study_name not in names:
        raise StorageError(
            f"no study named {study_name!r} in {storage_url}; studies there: "
            f"{', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=storage)


@contextlib.contextmanager
def storage_lock(storage_url: str, name: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold a lock named ``name`` across every worker of one storage while the block runs.

    Used where workers must not interleave read-then-write steps, such as seeding baselines
    (two workers that both see an empty study would both enqueue them). PostgreSQL uses a
    session advisory lock (``pg_advisory_lock``), MySQL ``GET_LOCK``, SQLite an exclusive
    ``flock`` on the database file (independent of SQLite's own POSIX locks on Linux).

    Raises:
        TimeoutError: the lock was not acquired within ``timeout`` seconds.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    journal = journal_path(storage_url)
    parsed = None if journal is not None else make_url(storage_url)
    backend = "journal" if parsed is None else parsed.get_backend_name()
    if backend in ("sqlite", "journal"):
        import fcntl

        deadline = time.monotonic() + timeout
        with open(journal or Path(parsed.database).expanduser(), "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"lock {name!r} on {storage_url} not acquired") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    # A 63-bit key from the name, for pg_advisory_lock(bigint).
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1
    engine = create_engine(storage_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                connection.execute(text(f"SET lock_timeout = {int(timeout * 1000)}"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                release = text("SELECT pg_advisory_unlock(:key)")
            else:
                got = connection.execute(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": f"nas-mnist:{key}", "timeout": int(timeout)},
                ).scalar()
                if got != 1:
                    raise TimeoutError(f"lock {name!r} on {storage_url} not acquired")
                release = text(f"SELECT RELEASE_LOCK('nas-mnist:{key}')")
            try:
                yield
            finally:
                connection.execute(release, {"key": key})
    finally:
        engine.dispose()
