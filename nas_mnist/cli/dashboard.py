"""``nas-mnist dashboard``: optuna-dashboard on the studies of a storage, on localhost.

The storage is the one ``search`` wrote to, in any form it takes (``sqlite:///FILE.db``,
``journal:///FILE.log`` for ``--jobs``, ``postgresql://...``): the URL is checked by
``StorageURL.parse`` and opened by ``nas_mnist.study.storage.make_storage``, and the storage
object goes to optuna-dashboard's own server (``optuna_dashboard.run_server``, as the
``optuna-dashboard`` command serves it), in the foreground until Ctrl-C (or SIGTERM). Nothing is
created: the file must exist, and a database without Optuna's tables is refused.

Bound to 127.0.0.1 unless ``--host`` and ``--allow-remote`` say otherwise (the dashboard has no
login; the rule is the one of ``nas-mnist ui``, in ``nas_mnist.cli.serving``).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

from nas_mnist.cli.arguments import EXIT_OK
from nas_mnist.cli.serving import (
    add_host_arguments,
    check_host,
    check_port_free,
    probe_url,
    url_host,
)

DEFAULT_PORT = 8080
"""optuna-dashboard's own default port."""

ANNOUNCE_SECONDS = 120.0
"""How long the address line waits for the server to listen (it binds within a second)."""

REMOTE_WARNING = (
    "warning: optuna-dashboard has no login; anyone who can reach {host}:{port} can read, "
    "change and delete every study in {storage}. Prefer an SSH tunnel to a dashboard bound to "
    "127.0.0.1."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas_mnist.study.defaults import DEFAULT_STORAGE

    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"Optuna storage that search wrote to: sqlite:///FILE.db, journal:///FILE.log or "
        f"postgresql://... (default: {DEFAULT_STORAGE})",
    )
    add_host_arguments(parser, DEFAULT_PORT, "optuna-dashboard")


def run(args: argparse.Namespace) -> int:
    import optuna_dashboard

    remote = check_host(args.host, args.allow_remote, "optuna-dashboard")
    storage, shown = open_storage(args.storage)  # StorageError: exit 2
    check_port_free(args.host, args.port)
    if remote:
        print(REMOTE_WARNING.format(host=args.host, port=args.port, storage=shown),
              file=sys.stderr)
    _announce_when_listening(args.host, args.port,
                             f"optuna-dashboard for {shown} at http://{url_host(args.host)}:"
                             f"{args.port}/dashboard/ (Ctrl-C to stop)")
    try:
        # bottle's server under it returns on Ctrl-C (KeyboardInterrupt; SIGTERM raises one too).
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:  # one that arrived before bottle's own handler was in place
        pass
    print("nas-mnist dashboard: stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def open_storage(url: str) -> tuple[Any, str]:
    """The Optuna storage at ``url``, opened without creating anything, and the URL to show.

    Args:
        url: an Optuna storage URL that ``nas-mnist search`` wrote to (``sqlite:///FILE``,
            ``journal:///FILE``, ``postgresql://...``, ``mysql://...``).

    Returns:
        ``(storage, shown)``: the ``optuna.storages.BaseStorage`` made by ``make_storage`` (a
        ``JournalStorage`` for ``journal:``, an ``RDBStorage`` otherwise), its studies listed
        once; and the URL without its password.

    Raises:
        StorageError: a bad URL, a file that does not exist or is not a storage of that kind, a
            database without Optuna's tables (nothing is created in it), or a storage that
            cannot be read (a server that does not answer, an outdated schema).
    """
    import sqlalchemy

    from nas_mnist.study.storage import StorageError, StorageURL, make_storage
    from nas_mnist.tracking.redaction import hide_password

    parsed = StorageURL.parse(url, must_exist=True)

    def unreadable(exc: Exception) -> StorageError:  # one line, without the password
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StorageError(f"cannot read the storage {parsed}: "
                            f"{hide_password(first, parsed.url)}")

    if parsed.kind != "journal":  # Optuna's RDBStorage would create its tables in any database
        engine = sqlalchemy.create_engine(parsed.url)
        try:
            found = sqlalchemy.inspect(engine).has_table("studies")
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise unreadable(exc) from None
        finally:
            engine.dispose()
        if not found:
            raise StorageError(f"{parsed} holds no Optuna study (no 'studies' table); pass the "
                               "--storage that nas-mnist search wrote to")
    try:
        storage = make_storage(parsed)
        storage.get_all_studies()  # a journal that does not decode fails here, not in the page
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError, RuntimeError) as exc:
        # RuntimeError: a schema older than the installed Optuna ('optuna storage upgrade').
        raise unreadable(exc) from None
    return storage, parsed.redacted


def _announce_when_listening(host: str, port: int, line: str) -> threading.Thread:
    """Print ``line`` on stdout once ``host:port`` accepts connections (``run_server`` blocks
    from before it binds, so the address is printed from a daemon thread): whoever reads the
    line can open the address at once. The probe connects and sends nothing, which the server
    neither answers nor logs. Returns the thread; nothing is printed if the server never
    listens within ``ANNOUNCE_SECONDS``."""
    address = (urllib.parse.urlsplit(probe_url(host, port, "/")).hostname or host, port)

    def announce() -> None:
        deadline = time.monotonic() + ANNOUNCE_SECONDS
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(address, timeout=1.0):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            print(line, flush=True)
            return

    thread = threading.Thread(target=announce, name="dashboard-address", daemon=True)
    thread.start()
    return thread
