"""An Optuna storage URL, parsed and checked once: ``StorageURL.parse(url)``.

Every question about a ``--storage`` URL (which kind of storage, which file, can it be used,
how to show it without its password) is answered here, so no other module reads the string.
Kinds:

- ``sqlite``: ``sqlite:///FILE.db`` (SQLAlchemy's form: three slashes and a relative path, four
  for an absolute one); one writing process at a time.
- ``journal``: ``journal:///FILE.log``, Optuna's ``JournalStorage`` on a ``JournalFileBackend``
  (an append-only log; every process appends under a lock and replays the log to read). Made for
  several processes on one machine without a server, which is what ``--jobs N`` needs (Optuna's
  docs, "JournalStorage").
- ``postgresql`` and ``mysql``: SQLAlchemy URLs (with an optional driver, e.g.
  ``postgresql+psycopg://``) for several machines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nas_mnist.errors import InputError
from nas_mnist.sqlite_files import SQLITE_HEADER, check_sqlite_file
from nas_mnist.study.storage_health import scan_journal_settled, sqlite_schema

SUPPORTED_KINDS = ("sqlite", "postgresql", "mysql", "journal")

JOURNAL_PREFIX = "journal:///"

DRIVERS = {"postgresql": "psycopg2-binary (or pass postgresql+psycopg://... with psycopg)",
           "mysql": "PyMySQL and pass mysql+pymysql://..."}
"""What to install when a storage's database driver is missing."""


class StorageError(InputError):
    """A ``--storage`` URL that nas-mnist cannot use; the message says what to pass instead."""


@dataclass(frozen=True)
class StorageURL:
    """A checked Optuna storage URL.

    Attributes:
        url: the URL as given (with its password, if any: pass it only to the storage itself).
        kind: ``"sqlite"``, ``"journal"``, ``"postgresql"`` or ``"mysql"``.
        path: the database file (SQLite) or log file (journal), ``~`` expanded; None for
            server storages.
        redacted: the URL with its password replaced by ``***``, to show or record.
    """

    url: str
    kind: str
    path: Path | None
    redacted: str

    @property
    def is_file(self) -> bool:
        """A storage in one local file (SQLite or journal): one search at a time owns it."""
        return self.path is not None

    @property
    def one_writer(self) -> bool:
        """SQLite: one writing process at a time (no ``--jobs``, no second worker)."""
        return self.kind == "sqlite"

    def __str__(self) -> str:
        return self.redacted

    @classmethod
    def parse(cls, url: str | StorageURL, must_exist: bool = False, *,
              check_content: bool = True) -> StorageURL:
        """Parse and check ``url`` before anything is created.

        Args:
            url: the ``--storage`` URL (a ``StorageURL`` is returned as it is, re-checked when
                ``must_exist``).
            must_exist: the SQLite or journal file must exist (commands that read a study).
            check_content: check an existing file's content (``check_storage_file``); only
                ``nas-mnist doctor``, which repairs it, passes False.

        Returns:
            The ``StorageURL``.

        Raises:
            StorageError: unknown scheme, unparsable URL, in-memory SQLite, missing driver, or a
                file that cannot be used (``nas_mnist.sqlite_files.check_sqlite_file``, and the
                journal checks: its folder must exist and be writable), or a damaged one
                (``check_storage_file``).
        """
        if isinstance(url, StorageURL):
            if not must_exist:
                return url
            url = url.url
        if url.startswith("journal:"):
            parsed = cls(url, "journal", _journal_file(url, must_exist), url)
        else:
            parsed = _parse_sqlalchemy(url, must_exist)
        if check_content:
            check_storage_file(parsed)
        return parsed


