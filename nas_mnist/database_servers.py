"""Database servers (PostgreSQL, MySQL) behind a ``--storage`` or ``--tracking-uri`` URL: one
connection tried before anything is created, bounded in time, its failure told in one line
without the password.

Without this a wrong password or an unreachable server ended in a SQLAlchemy traceback after
48 s (an Optuna storage) or 1 min 48 s (an MLflow store, which retries), with the MLflow store
already created (issue 19, defect 12).
"""

from __future__ import annotations

from typing import Any

from nas_mnist.errors import InputError

CONNECT_TIMEOUT = 10
"""Seconds a server gets to accept a connection (the drivers' ``connect_timeout``)."""

SERVER_KINDS = ("postgresql", "mysql")
"""SQLAlchemy backend names of the servers checked here."""


class ServerConnectionError(InputError):
    """A database server refused the connection or did not answer in ``CONNECT_TIMEOUT``
    seconds; the message shows no password."""


def server_kind(url: str) -> str | None:
    """``"postgresql"`` or ``"mysql"`` for a SQLAlchemy URL of such a server, else None (SQLite,
    a journal, ``http://``, a path, or something that is not a URL)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        kind = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return None
    return kind if kind in SERVER_KINDS else None


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` arguments for ``url``: a connection timeout for servers."""
    if server_kind(url) is None:
        return {}
    return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}


def connection_error(url: str, exc: BaseException, role: str) -> ServerConnectionError:
    """One line for a failed connection to ``url``: the driver's first line (e.g. ``password
    authentication failed for user "nas"``), cut to 300 characters, without the password."""
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["no answer"])[0]
    return ServerConnectionError(
        f"cannot connect to the {role} {shown}: {reason[:300]}; check that the server runs and "
        "that the user, password and database are right")


def check_server_connects(url: str, role: str = "storage") -> None:
    """Connect once to ``url`` when it names a PostgreSQL or MySQL server; do nothing for any
    other URL.

    Args:
        url: a ``--storage`` or ``--tracking-uri`` value.
        role: what the URL is, for the message (``"storage"``, ``"MLflow tracking store"``).

    Raises:
        ServerConnectionError: the server refused the connection (wrong password, unknown
            database) or did not answer within ``CONNECT_TIMEOUT`` seconds.
    """
    if server_kind(url) is None:
        return
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    engine = sqlalchemy.create_engine(url, **engine_kwargs(url))
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise connection_error(url, exc, role) from None
    finally:
        engine.dispose()
