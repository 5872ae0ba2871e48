"""Pieces shared by the commands that serve a web UI on this machine (``ui``, ``dashboard``):
the ``--host/--port/--allow-remote`` flags, the loopback-only rule, and probing a server.

Neither the MLflow UI nor optuna-dashboard has a login: anyone who can reach them can read (and
edit or delete) what they show. So they bind to the loopback address only; another address is
refused unless ``--allow-remote`` is given, and then a warning says so.
"""

from __future__ import annotations

import argparse
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from nas_mnist.cli.arguments import UsageError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Addresses that only this machine can reach."""


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {value}")
    return value


def add_host_arguments(parser: argparse.ArgumentParser, default_port: int, what: str) -> None:
    """``--port``, ``--host`` and ``--allow-remote`` for a server called ``what``."""
    parser.add_argument(
        "--port",
        type=port_number,
        default=default_port,
        help=f"port to listen on (default: {default_port})",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only); any other address is "
        "refused unless --allow-remote is given",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help=f"allow a --host that other machines can reach ({what} has no login: a warning "
        "is printed)",
    )


def check_host(host: str, allow_remote: bool, what: str) -> bool:
    """True if ``host`` is reachable from other machines (allowed only with ``allow_remote``).

    Raises:
        UsageError: ``host`` is not a loopback address and ``allow_remote`` is False.
    """
    if host in LOCAL_HOSTS:
        return False
    if not allow_remote:
        raise UsageError(
            f"--host {host} would let other machines reach {what}, which has no login; "
            "refused. Use the default 127.0.0.1 (with an SSH tunnel for remote access), or "
            "pass --allow-remote to bind it anyway"
        )
    return True


def check_port_free(host: str, port: int) -> None:
    """Raises UsageError if nothing can listen on ``host:port`` (taken, or not an address here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
            ) from None


def url_host(host: str) -> str:
    """``host`` as it goes in a URL a user can open."""
    if host in ("0.0.0.0", "::"):  # allowed only with --allow-remote: show a reachable name
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def probe_url(host: str, port: int, path: str) -> str:
    """A URL on this machine that reaches a server bound to ``host:port``."""
    if host in ("0.0.0.0", "::", "localhost"):  # wildcard only with --allow-remote
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def wait_until_up(url: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll ``url`` until it answers HTTP 200 (True), ``alive()`` turns False or ``seconds``
    pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False
