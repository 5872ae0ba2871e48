"""``nas-mnist dashboard``: optuna-dashboard on the studies of a storage, on localhost.

Serves ``nas_mnist.reporting.dashboard`` in the foreground until Ctrl-C (or SIGTERM). Bound to
127.0.0.1 unless ``--host`` and ``--allow-remote`` say otherwise (the dashboard has no login; the
rule is the one of ``nas-mnist ui``, in ``nas_mnist.cli.serving``).
"""

from __future__ import annotations

import argparse
import sys

from nas_mnist.cli.arguments import EXIT_OK
from nas_mnist.cli.serving import add_host_arguments, check_host, check_port_free, url_host
from nas_mnist.tracking.redaction import redact_uri

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
        help=f"Optuna storage URL that search wrote to (default: {DEFAULT_STORAGE})",
    )
    add_host_arguments(parser, DEFAULT_PORT, "optuna-dashboard")


def run(args: argparse.Namespace) -> int:
    from nas_mnist.reporting.dashboard import dashboard

    remote = check_host(args.host, args.allow_remote, "optuna-dashboard")
    check_port_free(args.host, args.port)
    server = dashboard(args.storage, args.host, args.port)  # StorageError: exit 2
    try:
        if remote:
            print(REMOTE_WARNING.format(host=args.host, port=args.port,
                                        storage=redact_uri(args.storage)),
                  file=sys.stderr)
        print(f"optuna-dashboard for {redact_uri(args.storage)} at "
              f"http://{url_host(args.host)}:{server.port}/dashboard/ (Ctrl-C to stop)",
              flush=True)
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI raises it as KeyboardInterrupt)
        print("nas-mnist dashboard: stopped", file=sys.stderr, flush=True)
    finally:
        server.shutdown()
    return EXIT_OK
