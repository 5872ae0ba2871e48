"""Tests of ``nas-mnist dashboard`` on journal storages (what ``search --jobs N`` writes): a bad
one is one line and exit 2, a good one is served (optuna-dashboard's WSGI application on the
threaded ``DashboardServer``) until a signal: exit 130 (Ctrl-C) or 143 (SIGTERM), no traceback.
Studies are written with Optuna directly (no training)."""

from __future__ import annotations

import json
import os
import signal
import socket
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def journal(tmp_path) -> str:
    """``journal:///<tmp>/j.log`` holding study 'demo' with two complete trials."""
    from nas_mnist.study.storage import make_storage

    url = f"journal:///{tmp_path / 'j.log'}"
    study = optuna.create_study(study_name="demo", storage=make_storage(url),
                                direction="maximize")
    for value in (0.9, 0.95):
        trial = study.ask()
        trial.suggest_int("depth", 1, 7)
        study.tell(trial, value)
    return url


def test_missing_journal_file_exits_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "j.log"
    assert main(["dashboard", "--storage", f"journal:///{missing}", "--port",
                 str(free_port())]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nas-mnist dashboard: error: ")
    assert "does not exist" in lines[0] and str(missing) in lines[0]
    assert "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing created: no log, no lock file


def test_a_file_that_is_not_a_journal_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "j.log"
    # A broken record before a good one: Optuna's replay fails on it (a JSON error).
    bad.write_text('{"op_code": 0, "worker_id": "x", "study_name": \n{"op_code": 0}\n')
    before = bad.read_bytes()
    assert main(["dashboard", "--storage", f"journal:///{bad}", "--port",
                 str(free_port())]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("nas-mnist dashboard: error: "), err
    assert f"journal:///{bad}" in err and "Traceback" not in err
    assert bad.read_bytes() == before


def test_an_unreachable_database_is_one_line_without_its_password(capsys):
    # Port 1 refuses at once. With the driver installed the connection fails; without it the
    # URL check says what to install: either way one line, and the password is not shown.
    assert main(["dashboard", "--storage", "postgresql://user:s3cret@127.0.0.1:1/db",
                 "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("nas-mnist dashboard: error: "), err
    assert "postgresql://user:***@127.0.0.1:1/db" in err and "s3cret" not in err


def test_the_journal_storage_object_is_served_until_ctrl_c(journal, monkeypatch, capsys):
    import optuna_dashboard
    from optuna.storages import JournalStorage

    from nas_mnist.reporting.dashboard import DashboardServer

    handed, served = [], []
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
    assert main(["dashboard", "--storage", journal, "--port", str(port)]) == 130
    [storage] = handed
    assert isinstance(storage, JournalStorage)
    assert [s.study_name for s in storage.get_all_studies()] == ["demo"]
    assert served == [("127.0.0.1", port)]
    captured = capsys.readouterr()
    # The address line comes once the socket is bound, before serving starts.
    assert captured.out == (f"optuna-dashboard for {journal} at http://127.0.0.1:{port}"
                            "/dashboard/ (Ctrl-C to stop)\n")
    assert captured.err == "nas-mnist dashboard: interrupted\n"
    assert not answers("127.0.0.1", port)  # the listening socket is closed


def test_cli_serves_a_journal_study_until_sigterm(journal, tmp_path):
    port = free_port()
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nas_mnist", "dashboard", "--storage", journal, "--port",
             str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while "Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.3)
        assert f"at http://127.0.0.1:{port}/dashboard/ (Ctrl-C to stop)" in log.read_text()
        # The line is printed once the server listens: it answers at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                    timeout=30) as response:
            assert response.status == 200
            studies = json.loads(response.read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["demo"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/"
                                    f"{studies[0]['study_id']}", timeout=30) as response:
            assert len(json.loads(response.read())["trials"]) == 2
        assert not answers("127.0.0.2", port)  # bound to 127.0.0.1 only
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
    text = log.read_text()
    assert status == 143, text  # 128 + SIGTERM, the CLI's convention
    assert "Traceback" not in text
    assert text.endswith("nas-mnist dashboard: terminated (SIGTERM)\n"), text
    assert not answers("127.0.0.1", port)
