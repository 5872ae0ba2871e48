"""``nas-mnist doctor``: check a storage, and repair what can be repaired without guessing.

- A journal (``journal:///FILE``) whose last record was torn (a full disk, a kill mid-write):
  the file is copied to ``FILE.bak-<YYYYmmdd-HHMMSS>``, then cut after its last whole record.
  Optuna's reader never took the torn record in, so the study is as the last command saw it.
- A journal with a line that is not JSON in the middle: refused (which records after it are
  right is a guess), unless ``drop_from_line=N`` (``--drop-from-line N``, N at most the bad
  line) says to back the file up and drop line N and every line after it.
- A SQLite file whose schema was cut while being created (``studies`` without its unique index
  ``ix_studies_study_name``, ``storage_health.SchemaCheck``): backed up, then the missing indexes
  are created, unless a study name already appears twice (refused: which copy to keep is a
  guess).
- A server storage (PostgreSQL, MySQL): its schema is checked with SQLAlchemy's inspector and a
  missing index is reported with the statement that creates it; nothing is written.

A healthy storage is reported as such and never written to. File storages are repaired under the
storage's search lock (``locks.one_search_per_storage``), so never while a search runs, and a
journal under Optuna's append lock too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nas_mnist.errors import RuntimeFailure
from nas_mnist.study.locks import StorageLockedError, one_search_per_storage
from nas_mnist.study.storage_health import (
    OPTUNA_INDEXES,
    SchemaCheck,
    forget_scan,
    line_offset,
    scan_journal,
    sqlite_schema,
)
from nas_mnist.study.storage_url import StorageError, StorageURL


class RepairFailure(RuntimeFailure):
    """A repair that could not be written (no space for the backup, say); nothing was changed."""


@dataclass(frozen=True)
class DoctorReport:
    """What ``doctor`` found and did.

    Attributes:
        storage: the storage URL, without its password.
        healthy: it was healthy; nothing was written.
        lines: what was found and done, one sentence each, to print.
        backup: the copy made before a repair; None when nothing was repaired.
    """

    storage: str
    healthy: bool
    lines: tuple[str, ...]
    backup: Path | None = None


def doctor(url: str, drop_from_line: int | None = None) -> DoctorReport:
    """Check the storage at ``url`` and repair a torn journal or a half-made SQLite schema.

    Args:
        url: an Optuna storage URL (``journal:///FILE``, ``sqlite:///FILE``,
            ``postgresql://...``, ``mysql://...``); a file must exist.
        drop_from_line: journals only: drop this line (1-based) and every line after it, after a
            backup; it must be at most the first bad line. None: only a torn last record is cut.

    Returns:
        The ``DoctorReport``.

    Raises:
        StorageError: a bad URL or missing file, a search running on the file, damage that
            needs a choice (a corrupt middle line without ``drop_from_line``, a study name that
            appears twice, a database that is not an Optuna storage), ``drop_from_line`` on a
            healthy journal, past the bad line, or on another kind of storage.
        RepairFailure: the backup or the repair could not be written (the file is unchanged).
    """
    parsed = StorageURL.parse(url, must_exist=True, check_content=False)
    if drop_from_line is not None and parsed.kind != "journal":
        raise StorageError(f"--drop-from-line is for journal storages (journal:///FILE), not "
                           f"{parsed}; nothing was changed")
    if parsed.kind == "journal":
        with _search_lock(parsed), _journal_append_lock(parsed.path):
            return _doctor_journal(parsed, drop_from_line)
    if parsed.kind == "sqlite":
        with _search_lock(parsed):
            return _doctor_sqlite(parsed)
    return _doctor_server(parsed)


@contextlib.contextmanager
def _search_lock(storage: StorageURL) -> Iterator[None]:
    """The storage file's search lock, or a refusal while a search holds it."""
    try:
        with one_search_per_storage(storage, "(doctor)"):
            yield
    except StorageLockedError:
        raise StorageError(f"a search (or retrain) is running on {storage}; run doctor when it "
                           "has ended (nothing was changed)") from None


@contextlib.contextmanager
def _journal_append_lock(path: Path) -> Iterator[None]:
    """Optuna's own append lock of a journal (``FILE.lock``, the lock ``make_storage``'s
    ``JournalFileBackend`` takes), so that no process appends while the file is read and cut.
    Optuna removes a lock left by a dead process after its 30 s grace period."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _doctor_journal(storage: StorageURL, drop_from_line: int | None) -> DoctorReport:
    """``doctor`` on a journal file: report it healthy, or cut it after a backup."""
    path = storage.path
    forget_scan(path)
    scan = scan_journal(path)
    doctor = f"nas-mnist doctor --storage {storage}"
    if scan.healthy:
        if drop_from_line is not None:
            raise StorageError(f"{path} is healthy ({scan.lines} records); --drop-from-line is "
                               "for a journal with a corrupt line (nothing was changed)")
        return DoctorReport(str(storage), True, (
            f"{storage} is healthy: {scan.lines} records, each a whole JSON line; nothing was "
            "changed",))
    bad = scan.bad_line
    if drop_from_line is None and not scan.torn_end:
        raise StorageError(
            f"{scan.problem}; doctor will not guess which records after it are right. Run "
            f"'{doctor} --drop-from-line {bad}' to back the file up and drop line {bad} and the "
            f"{scan.lines - bad} line(s) after it (the study goes back to its state before "
            "them), or restore the file from a backup")
    if drop_from_line is not None and drop_from_line > bad:
        raise StorageError(f"--drop-from-line {drop_from_line}: {scan.problem}, before line "
                           f"{drop_from_line}; pass --drop-from-line {bad} or a smaller line "
                           "(nothing was changed)")
    cut = bad if drop_from_line is None else drop_from_line
    offset = scan.good_bytes if cut == bad else line_offset(path, cut)
    backup = _backup(path)
    _truncate(path, offset)
    forget_scan(path)
    if not scan_journal(path).healthy:  # cannot happen: every line before the cut was whole
        raise RepairFailure(f"{path} is still not whole after the repair; restore it from "
                            f"{backup}")
    dropped = f"line {cut}" if cut == scan.lines else f"lines {cut}-{scan.lines}"
    return DoctorReport(str(storage), False, (
        f"{scan.problem}.",
        f"Backed up {path} to {backup}.",
        f"Dropped {dropped} ({scan.size - offset} bytes); {cut - 1} records kept. Run the "
        "command that was refused again.",
    ), backup)


def _backup(path: Path) -> Path:
    """Copy ``path`` to ``<path>.bak-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... if taken), written
    aside and renamed, so a backup with that name is whole.

    Raises:
        RepairFailure: the copy could not be written (no space, say); nothing is left.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    number = 1
    while backup.exists():
        number += 1
        backup = path.with_name(f"{path.name}.bak-{stamp}-{number}")
    part = backup.with_name(backup.name + ".part")
    try:
        shutil.copy2(path, part)
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, backup)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RepairFailure(
            f"cannot back up {path} to {backup} ({exc.strerror}); nothing was changed. Free "
            f"{path.stat().st_size} bytes or more there and run doctor again") from None
    return backup


