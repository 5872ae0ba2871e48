"""Retries for an MLflow SQLite store that another process holds locked.

Several processes write to one SQLite tracking store during ``search --jobs N`` (the workers'
trial runs, the supervisor's parent run). SQLite lets one write at a time; MLflow waits up to
20 s for the lock (``PRAGMA busy_timeout = 20000`` in ``mlflow.store.db.utils``), but SQLite
answers "database is locked" at once, without waiting, when a transaction that has read must
become a writer while another process writes (SQLite's deadlock avoidance: "SQLITE_BUSY" in
https://www.sqlite.org/rescode.html#busy). The failed transaction is rolled back, so the call can
be made again: ``call_retrying_locks`` does, a few times, a little later each time.

MLflow logs each such failure with its traceback ("SQLAlchemy database error. The following
exception is caught."); ``LockTracebackFilter`` drops that record, as the error is retried here
(and, if it outlasts the retries, raised to the caller, which says what it does about it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

LOCK_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds slept before each new try of a call that found the store locked (about 16 s in
all, besides SQLite's own waits)."""

MLFLOW_DB_LOGGER = "mlflow.store.db.utils"
"""The logger MLflow's SQLAlchemy session maker logs database errors to, with traceback."""


def is_database_locked(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, is SQLite's "database is locked"
    (raw ``sqlite3``, SQLAlchemy's ``OperationalError`` or MLflow's ``MlflowException``)."""
    seen = 0
    while exc is not None and seen < 10:
        if "database is locked" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def call_retrying_locks(call: Callable[..., Any], *args: Any, retry: bool = True,
                        **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, made again after each of ``LOCK_RETRY_DELAYS`` while it
    raises "database is locked" (``is_database_locked``).

    Args:
        call: an ``MlflowClient`` method; a locked SQLite store rolled back what it wrote.
        retry: False for one try only (a clean-up after a stop signal must not wait).

    Raises:
        Exception: what ``call`` raised, at once for any other error, and the last
            "database is locked" once the retries are spent.
    """
    delays = LOCK_RETRY_DELAYS if retry else ()
    for delay in delays:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not is_database_locked(exc):
                raise
        time.sleep(delay)
    return call(*args, **kwargs)


class LockTracebackFilter(logging.Filter):
    """Filter for MLflow's database logger: drops its record of a "database is locked" error
    (``call_retrying_locks`` retries the call, and raises the error to its caller once the
    retries are spent); other errors are kept whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_database_locked(record.exc_info[1] if record.exc_info else None)


_FILTER = LockTracebackFilter()


def quiet_lock_tracebacks() -> None:
    """Install ``LockTracebackFilter`` on MLflow's database logger (once per process)."""
    db_logger = logging.getLogger(MLFLOW_DB_LOGGER)
    if _FILTER not in db_logger.filters:
        db_logger.addFilter(_FILTER)
