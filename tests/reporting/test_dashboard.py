"""Tests of ``nas_mnist.dashboard`` / ``nas-mnist dashboard``: optuna-dashboard on 127.0.0.1 only.

A study with two trials is written with Optuna directly (no training); the server is started in
a thread (library), in the foreground (``serve_dashboard``, stopped by a signal) and in a
subprocess (CLI, stopped with Ctrl-C).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from nas_mnist.cli.main import main

SERVER_START_SECONDS = 120


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def storage(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="demo", storage=url, direction="maximize")
    study.set_metric_names(["val_accuracy"])
    for value in (0.9, 0.95):
        trial = study.ask()
        trial.report(value - 0.1, 0)
        study.tell(trial, value)
    return url


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def test_library_serves_the_study_on_127_0_0_1_only(storage):
    import nas_mnist

    server = nas_mnist.dashboard(storage, port=0)
    thread = server.start_in_thread()
    try:
        port = server.port
        status, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<html" in body.lower()
        status, body = _get(f"http://127.0.0.1:{port}/api/studies")
        assert status == 200
        studies = json.loads(body)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["demo"]
        study_id = studies[0]["study_id"]
        status, body = _get(f"http://127.0.0.1:{port}/api/studies/{study_id}")
        assert status == 200 and len(json.loads(body)["trials"]) == 2
        assert not answers("127.0.0.2", port)  # all of 127/8 is this machine; bound to .1 only
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not answers("127.0.0.1", port)


def test_bad_storage_exits_2_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert main(["dashboard", "--storage", f"sqlite:///{missing}", "--port",
                 str(free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not missing.exists()
    assert main(["dashboard", "--storage", "redis://localhost/0"]) == 2
    assert "unknown storage scheme" in capsys.readouterr().err
    assert main(["dashboard", "--storage", "not a url"]) == 2
    assert capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # A SQLite file that is not an Optuna storage (e.g. the MLflow store) is left untouched.
    import sqlite3

    other = tmp_path / "m.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE runs (id TEXT)")
    before = other.read_bytes()
    assert main(["dashboard", "--storage", f"sqlite:///{other}"]) == 2
    assert "holds no Optuna study" in capsys.readouterr().err
    assert other.read_bytes() == before


def test_another_host_is_refused_without_allow_remote(storage, capsys):
    for host in ("0.0.0.0", "192.168.1.10"):
        assert main(["dashboard", "--storage", storage, "--host", host]) == 2
        err = capsys.readouterr().err
        assert "refused" in err and "--allow-remote" in err and "optuna-dashboard" in err


def test_busy_port_exits_2(storage, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--storage", storage, "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_cli_answers_200_until_ctrl_c(storage, tmp_path):
    port = free_port()
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nas_mnist", "dashboard", "--storage", storage, "--port",
             str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while "Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.3)
        assert f"http://127.0.0.1:{port}/dashboard/" in log.read_text()
        assert _get(f"http://127.0.0.1:{port}/dashboard/")[0] == 200
        assert not answers("127.0.0.2", port)
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
    text = log.read_text()
    assert status == 130, text  # 128 + SIGINT, the CLI's convention
    assert "Traceback" not in text and text.endswith("nas-mnist dashboard: interrupted\n"), text
    assert not answers("127.0.0.1", port)


@pytest.fixture
def journal(tmp_path) -> str:
    """``journal:///<tmp>/j.log`` (what ``search --jobs N`` writes) holding study 'demo' with
    two complete trials."""
    from nas_mnist.study.storage import make_storage

    url = f"journal:///{tmp_path / 'j.log'}"
    study = optuna.create_study(study_name="demo", storage=make_storage(url),
                                direction="maximize")
    for value in (0.9, 0.95):
        trial = study.ask()
        trial.suggest_int("depth", 1, 7)
        study.tell(trial, value)
    return url


@pytest.mark.parametrize("kind", ["missing journal", "unreachable database"])
def test_library_bad_storage_raises_one_line_input_error(kind, tmp_path):
    import nas_mnist
    from nas_mnist.errors import InputError

    if kind == "missing journal":
        url, expected = f"journal:///{tmp_path / 'missing.log'}", "does not exist"
    else:  # port 1 refuses at once; without psycopg the URL check says what to install
        url, expected = "postgresql+psycopg://u:s3cret@127.0.0.1:1/db", "u:***@127.0.0.1:1/db"
    with pytest.raises(InputError) as raised:
        nas_mnist.dashboard(storage=url, port=0)
    message = str(raised.value)
    assert len(message.splitlines()) == 1, message
    assert expected in message and "s3cret" not in message
    assert list(tmp_path.iterdir()) == []  # no journal, no lock file


def test_library_serves_a_journal_storage(journal):
    import nas_mnist

    server = nas_mnist.dashboard(journal, port=0)
    thread = server.start_in_thread()
    try:
        status, body = _get(f"http://127.0.0.1:{server.port}/api/studies")
        assert status == 200
        assert [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["demo"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert server.storage == journal


def test_a_journal_storage_reaches_the_server_through_the_api(journal, monkeypatch):
    import optuna_dashboard
    from optuna.storages import JournalStorage

    from nas_mnist.reporting.dashboard import DashboardServer, serve_dashboard

    handed, served, shown = [], [], []
    real_wsgi = optuna_dashboard.wsgi

    def recording_wsgi(storage, *args, **kwargs):
        handed.append(storage)
        return real_wsgi(storage, *args, **kwargs)

    def fake_serve_forever(self):
        served.append((self.host, self.port))
        raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(optuna_dashboard, "wsgi", recording_wsgi)
    monkeypatch.setattr(DashboardServer, "serve_forever", fake_serve_forever)
    port = free_port()
    with pytest.raises(KeyboardInterrupt):
        serve_dashboard(journal, port=port, before_serving=shown.append)
    [storage] = handed
    assert isinstance(storage, JournalStorage)
    assert [s.study_name for s in storage.get_all_studies()] == ["demo"]
    assert served == [("127.0.0.1", port)]
    assert [(s.storage, s.port) for s in shown] == [(journal, port)]
    assert not answers("127.0.0.1", port)  # closed on the way out


def test_a_sigterm_during_a_response_ends_the_serve_loop(journal, monkeypatch):
    """The defect of ``optuna_dashboard.run_server``: it answers in the main thread, so a signal
    that arrives while a response is written raised inside ``wsgiref``'s handler, which printed
    a traceback and went on serving. Here SIGTERM arrives in the middle of a request."""
    import threading

    import optuna_dashboard

    from nas_mnist.processes.signals import Terminated, handle_signals
    from nas_mnist.reporting.dashboard import serve_dashboard

    real_wsgi = optuna_dashboard.wsgi
    request_threads, responses = [], []

    def signalling_wsgi(storage, *args, **kwargs):
        app = real_wsgi(storage, *args, **kwargs)

        def signalling_app(environ, start_response):
            request_threads.append(threading.current_thread())
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would, mid-request
            time.sleep(0.5)  # the main thread handles it while this response is written
            return app(environ, start_response)

        return signalling_app

    def request(server) -> None:
        try:
            responses.append(_get(f"http://127.0.0.1:{server.port}/api/studies")[0])
        except OSError as exc:  # the signal came while the main thread handed the connection
            responses.append(exc)  # over: socketserver closes it; stopping is what counts here

    monkeypatch.setattr(optuna_dashboard, "wsgi", signalling_wsgi)
    bound = []

    def start_client(server) -> None:
        bound.append(server)
        threading.Thread(target=request, args=(server,), daemon=True).start()

    with handle_signals(), pytest.raises(Terminated):
        serve_dashboard(journal, port=0, before_serving=start_client)
    [server] = bound
    assert request_threads and threading.main_thread() not in request_threads
    assert not answers("127.0.0.1", server.port)  # the listening socket is closed
    deadline = time.monotonic() + 30
    while not responses and time.monotonic() < deadline:  # the client thread ends
        time.sleep(0.05)
    assert len(responses) == 1
