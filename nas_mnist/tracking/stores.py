"""Which MLflow tracking stores nas-mnist can use, checked before anything is created.

``validate_tracking_uri`` checks a ``--tracking-uri`` as given (search and retrain call it with
the other flags); ``open_client`` opens the store (every command's ``Tracker`` does, whatever
the URI's source: the flag, ``$MLFLOW_TRACKING_URI``, the study's record or MLflow's default).
Both refuse, in one line (``TrackingError``, exit 2):

- MLflow 3's file store (a folder path or a ``file://`` URI): MLflow 3.17 itself refuses it
  unless ``MLFLOW_ALLOW_FILE_STORE=true`` (its ``FileStore`` is "in maintenance mode"), and
  nas-mnist's logged models, store lock and ``nas-mnist ui`` are made for a database store;
- a database store whose schema another MLflow version made (MLflow's own check, on opening,
  says to run ``mlflow db upgrade``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from nas_mnist.errors import InputError
from nas_mnist.tracking.redaction import redact_uri


class TrackingError(InputError):
    """The MLflow tracking store cannot be reached or used; the message says which URI."""


TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file",
                    "databricks")
"""Tracking URI schemes MLflow's tracking store registry knows (plus a plain folder path);
``file`` and folder paths are then refused (``refuse_file_store``)."""

DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
"""File name endings that say a path meant a SQLite file, not a folder store."""


def _scheme(uri: str) -> str:
    from urllib.parse import urlparse

    return urlparse(uri).scheme.split("+")[0].lower()


def is_file_store(uri: str) -> bool:
    """Whether MLflow reads ``uri`` as its file store: a ``file:`` URI or a plain path (on
    Windows, ``C:\\...`` too, whose drive letter parses as a one-letter scheme)."""
    scheme = _scheme(uri)
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def refuse_file_store(uri: str | None, what: str) -> None:
    """Refuse MLflow 3's file store (a folder path or a ``file://`` URI).

    The line suggests ``sqlite:///<path>`` for a path that names a database file
    (``DATABASE_SUFFIXES``, or an existing file), else ``sqlite:///mlflow.db``, and for an
    existing folder the command that converts its runs (``mlflow migrate-filestore``).

    Args:
        uri: the tracking URI (None or empty: nothing to check).
        what: how the message names it, e.g. ``--tracking-uri mlruns``.

    Raises:
        TrackingError: ``uri`` is a file store.
    """
    if not uri or not is_file_store(uri):
        return
    from urllib.parse import unquote, urlparse

    path = unquote(urlparse(uri).path) if _scheme(uri) == "file" else uri
    database = path.lower().endswith(DATABASE_SUFFIXES) or os.path.isfile(path)
    sqlite = f"sqlite:///{path}" if database else "sqlite:///mlflow.db"
    convert = (f"; convert its runs with: mlflow migrate-filestore --source {path} --target "
               "sqlite:///mlflow.db" if os.path.isdir(path) else "")
    raise TrackingError(
        f"{what}: MLflow 3's file store (a folder or file:// URI) is not supported; pass e.g. "
        f"--tracking-uri {sqlite} or http://HOST:PORT (an MLflow server){convert}"
    )


def validate_tracking_uri(uri: str | None) -> str | None:
    """Check a ``--tracking-uri`` before anything is created.

    The scheme must be one MLflow can track to (``TRACKING_SCHEMES``); MLflow 3's file store is
    refused (``refuse_file_store``). For ``sqlite:`` stores, the file is checked as
    ``study.check_sqlite_file`` does: its folder must exist (MLflow would otherwise create it
    silently) and be writable, and an existing file must be a SQLite database. The database
    driver of other SQL stores must be installed.

    Args:
        uri: the URI, or None (``MLFLOW_TRACKING_URI`` or MLflow's default; ``open_client``
            checks it).

    Returns:
        ``uri`` unchanged.

    Raises:
        TrackingError: what is wrong, naming the flag and the URI.
    """
    if not uri:
        return uri
    refuse_file_store(uri, f"--tracking-uri {redact_uri(uri)}")
    scheme = _scheme(uri)
    if scheme not in TRACKING_SCHEMES or (len(scheme) == 1 and os.name != "nt"):
        raise TrackingError(
            f"--tracking-uri {redact_uri(uri)}: unknown scheme {scheme!r}; use "
            "sqlite:///mlflow.db, http://HOST:PORT (an MLflow server) or "
            "postgresql://USER:PASSWORD@HOST/DB"
        )
    if scheme in ("http", "https", "databricks"):
        return uri
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from nas_mnist.sqlite_files import check_sqlite_file

    try:
        parsed = make_url(uri)
    except ArgumentError:
        raise TrackingError(f"--tracking-uri {redact_uri(uri)}: cannot parse it as a database "
                            "URL") from None
    if scheme == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise TrackingError(f"--tracking-uri {uri}: an in-memory store is lost at exit; use "
                                "sqlite:///mlflow.db")
        check_sqlite_file(parsed.database, f"--tracking-uri {uri}", error=TrackingError)
        return uri
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as exc:
        raise TrackingError(f"--tracking-uri {parsed.render_as_string(hide_password=True)}: the "
                            f"database driver is not installed ({exc})") from None
    return uri


def store_creation_lock(tracking_uri: str) -> Any:
    """For a ``sqlite:`` store, an exclusive lock on ``<database>.lock`` (waiting up to 5
    minutes), so that one process at a time creates or migrates the store's tables; MLflow's
    table creation is not safe against a second process doing the same (two searches started
    together broke a new store for good: ``_alembic_tmp_metrics already exists``). A no-op
    context for other stores."""
    import contextlib

    from sqlalchemy.engine import make_url

    from nas_mnist.filelock import file_lock, lock_path_for

    if not tracking_uri.startswith("sqlite:"):
        return contextlib.nullcontext()
    database = make_url(tracking_uri).database
    if not database or database == ":memory:":
        return contextlib.nullcontext()
    path = os.path.abspath(os.path.expanduser(database))
    if not os.access(os.path.dirname(path), os.W_OK | os.X_OK):
        return contextlib.nullcontext()  # nothing can be created there: a store only read
    return file_lock(lock_path_for(path), timeout=300)


_SCHEMA_VERSIONS = re.compile(r"found version (?P<found>\S+), but expected (?P<expected>[^\s)]+)")


def other_version_message(tracking_uri: str, mlflow_message: str) -> str | None:
    """The line for a store another MLflow version made, from the error MLflow raises when it
    opens one (``mlflow.store.db.utils._verify_schema``: "Detected out-of-date database schema
    (found version X, but expected Y). Take a backup ..., then run 'mlflow db upgrade ...'");
    None for any other error. MLflow's check is not repeated here: its message is read."""
    if "mlflow db upgrade" not in mlflow_message:
        return None
    import mlflow

    shown = redact_uri(tracking_uri)
    versions = _SCHEMA_VERSIONS.search(mlflow_message)
    schema = (f" (schema {versions['found']}; MLflow {mlflow.__version__} expects "
              f"{versions['expected']})" if versions else "")
    return (f"the MLflow tracking store {shown} was made by another MLflow version{schema}: "
            f"back it up, then run: mlflow db upgrade {shown} (a store made by a newer MLflow "
            "needs that MLflow version instead)")


def open_client(tracking_uri: str, what: str | None = None) -> Any:
    """An ``MlflowClient`` of ``tracking_uri``, whose store MLflow opens (and, for a new SQLite
    store, creates under ``store_creation_lock``) here.

    Args:
        tracking_uri: the resolved tracking URI.
        what: how a refusal names the URI (default: ``the MLflow tracking URI <uri>``).

    Raises:
        TrackingError: MLflow 3's file store (``refuse_file_store``), or a store whose schema
            another MLflow version made (``other_version_message``).
        ServerConnectionError: a PostgreSQL/MySQL store that refused the connection (a wrong
            password) or did not answer in ``database_servers.CONNECT_TIMEOUT`` seconds (MLflow
            itself retries for about 2 minutes, then prints a traceback).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nas_mnist.database_servers import check_server_connects

    refuse_file_store(tracking_uri, what or f"the MLflow tracking URI {redact_uri(tracking_uri)}")
    check_server_connects(tracking_uri, "MLflow tracking store")
    with store_creation_lock(tracking_uri):  # MLflow creates a SQLite store here
        try:
            return MlflowClient(tracking_uri=tracking_uri)
        except MlflowException as exc:
            message = other_version_message(tracking_uri, str(exc))
            if message is None:
                raise
            raise TrackingError(message) from None
