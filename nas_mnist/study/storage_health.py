"""Is a storage file whole? Cheap checks made before a command uses a journal or SQLite file
(``StorageURL.parse``) and by ``nas-mnist doctor`` (``storage_repair``). Nothing here writes.

Journal files (``journal:///FILE``): Optuna's ``JournalFileBackend`` appends one JSON object per
line. Its reader skips a last line without a newline (a record torn by a full disk or a kill),
but the next append starts on that partial line, which makes a line that is not JSON with lines
after it, and from then on every read raises ``JSONDecodeError`` (``read_logs`` in
``optuna/storages/journal/_file.py``). So a journal whose last line is not a whole JSON record,
or that has such a line anywhere, is refused before anything appends to it
(``scan_journal``; ``JournalScan.problem`` says which line).

SQLite files: Optuna creates its schema one statement at a time (SQLAlchemy's ``create_all``:
``CREATE TABLE studies``, then ``CREATE UNIQUE INDEX ix_studies_study_name``, ...). A process
stopped between the two leaves ``studies`` without its unique index; the next run creates the
tables that are missing but not that index, so two workers may both create a study of one name,
and every later command fails with "Multiple rows were found". ``sqlite_schema`` reads the
schema (read-only, from ``sqlite_master``) and ``SchemaCheck`` names what is missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

OPTUNA_TABLES = frozenset({
    "studies", "version_info", "study_directions", "study_user_attributes",
    "study_system_attributes", "trials", "trial_user_attributes", "trial_system_attributes",
    "trial_params", "trial_values", "trial_intermediate_values", "trial_heartbeats",
    "alembic_version"})
"""The tables of Optuna's RDB storage (``optuna/storages/_rdb/models.py``, schema v3.2.0.a)."""

OPTUNA_INDEXES = {
    "ix_studies_study_name": ("studies", True,
                              "CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name)"),
    "ix_trials_study_id": ("trials", False,
                           "CREATE INDEX ix_trials_study_id ON trials (study_id)"),
}
"""Optuna's named indexes, created after their tables (``index=True`` columns of
``StudyModel.study_name``, unique, and ``TrialModel.study_id``): name to (table, unique, the
statement SQLAlchemy issues). Unique constraints written inside ``CREATE TABLE`` come with their
table and cannot be missing. ``tests/study/test_storage_health.py`` compares this with the
schema of a new ``RDBStorage``."""


@dataclass(frozen=True)
class JournalScan:
    """What ``scan_journal`` found in a journal file.

    Attributes:
        path: the file.
        size: its size in bytes when scanned.
        lines: its lines, a last one without a newline included.
        good_bytes: bytes of whole JSON records before the first bad line (all of them if none).
        bad_line: the first line (1-based) that is not a whole JSON object (no newline after
            it, or not JSON, or blank); None for a healthy journal.
        torn: the file does not end with a newline (its last record was cut).
    """

    path: Path
    size: int
    lines: int
    good_bytes: int
    bad_line: int | None
    torn: bool

    @property
    def healthy(self) -> bool:
        """Every line is a whole JSON record (an empty file is healthy)."""
        return self.bad_line is None

    @property
    def torn_end(self) -> bool:
        """The only bad line is the last one (a torn last record): dropping it loses nothing
        that Optuna's reader takes in."""
        return self.bad_line is not None and self.bad_line == self.lines

    @property
    def problem(self) -> str | None:
        """The damage in one clause, naming the file and line; None when healthy."""
        if self.bad_line is None:
            return None
        if self.torn_end and self.torn:
            return (f"{self.path} ends in a torn record (line {self.bad_line} has no newline: a "
                    "write was cut, e.g. by a full disk)")
        if self.torn_end:
            return f"line {self.bad_line} of {self.path}, its last, is not a JSON record"
        return (f"line {self.bad_line} of {self.path} is not a JSON record, and "
                f"{self.lines - self.bad_line} line(s) follow it")


_VERIFIED: dict[str, tuple[int, int, int, int, bytes]] = {}
"""Per journal path: (device, inode, good bytes, their lines, their last 64 bytes) of the last
scan in this process. A journal only grows, so the next scan reads the new bytes alone (after
checking that the bytes before them are the same); commands parse the URL several times."""


def _is_record(line: bytes) -> bool:
    """A line (without its newline) holds one JSON object, as Optuna's ``read_logs`` needs."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False


def _resume_point(handle, stat: os.stat_result, key: str) -> tuple[int, int]:
    """(offset, lines before it) where the scan of an open journal may start: after the good
    bytes of this process's last scan when the file is the same one, grown; else (0, 0)."""
    known = _VERIFIED.get(key)
    if known is None:
        return 0, 0
    device, inode, good, lines, tail = known
    if (device, inode) != (stat.st_dev, stat.st_ino) or stat.st_size < good:
        return 0, 0
    handle.seek(good - len(tail))
    if handle.read(len(tail)) != tail:
        return 0, 0
    return good, lines


