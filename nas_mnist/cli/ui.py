"""``nas-mnist ui``: the MLflow UI on the tracking store that ``search`` wrote to, on localhost.

Runs ``mlflow server`` (same Python, ``sys.executable -m mlflow``) as a child process bound to
127.0.0.1, waits until it answers, prints the address of the study's experiment and stays in
the foreground until Ctrl-C (or SIGTERM), then stops the child and everything it started.

MLflow 3.17's UI opens an experiment in its GenAI view (traces, judges, agent versions) unless
the address asks for the classic one: it reads ``workflowType=machine_learning`` from the query
of the route after ``#`` (React Router's hash history; a query before ``#`` is ignored), not
the ``mlflow.experimentKind`` tag. So every address printed here carries it (the experiments
list, and ``experiment_url``).

The MLflow UI has no login: anyone who can reach it can read, edit and delete runs. So it binds
to the loopback address only; another address is refused unless ``--allow-remote`` is given,
and then a warning says so.

The store's URI is shown without its password (``redact_uri``) and handed to ``mlflow server``
in its environment (``MLFLOW_BACKEND_STORE_URI``), never on its command line, which every user
of the machine can read (``ps``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from nas_mnist.cli.arguments import EXIT_FAILURE, EXIT_OK, UsageError
from nas_mnist.cli.serving import (
    add_host_arguments,
    check_host,
    check_port_free,
    probe_url,
    url_host,
    wait_until_up,
)

DEFAULT_PORT = 5000
STARTUP_SECONDS = 180.0
"""How long to wait for the MLflow server to answer (it takes ~20 s on a busy 2-core machine)."""
STOP_SECONDS = 10.0
"""How long the server may take to stop after SIGTERM before it is killed."""

ML_VIEW_QUERY = "workflowType=machine_learning"
"""The MLflow UI's query parameter for the classic ML view (runs, models, model registry)."""

REMOTE_WARNING = (
    "warning: the MLflow UI has no login; anyone who can reach {host}:{port} can read, change "
    "and delete every run of {uri}. Prefer an SSH tunnel to a UI bound to 127.0.0.1."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store that search wrote to (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default sqlite:///mlflow.db, as for search)",
    )
    add_host_arguments(parser, DEFAULT_PORT, "the MLflow UI")
    parser.add_argument(
        "--study-name",
        metavar="NAME",
        help="print the address of this study's experiment (default: list every experiment)",
    )


def run(args: argparse.Namespace) -> int:
    from nas_mnist.tracking.redaction import redact_uri
    from nas_mnist.tracking.tracker import Tracker, resolve_tracking_uri

    # 1. Validate every input before anything is started (or created: MLflow's client creates
    # a missing SQLite store, so the store is checked before a client is made).
    remote = check_host(args.host, args.allow_remote, "the MLflow UI")
    uri = resolve_tracking_uri(args.tracking_uri)
    _check_store(uri)
    tracker = Tracker(uri)
    tracker.check()  # TrackingError: exit 2
    shown = redact_uri(uri)  # the URI to print: no password
    experiments = _experiments(tracker.client, args.study_name, shown)
    check_port_free(args.host, args.port)
    if remote:
        print(REMOTE_WARNING.format(host=args.host, port=args.port, uri=shown), file=sys.stderr)

    # 2. The server, in the foreground until Ctrl-C.
    base = f"http://{url_host(args.host)}:{args.port}"
    child = _start_server(uri, args.host, args.port)
    try:
        url = probe_url(args.host, args.port, "/health")
        if not wait_until_up(url, STARTUP_SECONDS, alive=lambda: child.poll() is None):
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
        print(f"MLflow UI for {shown} at {base}/#/experiments?{ML_VIEW_QUERY} (Ctrl-C to stop)",
              flush=True)
        for experiment in experiments:
            print(f"  experiment {experiment.name!r}: "
                  f"{experiment_url(base, experiment.experiment_id)}", flush=True)
        status = child.wait()
        print(f"nas-mnist ui: the MLflow server exited with status {status}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI raises it as KeyboardInterrupt)
        print("nas-mnist ui: stopping the MLflow server", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        _stop(child)


def experiment_url(base: str, experiment_id: str) -> str:
    """The MLflow UI's address of an experiment's runs table, in the classic ML view.

    Args:
        base: the server's address, ``http://HOST:PORT`` (no trailing slash).
        experiment_id: the MLflow experiment id.

    Returns:
        ``BASE/#/experiments/ID/runs?workflowType=machine_learning``: the query goes after the
        hash route, where MLflow 3.17's UI reads it (``ML_VIEW_QUERY``).
    """
    return f"{base}/#/experiments/{experiment_id}/runs?{ML_VIEW_QUERY}"


def _check_store(uri: str) -> None:
    """Refuse URIs that are not a local store this command can serve."""
    from sqlalchemy.engine import make_url

    from nas_mnist.tracking.redaction import redact_uri

    scheme = uri.split(":", 1)[0].lower() if ":" in uri else "file"
    if scheme in ("http", "https", "databricks"):
        raise UsageError(
            f"the tracking URI {redact_uri(uri)} is already served by a tracking server; open "
            "it in a browser instead, or pass --tracking-uri with the store that search wrote to "
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


def _start_server(uri: str, host: str, port: int) -> subprocess.Popen:
    """``mlflow server`` on ``host:port`` in its own process group (stopped as a whole), given
    the store ``uri`` in its environment (``MLFLOW_BACKEND_STORE_URI``, MLflow's variable for
    ``--backend-store-uri``): a password on the command line would show in ``ps``."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    # MLflow's background job runner (GenAI jobs) adds six processes that browsing never uses.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_BACKEND_STORE_URI": uri}
    return subprocess.Popen(command, env=env, start_new_session=True)


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
