"""``nas-mnist ui``: the MLflow UI on the tracking store that ``search`` wrote to, on localhost.

Runs ``mlflow server`` (same Python, ``sys.executable -m mlflow``) as a child process bound to
127.0.0.1, waits until it answers, prints the address of the study's experiment and stays in
the foreground until Ctrl-C (or SIGTERM), then stops the child and everything it started.

The MLflow UI has no login: anyone who can reach it can read, edit and delete runs. So it binds
to the loopback address only; another address is refused unless ``--allow-remote`` is given,
and then a warning says so.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from nas_mnist.cli.arguments import EXIT_FAILURE, EXIT_OK, UsageError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Addresses that only this machine can reach."""

DEFAULT_PORT = 5000
STARTUP_SECONDS = 180.0
"""How long to wait for the MLflow server to answer (it takes ~20 s on a busy 2-core machine)."""
STOP_SECONDS = 10.0
"""How long the server may take to stop after SIGTERM before it is killed."""

REMOTE_WARNING = (
    "warning: the MLflow UI has no login; anyone who can reach {host}:{port} can read, change "
    "and delete every run of {uri}. Prefer an SSH tunnel to a UI bound to 127.0.0.1."
)


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store that search wrote to (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default sqlite:///mlflow.db, as for search)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"port to listen on (default: {DEFAULT_PORT})",
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
        help="allow a --host that other machines can reach (the UI has no login: a warning "
        "is printed)",
    )
    parser.add_argument(
        "--study-name",
        metavar="NAME",
        help="print the address of this study's experiment (default: list every experiment)",
    )


def run(args: argparse.Namespace) -> int:
    from nas_mnist.tracking.tracker import Tracker, resolve_tracking_uri

    # 1. Validate every input before anything is started (or created: MLflow's client creates
    # a missing SQLite store, so the store is checked before a client is made).
    remote = _check_host(args.host, args.allow_remote)
    uri = resolve_tracking_uri(args.tracking_uri)
    _check_store(uri)
    tracker = Tracker(uri)
    tracker.check()  # TrackingError: exit 2
    experiments = _experiments(tracker.client, args.study_name, uri)
    _check_port_free(args.host, args.port)
    if remote:
        print(REMOTE_WARNING.format(host=args.host, port=args.port, uri=uri), file=sys.stderr)

    # 2. The server, in the foreground until Ctrl-C.
    base = f"http://{_url_host(args.host)}:{args.port}"
    child = _start_server(uri, args.host, args.port)
    try:
        if not _wait_until_up(child, _probe_url(args.host, args.port), STARTUP_SECONDS):
            status = child.poll()
            why = (
                f"exited with status {status} before answering"
                if status is not None
                else f"did not answer within {STARTUP_SECONDS:.0f} s"
            )
            print(
                f"nas-mnist ui: the MLflow server on {base} {why}; see its log above",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        print(f"MLflow UI for {uri} at {base} (Ctrl-C to stop)", flush=True)
        for experiment in experiments:
            print(
                f"  experiment {experiment.name!r}: {base}/#/experiments/"
                f"{experiment.experiment_id}/runs",
                flush=True,
            )
        status = child.wait()
        print(f"nas-mnist ui: the MLflow server exited with status {status}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI raises it as KeyboardInterrupt)
        print("nas-mnist ui: stopping the MLflow server", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        _stop(child)


def _check_host(host: str, allow_remote: bool) -> bool:
    """True if ``host`` is reachable from other machines (allowed only with --allow-remote)."""
    if host in LOCAL_HOSTS:
        return False
    if not allow_remote:
        raise UsageError(
            f"--host {host} would let other machines reach the MLflow UI, which has no login; "
            "refused. Use the default 127.0.0.1 (with an SSH tunnel for remote access), or "
            "pass --allow-remote to bind it anyway"
        )
    return True


def _check_store(uri: str) -> None:
    """Refuse URIs that are not a local store this command can serve."""
    from sqlalchemy.engine import make_url

    scheme = uri.split(":", 1)[0].lower() if ":" in uri else "file"
    if scheme in ("http", "https", "databricks"):
        raise UsageError(
            f"the tracking URI {uri} is already served by a tracking server; open it in a "
            "browser instead, or pass --tracking-uri with the store that search wrote to "
            "(e.g. sqlite:///mlflow.db)"
        )
    if scheme.startswith("sqlite"):
        database = make_url(uri).database or ""
        if not database or database == ":memory:" or not os.path.isfile(database):
            raise UsageError(
                f"there is no MLflow store at {uri} (no file {database or '(none)'}); run "
                "nas-mnist search first, or pass the --tracking-uri that search used"
            )


def _experiments(client: object, study_name: str | None, uri: str) -> list:
    experiments = client.search_experiments()  # type: ignore[attr-defined]
    if study_name is None:
        return sorted(
            experiments,
            key=lambda e: int(e.experiment_id) if e.experiment_id.isdigit() else e.experiment_id,
        )
    chosen = [e for e in experiments if e.name == study_name]
    if not chosen:
        names = ", ".join(repr(e.name) for e in experiments) or "none"
        raise UsageError(
            f"no experiment named {study_name!r} in {uri} (a search logs study NAME to "
            f"experiment NAME); experiments there: {names}"
        )
    return chosen


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
            ) from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # allowed only with --allow-remote: show a reachable name
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _probe_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", "localhost"):  # wildcard only with --allow-remote
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/health"


def _start_server(uri: str, host: str, port: int) -> subprocess.Popen:
    """``mlflow server`` on ``host:port`` in its own process group (stopped as a whole)."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--host", host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    # MLflow's background job runner (GenAI jobs) adds six processes that browsing never uses.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen(command, env=env, start_new_session=True)


def _wait_until_up(child: subprocess.Popen, url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn is its child), SIGKILL if it lingers."""
    if child.poll() is not None:
        return
    kill = os.killpg if hasattr(os, "killpg") else None
    try:
        if kill:
            kill(child.pid, signal.SIGTERM)
        else:
            child.terminate()
        child.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        if kill:
            kill(child.pid, signal.SIGKILL)
        else:
            child.kill()
        child.wait()
    except ProcessLookupError:
        pass
    if kill:  # grandchildren that outlived the server
        try:
            kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