def check_storage_file(storage: StorageURL) -> None:
    """Refuse a storage file that Optuna would damage further or misread: a journal with a
    torn last record or a line that is not JSON (the next append would make every read fail),
    or a SQLite file that is not an Optuna storage or whose schema was cut while being created
    (``storage_health``). Reads the journal once (only its new bytes on later calls in one
    process) and the SQLite schema read-only; a new or empty file passes.

    Raises:
        StorageError: one line naming the file (and the journal's line) and saying to run
            ``nas-mnist doctor --storage URL``.
    """
    path = storage.path
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    doctor = f"nas-mnist doctor --storage {storage}"
    if storage.kind == "journal":
        try:
            problem = scan_journal_settled(path).problem
        except OSError as exc:
            raise StorageError(f"--storage {storage}: cannot read {path} "
                               f"({exc.strerror})") from None
        if problem:
            raise StorageError(f"--storage {storage}: {problem}; nas-mnist will not append "
                               f"after it. Run '{doctor}' to back the file up and repair it")
        return
    schema = sqlite_schema(path)
    if schema is None or schema.problem is None:
        return
    if schema.foreign:
        raise StorageError(f"--storage {storage}: {path} {schema.problem}")
    raise StorageError(f"--storage {storage}: {path} {schema.problem}. Run '{doctor}' to back "
                       "it up and add the index (or delete the file if it holds no study yet)")


def _parse_sqlalchemy(url: str, must_exist: bool) -> StorageURL:
    """A SQLAlchemy storage URL (SQLite, PostgreSQL, MySQL), checked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"cannot parse storage URL {url!r}; use sqlite:///FILE.db or "
            "postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    redacted = parsed.render_as_string(hide_password=True)
    kind = parsed.get_backend_name()
    if kind not in SUPPORTED_KINDS:
        raise StorageError(
            f"unknown storage scheme {kind!r} in {redacted!r}; use sqlite:///FILE.db "
            "(one worker), journal:///FILE.log (--jobs N on one machine) or "
            "postgresql://USER:PASSWORD@HOST/DB (several machines)"
        )
    if kind == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"{url!r} is an in-memory SQLite database, which is lost at exit; "
                "use sqlite:///FILE.db"
            )
        check_sqlite_file(database, f"--storage {url}", must_exist=must_exist, error=StorageError)
        return StorageURL(url, kind, Path(database).expanduser(), redacted)
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as exc:
        raise StorageError(
            f"--storage {redacted}: the database driver for {parsed.drivername} is not "
            f"installed ({exc}); install {DRIVERS.get(kind, 'it')}"
        ) from None
    return StorageURL(url, kind, None, redacted)


def _journal_file(url: str, must_exist: bool) -> Path:
    """The log file of a ``journal:///FILE`` URL, checked (its folder exists and is writable).

    Raises:
        StorageError: a malformed URL, a missing folder or file, an unwritable place, or a
            file that is not an Optuna journal (a SQLite database, or anything that does not
            start with a JSON record); nothing is created.
    """
    if not url.startswith(JOURNAL_PREFIX) or len(url) == len(JOURNAL_PREFIX):
        raise StorageError(f"cannot parse storage URL {url!r}; use journal:///FILE.log (three "
                           "slashes and a relative path, four for an absolute one)")
    path = Path(url[len(JOURNAL_PREFIX):]).expanduser()
    folder = path.absolute().parent
    if must_exist and not path.is_file():
        raise StorageError(f"--storage {url}: {path.absolute()} does not exist; run from the "
                           "folder the search ran in, or pass the right path")
    if path.exists() and not path.is_file():
        raise StorageError(f"--storage {url}: {path} is not a file")
    if path.is_file():
        _check_journal_start(url, path)
    if not folder.is_dir():
        raise StorageError(f"--storage {url}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(f"--storage {url}: {path} or its folder is read-only; the journal "
                           "appends to the file and locks it with a file next to it")
    return path


def _check_journal_start(url: str, path: Path) -> None:
    """Refuse an existing file that is not an Optuna journal: Optuna would fail to decode it
    (``UnicodeDecodeError`` on a SQLite database) after other stores were created.

    Raises:
        StorageError: the file is a SQLite database or does not start with ``{`` (a journal is
            one JSON record per line); an empty file passes.
    """
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StorageError(f"--storage {url}: cannot read {path} ({exc.strerror})") from None
    if start == SQLITE_HEADER:
        raise StorageError(f"--storage {url}: {path} is a SQLite database, not an Optuna "
                           f"journal; pass --storage sqlite:///{path} to use it")
    if start.strip() and not start.lstrip().startswith(b"{"):
        raise StorageError(f"--storage {url}: {path} is not an Optuna journal (its first bytes "
                           f"are {start!r}); point at the .log file a search wrote, or at a "
                           "new file")