def scan_journal(path: str | os.PathLike[str]) -> JournalScan:
    """Read a journal file once and find its first line that is not a whole JSON object.

    Lines are split on ``\\n`` as Optuna's reader splits them. Scans in one process read only
    what was appended since the last one (``_VERIFIED``); a journal of a few MB takes tens of
    milliseconds the first time.

    Args:
        path: the journal file (it must exist).

    Returns:
        The ``JournalScan``.

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    key = str(path.absolute())
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        start, lines_before = _resume_point(handle, stat, key)
        handle.seek(start)
        data = handle.read()
    size = start + len(data)
    pieces = data.split(b"\n")
    tail = pieces.pop()  # b"" when the file ends with a newline
    lines = lines_before + len(pieces) + (1 if tail else 0)
    good, good_lines, bad = start, lines_before, None
    for piece in pieces:
        if not _is_record(piece):
            bad = good_lines + 1
            break
        good += len(piece) + 1
        good_lines += 1
    if bad is None and tail:
        bad = lines
    if good:
        with open(path, "rb") as handle:
            handle.seek(max(0, good - 64))
            last = handle.read(good - max(0, good - 64))
        _VERIFIED[key] = (stat.st_dev, stat.st_ino, good, good_lines, last)
    return JournalScan(path=path, size=size, lines=lines, good_bytes=good, bad_line=bad,
                       torn=bool(tail))


WRITER_WAIT_SECONDS = 2.0
"""How long a last line without a newline is watched while Optuna's append lock is held, before
it counts as torn: a worker of a running search may be appending at the moment of the read."""


def scan_journal_settled(path: str | os.PathLike[str],
                         wait: float = WRITER_WAIT_SECONDS) -> JournalScan:
    """``scan_journal``, telling a record being appended from a torn one.

    Optuna appends under its lock file ``FILE.lock`` (``JournalFileSymlinkLock``), and a reader
    may see a write half done. A last line without a newline counts as torn when two scans 10 ms
    apart both see it while that lock file is absent before and after each; while the lock is
    held, the scan is repeated for up to ``wait`` seconds (a writer killed while holding it
    leaves it behind), after which it counts as torn. Other damage is final at once.

    Raises:
        OSError: the file cannot be read.
    """
    lock = f"{os.fspath(path)}.lock"  # optuna.storages.journal's LOCK_FILE_SUFFIX
    deadline = time.monotonic() + wait
    unlocked_before = False
    while True:
        free = not os.path.lexists(lock)
        scan = scan_journal(path)
        free = free and not os.path.lexists(lock)
        torn_only = scan.torn and scan.torn_end
        if not torn_only or (free and unlocked_before) or time.monotonic() >= deadline:
            return scan
        unlocked_before = free
        time.sleep(0.01)


def forget_scan(path: str | os.PathLike[str]) -> None:
    """Drop what this process knows of ``path`` (after a repair truncated it)."""
    _VERIFIED.pop(str(Path(path).absolute()), None)


def line_offset(path: str | os.PathLike[str], line: int) -> int:
    """The byte offset at which ``line`` (1-based) of a file starts.

    Raises:
        ValueError: the file has fewer than ``line`` lines.
    """
    offset = 0
    with open(path, "rb") as handle:
        for number, text in enumerate(handle, start=1):
            if number == line:
                return offset
            offset += len(text)
    raise ValueError(f"{path} has fewer than {line} lines")


@dataclass(frozen=True)
class SchemaCheck:
    """Which of Optuna's tables and named indexes a database holds.

    Attributes:
        tables: every table in the database (Optuna's or not).
        indexes: its named indexes, name to whether it is unique.
    """

    tables: frozenset[str]
    indexes: dict[str, bool]

    @property
    def foreign(self) -> bool:
        """Tables, but none of Optuna's: some other database (an MLflow store, say)."""
        return bool(self.tables) and not self.tables & OPTUNA_TABLES

    @property
    def missing_indexes(self) -> tuple[str, ...]:
        """Optuna's named indexes whose table exists but which are missing (or not unique
        where they must be): the mark of a schema whose creation was cut."""
        return tuple(name for name, (table, unique, _) in OPTUNA_INDEXES.items()
                     if table in self.tables and
                     (name not in self.indexes or (unique and not self.indexes[name])))

    @property
    def problem(self) -> str | None:
        """What is wrong, in one clause that says what to do; None for an Optuna schema
        (whole, or not created yet: missing tables are created by the next ``RDBStorage``)."""
        if self.foreign:
            shown = ", ".join(sorted(self.tables)[:4]) + (", ..." if len(self.tables) > 4 else "")
            return (f"holds no Optuna study (no 'studies' table; its tables: {shown}): it is not "
                    "an Optuna storage; pass the --storage that nas-mnist search wrote to, or a "
                    "new file")
        missing = self.missing_indexes
        if not missing:
            return None
        risk = (" (without it, a second study of one name can be made)"
                if "ix_studies_study_name" in missing else "")
        return (f"has Optuna's tables without the index {', '.join(missing)}{risk}: its "
                "creation was cut (e.g. by Ctrl-C)")


def sqlite_schema(path: str | os.PathLike[str], timeout: float = 5.0) -> SchemaCheck | None:
    """Read a SQLite file's tables and named indexes, read-only (``mode=ro``), in about a
    millisecond.

    Args:
        path: an existing SQLite database file.
        timeout: seconds to wait while another process holds a write lock on it.

    Returns:
        The ``SchemaCheck``; None when SQLite cannot read it (locked past ``timeout``, or
        damaged): the caller then leaves the judgement to Optuna.
    """
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=timeout)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'index')"
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    tables = frozenset(name for kind, name, _ in rows if kind == "table")
    indexes = {name: (sql or "").upper().startswith("CREATE UNIQUE")
               for kind, name, sql in rows if kind == "index" and sql}
    return SchemaCheck(tables=tables, indexes=indexes)
