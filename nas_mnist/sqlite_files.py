"""SQLite URLs and database files, the one place that reads them: can SQLite create or open this
path, checked without creating it. Shared by the Optuna storage (``--storage``) and the MLflow
store (``--tracking-uri``) checks; both use SQLAlchemy's ``sqlite:///FILE`` form.
"""

from __future__ import annotations

import os
from pathlib import Path

from nas_mnist.errors import InputError

SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (https://www.sqlite.org/fileformat.html)."""


def check_sqlite_file(
    path: str | os.PathLike[str],
    what: str,
    must_exist: bool = False,
    error: type[Exception] = ValueError,
) -> Path:
    """Check that SQLite can create or open ``path`` as a database, without creating it.

    Args:
        path: the database file, as the URL gives it (SQLAlchemy opens it as written).
        what: how to name it in messages, e.g. ``"--storage sqlite:///s.db"``.
        must_exist: the file must exist already (commands that read a study).
        error: the exception type to raise (``StorageError`` for ``--storage``,
            ``TrackingError`` for ``--tracking-uri``).

    Returns:
        The absolute path.

    Raises:
        error: the path starts with ``~`` (SQLAlchemy does not expand it: the search would
            fail on a folder named ``~``), the folder does not exist or is not writable, the
            path is a folder, the
            file is not a SQLite database or cannot be read or written, or (``must_exist``) it
            does not exist. ``os.access`` decides writability, so a root user passes.
    """
    if os.fspath(path).startswith("~"):
        raise error(f"{what}: SQLAlchemy does not expand '~' in a sqlite:/// URL; write the "
                    f"path out: sqlite:///{Path(path).expanduser().absolute()}")
    file = Path(path).absolute()
    folder = file.parent
    if file.is_dir():
        raise error(f"{what}: {file} is a folder, not a database file; name a file in it, "
                           f"e.g. sqlite:///{file / 'nas_mnist.db'}")
    if not file.exists():
        if must_exist:
            raise error(f"{what}: {file} does not exist; check the path (nothing was "
                               "created)")
        if not folder.is_dir():
            raise error(f"{what}: the folder {folder} does not exist; create it or point "
                               "at an existing folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise error(f"{what}: the folder {folder} is not writable, so the database "
                               "cannot be created there; choose a folder you can write to")
        return file
    if not os.access(file, os.R_OK):
        raise error(f"{what}: {file} is not readable; check its permissions")
    with open(file, "rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise error(f"{what}: {file} is not a SQLite database (its first bytes are "
                           f"{header[:16]!r}); point at a .db file that nas-mnist or MLflow wrote, "
                           "or at a new file")
    if not (os.access(file, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
        raise error(f"{what}: {file} or its folder is read-only; SQLite writes the file "
                           "and a journal next to it. Copy it somewhere writable")
    return file


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL; None for other schemes, unparsable URLs
    and in-memory databases."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def require_existing_sqlite(url: str, what: str, flag: str) -> None:
    """Refuse a SQLite URL whose file does not exist: opening it would create an empty one.

    Args:
        url: a storage or tracking URL (other schemes pass).
        what: what it is, for the message ("study storage", "MLflow tracking store").
        flag: the flag that gave it ("--tracking-uri").

    Raises:
        InputError: the file does not exist.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise InputError(
            f"the {what} {url!r} does not exist ({path.resolve()}); run from the folder the "
            f"search ran in, or pass {flag} with the right path"
        )

