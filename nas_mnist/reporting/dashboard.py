"""``nas_mnist.dashboard(...)``: optuna-dashboard on a study's storage, served on this machine.

optuna-dashboard (https://github.com/optuna/optuna-dashboard) is Optuna's own web UI: the
history, learning curves, parameter importances and every trial's attributes of each study in a
storage. The storage is the one ``search`` wrote to, in any form it takes (``sqlite:///FILE.db``,
``journal:///FILE.log`` for ``--jobs``, ``postgresql://...``): ``open_storage`` checks the URL
(``StorageURL.parse``), opens it with ``nas_mnist.study.storage.make_storage`` without creating
anything, and turns every failure into one ``StorageError`` line without the password.

Two ways to serve it, both bound to 127.0.0.1 unless told otherwise:

- ``dashboard()`` (``nas_mnist.dashboard``) binds optuna-dashboard's WSGI application
  (``optuna_dashboard.wsgi``) to the standard library's WSGI server (one thread per request, as
  a browser opens several connections at once) and returns it, to serve in a thread or the
  foreground and stop with ``shutdown()``.
- ``serve_dashboard()`` binds the same ``DashboardServer`` and serves it in the foreground until
  Ctrl-C or SIGTERM; this is what ``nas-mnist dashboard`` runs. Requests are answered in worker
  threads, so the main thread stays in the serve loop, where the signal's exception ends it
  (``optuna_dashboard.run_server`` answers in the main thread: a signal that arrives while a
  response is written raises inside ``wsgiref``'s handler, whose catch-all prints a traceback
  and goes on serving).

The dashboard has no login, so binding another address is the caller's decision (the CLI's
``--allow-remote``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nas_mnist.errors import InputError
from nas_mnist.study.storage import StorageError, StorageURL, make_storage

if TYPE_CHECKING:
    import optuna

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


def _require_optuna_tables(storage: str | StorageURL) -> None:
    """Refuse a database that holds no Optuna storage (Optuna's ``RDBStorage`` would create its
    tables in any database it opens).

    Raises:
        StorageError: one line, the URL without its password: the database cannot be read
            (``cannot read the storage ...``) or has no ``studies`` table.
    """
    import sqlalchemy

    parsed = StorageURL.parse(storage)
    engine = sqlalchemy.create_engine(parsed.url)
    try:
        found = sqlalchemy.inspect(engine).has_table("studies")
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise _unreadable(parsed, exc) from None
    finally:
        engine.dispose()
    if not found:
        raise StorageError(f"{parsed} holds no Optuna study (no 'studies' table); pass the "
                           "--storage that nas-mnist search wrote to")


def _unreadable(parsed: StorageURL, exc: Exception) -> StorageError:
    """``cannot read the storage URL: <first line of exc>``, without the password."""
    from nas_mnist.tracking.redaction import hide_password

    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return StorageError(f"cannot read the storage {parsed}: {hide_password(first, parsed.url)}")


def open_storage(url: str | StorageURL) -> tuple[optuna.storages.BaseStorage, str]:
    """The Optuna storage at ``url``, opened without creating anything, and the URL to show.

    Args:
        url: an Optuna storage URL that ``nas-mnist search`` wrote to (``sqlite:///FILE``,
            ``journal:///FILE``, ``postgresql://...``, ``mysql://...``).

    Returns:
        ``(storage, shown)``: the ``optuna.storages.BaseStorage`` made by
        ``nas_mnist.study.storage.make_storage`` (a ``JournalStorage`` for ``journal:``, an
        ``RDBStorage`` otherwise), its studies listed once; and the URL without its password.

    Raises:
        StorageError: (an ``InputError``; one line, no password) a bad URL, a file that does not
            exist or is not a storage of that kind, a database without Optuna's tables (nothing
            is created in it), or a storage that cannot be read (a server that does not
            answer, an outdated schema).
    """
    import sqlalchemy

    parsed = StorageURL.parse(url, must_exist=True)
    if parsed.kind != "journal":
        _require_optuna_tables(parsed)
    try:
        storage = make_storage(parsed)
        storage.get_all_studies()  # a journal that does not decode fails here, not in the page
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError, RuntimeError) as exc:
        # RuntimeError: a schema older than the installed Optuna ('optuna storage upgrade').
        if isinstance(exc, InputError):
            raise
        raise _unreadable(parsed, exc) from None
    return storage, parsed.redacted


def dashboard(storage: str, host: str = "127.0.0.1", port: int = 8080) -> DashboardServer:
    """Bind optuna-dashboard for the studies in ``storage`` to ``host:port``.

    Nothing is created: the storage is opened by ``open_storage`` first (its file must exist,
    a database must hold Optuna's tables). The server is bound and listening when this returns,
    but answers requests only once ``serve_forever()`` or ``start_in_thread()`` runs.

    Args:
        storage: an Optuna storage URL written by ``nas-mnist search`` (``sqlite:///FILE``,
            ``journal:///FILE``, ``postgresql://...``, ``mysql://...``).
        host: the address to bind; ``127.0.0.1`` lets only this machine in. The dashboard has
            no login: any other address lets anyone who reaches it read and delete trials.
        port: the TCP port; 0 picks a free one (see ``DashboardServer.port``).

    Returns:
        A ``DashboardServer``; call ``shutdown()`` when done.

    Raises:
        StorageError: (an ``InputError``) one line, as ``open_storage`` raises it: a bad URL, a
            file that does not exist or is not a storage, a database without Optuna's tables or
            that cannot be read.
        OSError: ``host:port`` cannot be bound (in use, or not an address of this machine).
    """
    import optuna_dashboard

    opened, shown = open_storage(storage)
    app = optuna_dashboard.wsgi(opened)
    server_class = _ThreadingWSGIServer6 if ":" in host else _ThreadingWSGIServer
    server = make_server(host, port, app, server_class=server_class,
                         handler_class=_QuietHandler)
    bound_port = server.server_address[1]
    logger.debug("optuna-dashboard for %s bound to %s:%d", shown, host, bound_port)
    return DashboardServer(server=server, storage=shown, host=host, port=bound_port)


def serve_dashboard(storage: str, host: str = "127.0.0.1", port: int = 8080, *,
                    before_serving: Callable[[DashboardServer], None] | None = None) -> None:
    """Serve optuna-dashboard for the studies in ``storage`` on ``host:port`` in the foreground
    until Ctrl-C or SIGTERM, with the threaded ``DashboardServer`` that ``dashboard()`` binds.

    The main thread only waits for connections (each request runs in a worker thread), so the
    ``KeyboardInterrupt`` of Ctrl-C (or ``nas_mnist.processes.signals.Terminated``, which the CLI
    raises on SIGTERM) always ends the serve loop. The listening socket is closed and the
    exception propagates: the caller decides what the interruption means (the CLI exits with
    130 or 143).

    Args:
        storage: an Optuna storage URL, as for ``dashboard()``; opened by ``open_storage``.
        host: the address to bind (see ``dashboard()``: the dashboard has no login).
        port: the TCP port; 0 picks a free one (``DashboardServer.port``).
        before_serving: called with the bound ``DashboardServer`` (listening, its ``storage``
            the URL without password) before it answers; connections made from then on are
            answered once serving starts. What it raises closes the socket and propagates.

    Raises:
        StorageError: (an ``InputError``) as ``open_storage`` raises it, before anything binds.
        InputError: ``host:port`` cannot be bound (taken, or not an address of this machine):
            one line, ``cannot listen on HOST:PORT (why); pick another port``.
        KeyboardInterrupt: Ctrl-C (``Terminated`` for SIGTERM under the CLI), once the socket
            is closed.
    """
    try:
        server = dashboard(storage, host=host, port=port)
    except OSError as exc:  # open_storage turns its own OSErrors into StorageError: the bind
        why = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(f"cannot listen on {host}:{port} ({why}); pick another port") from None
    try:
        if before_serving is not None:
            before_serving(server)
        server.serve_forever()
    finally:
        # serve_forever ran (or not) in this thread and has ended: only the socket is left.
        # (shutdown() would wait forever for a loop that a signal stopped before it started.)
        server.server.server_close()
        logger.debug("optuna-dashboard for %s on %s:%d stopped", server.storage, host,
                     server.port)
