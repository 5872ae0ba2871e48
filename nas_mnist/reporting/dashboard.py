"""``nas_mnist.dashboard(...)``: optuna-dashboard on a study's storage, served on this machine.

optuna-dashboard (https://github.com/optuna/optuna-dashboard) is Optuna's own web UI: the
history, learning curves, parameter importances and every trial's attributes of each study in a
storage. It is a WSGI application; this module serves it with the standard library's WSGI
server (one thread per request, as a browser opens several connections at once) bound to
127.0.0.1 unless told otherwise. It has no login, so binding another address is the CLI's
decision (``nas-mnist dashboard --allow-remote``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nas_mnist.study.storage import StorageError, validate_storage_url

logger = logging.getLogger(__name__)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
        logger.debug("%s " + format, self.address_string(), *args)


class _ThreadingWSGIServer6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


@dataclass
class DashboardServer:
    """A bound optuna-dashboard WSGI server; it answers once ``serve_forever`` runs.

    Attributes:
        server: the ``wsgiref`` server, already bound and listening.
        storage: the storage URL it shows.
        host, port: the address it is bound to (``port`` is the real one when 0 was asked).
    """

    server: Any
    storage: str
    host: str
    port: int
    _started: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/dashboard/`` (optuna-dashboard's home page)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/dashboard/"

    def serve_forever(self) -> None:
        """Answer requests until ``shutdown()`` (from another thread) or KeyboardInterrupt."""
        self._started = True
        self.server.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        """Serve from a daemon thread; returns it (stop with ``shutdown()``)."""
        self._started = True
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="optuna-dashboard", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop serving (waits for ``serve_forever`` to return) and close the listening socket."""
        if self._started:
            self.server.shutdown()  # returns at once if serve_forever already ended
        self.server.server_close()


def _require_optuna_tables(storage: str) -> None:
    """Refuse a database that holds no Optuna storage (Optuna would create its tables there).
    The messages show the URL without its password (``redact_uri``, ``hide_password``)."""
    import sqlalchemy

    from nas_mnist.tracking.redaction import hide_password, redact_uri

    engine = sqlalchemy.create_engine(storage)
    try:
        found = sqlalchemy.inspect(engine).has_table("studies")
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot read the storage {redact_uri(storage)}: "
                           f"{hide_password(str(exc), storage)}") from None
    finally:
        engine.dispose()
    if not found:
        raise StorageError(f"{redact_uri(storage)} holds no Optuna study (no 'studies' table); "
                           "pass the --storage that nas-mnist search wrote to")


def dashboard(storage: str, host: str = "127.0.0.1", port: int = 8080) -> DashboardServer:
    """Bind optuna-dashboard for the studies in ``storage`` to ``host:port``.

    Nothing is created: the storage URL is checked first (a SQLite file must exist already).
    The server is bound and listening when this returns, but answers requests only once
    ``serve_forever()`` or ``start_in_thread()`` runs.

    Args:
        storage: an Optuna storage URL written by ``nas-mnist search`` (``sqlite:///FILE``,
            ``postgresql://...``, ``mysql://...``).
        host: the address to bind; ``127.0.0.1`` lets only this machine in. The dashboard has
            no login: any other address lets anyone who reaches it read and delete trials.
        port: the TCP port; 0 picks a free one (see ``DashboardServer.port``).

    Returns:
        A ``DashboardServer``; call ``shutdown()`` when done.

    Raises:
        StorageError: a bad storage URL, a SQLite file that does not exist, or a database
            without Optuna's tables (nothing is created in it).
        OSError: ``host:port`` cannot be bound (in use, or not an address of this machine).
    """
    import optuna
    import optuna_dashboard

    from nas_mnist.tracking.redaction import redact_uri

    validate_storage_url(storage, must_exist=True)
    _require_optuna_tables(storage)
    app = optuna_dashboard.wsgi(optuna.storages.RDBStorage(storage))
    server_class = _ThreadingWSGIServer6 if ":" in host else _ThreadingWSGIServer
    server = make_server(host, port, app, server_class=server_class,
                         handler_class=_QuietHandler)
    bound_port = server.server_address[1]
    logger.debug("optuna-dashboard for %s bound to %s:%d", redact_uri(storage), host, bound_port)
    return DashboardServer(server=server, storage=storage, host=host, port=bound_port)
