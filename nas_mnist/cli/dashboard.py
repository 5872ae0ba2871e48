"""``nas-mnist dashboard``: optuna-dashboard on the studies of a storage, on localhost.

The storage is the one ``search`` wrote to, in any form it takes (``sqlite:///FILE.db``,
``journal:///FILE.log`` for ``--jobs``, ``postgresql://...``). This command is a thin layer over
``nas_mnist.reporting.dashboard.serve_dashboard``: it opens the storage (``open_storage``: nothing
is created, a bad storage is one ``StorageError`` line, exit 2) and serves it with
optuna-dashboard's WSGI application (``optuna_dashboard.wsgi``) with the threaded
``DashboardServer``, in the foreground until Ctrl-C (exit 130) or SIGTERM (exit 143): requests
are answered in worker threads, so the signal always ends the main thread's serve loop.

Bound to 127.0.0.1 unless ``--host`` and ``--allow-remote`` say otherwise (the dashboard has no
login; the rule is the one of ``nas-mnist ui``, in ``nas_mnist.cli.serving``).
"""

from __future__ import annotations

import argparse
import sys

from nas_mnist.cli.arguments import EXIT_OK
from nas_mnist.cli.serving import add_host_arguments, check_host, url_host

DEFAULT_PORT = 8080
"""optuna-dashboard's own default port."""

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
    """Serve the dashboard until Ctrl-C or SIGTERM, whose ``KeyboardInterrupt`` propagates to
    ``nas_mnist.cli.main`` (one line, exit 130 or 143). The address line is printed once the
    server is bound: it accepts connections from then on."""
    from nas_mnist.reporting.dashboard import DashboardServer, serve_dashboard

    remote = check_host(args.host, args.allow_remote, "optuna-dashboard")

    def before_serving(server: DashboardServer) -> None:  # opened (else exit 2) and bound
        if remote:
            print(REMOTE_WARNING.format(host=args.host, port=server.port,
                                        storage=server.storage), file=sys.stderr)
        print(f"optuna-dashboard for {server.storage} at http://{url_host(args.host)}:"
              f"{server.port}/dashboard/ (Ctrl-C to stop)", flush=True)

    # A bad storage or a port that cannot be bound: InputError, exit 2.
    serve_dashboard(args.storage, host=args.host, port=args.port, before_serving=before_serving)
    return EXIT_OK  # not reached: only a signal ends the serve loop