def _truncate(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably."""
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def _doctor_sqlite(storage: StorageURL) -> DoctorReport:
    """``doctor`` on a SQLite file: report its schema, add the indexes a cut creation left out."""
    path = storage.path
    schema = sqlite_schema(path)
    if schema is None:
        raise StorageError(f"{path} cannot be read as a SQLite database (damaged, or locked "
                           "by another process); restore it from a backup")
    if schema.foreign:
        raise StorageError(f"{path} {schema.problem}")
    missing = schema.missing_indexes
    if not missing:
        return DoctorReport(str(storage), True, (_healthy_schema(storage, schema),))
    twice = _duplicate_study_names(path) if "ix_studies_study_name" in missing else []
    if twice:
        raise StorageError(
            f"{path} {schema.problem}, and study name(s) {', '.join(map(repr, twice))} appear "
            "more than once already; doctor will not choose which copy to keep: restore the "
            "file from a backup, or start a new storage file")
    backup = _backup(path)
    try:
        # One transaction: an index of that name that is not unique is replaced, or nothing.
        script = "".join(f"DROP INDEX IF EXISTS {name}; {OPTUNA_INDEXES[name][2]}; "
                         for name in missing)
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
            connection.executescript(f"BEGIN; {script}COMMIT;")
    except sqlite3.Error as exc:
        raise RepairFailure(f"cannot add the index(es) to {path} ({exc}); the file is as it "
                            f"was (backup: {backup})") from None
    return DoctorReport(str(storage), False, (
        f"{path} {schema.problem}.",
        f"Backed up {path} to {backup}.",
        f"Created the index(es) {', '.join(missing)}. Run the command that was refused again.",
    ), backup)


def _healthy_schema(storage: StorageURL, schema: SchemaCheck) -> str:
    """The line for a storage whose schema is whole (or not made yet)."""
    if not schema.tables:
        return (f"{storage} is healthy: no tables yet (the next search creates Optuna's); "
                "nothing was changed")
    return (f"{storage} is healthy: Optuna's tables and indexes are in place; nothing was "
            "changed")


def _duplicate_study_names(path: Path) -> list[str]:
    """Study names that appear more than once in a SQLite storage's ``studies`` table."""
    uri = path.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as connection:
        rows = connection.execute("SELECT study_name FROM studies GROUP BY study_name "
                                  "HAVING COUNT(*) > 1 ORDER BY study_name").fetchall()
    return [name for (name,) in rows]


def _doctor_server(storage: StorageURL) -> DoctorReport:
    """``doctor`` on PostgreSQL or MySQL: check the schema with SQLAlchemy's inspector; a
    missing index is reported with its statement, not created."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from nas_mnist.tracking.redaction import hide_password

    engine = create_engine(storage.url, poolclass=NullPool)
    try:
        inspector = inspect(engine)
        tables = frozenset(inspector.get_table_names())
        indexes = {index["name"]: bool(index["unique"])
                   for table in sorted(tables & {"studies", "trials"})
                   for index in inspector.get_indexes(table) if index["name"]}
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(f"cannot read the storage {storage}: "
                           f"{hide_password(first[0] if first else repr(exc), storage.url)}"
                           ) from None
    finally:
        engine.dispose()
    schema = SchemaCheck(tables=tables, indexes=indexes)
    if schema.problem is None:
        return DoctorReport(str(storage), True, (_healthy_schema(storage, schema),))
    statements = "; ".join(OPTUNA_INDEXES[name][2] for name in schema.missing_indexes)
    fix = f" Create it in the database: {statements}" if statements else ""
    raise StorageError(f"{storage} {schema.problem}.{fix}")
