"""A wrong password or an unreachable database server: one line without the password, exit 2,
nothing created (issue 19, defect 12)."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy.engine import make_url

from nas_mnist.cli.main import main
from nas_mnist.database_servers import (
    ServerConnectionError,
    check_server_connects,
    engine_kwargs,
    server_kind,
)
from nas_mnist.study.storage import load_existing_study

POSTGRES = os.environ.get("NAS_MNIST_POSTGRES_URL")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.mark.parametrize(("url", "kind"), [
    ("postgresql://u:p@h/db", "postgresql"),
    ("postgresql+psycopg://u:p@h:5432/db", "postgresql"),
    ("mysql+pymysql://u@h/db", "mysql"),
    ("sqlite:///s.db", None),
    ("journal:///j.log", None),
    ("http://127.0.0.1:5000", None),
    ("mlruns", None),
])
def test_only_database_servers_are_checked(url, kind):
    assert server_kind(url) == kind
    assert ("connect_args" in engine_kwargs(url)) == (kind is not None)
    if kind is None:
        check_server_connects(url)  # nothing to connect to: no error, no file


def test_a_server_that_refuses_is_one_line_without_the_password():
    url = f"postgresql+psycopg://nas:s3cret@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(ServerConnectionError) as caught:
        check_server_connects(url, "storage")
    message = str(caught.value)
    assert "s3cret" not in message and "nas:***@127.0.0.1" in message
    assert "cannot connect to the storage" in message and "\n" not in message
    # Commands that read a study (report, export, retrain) say the same.
    with pytest.raises(ServerConnectionError, match="cannot connect to the storage"):
        load_existing_study(url, "demo")


@pytest.mark.skipif(not POSTGRES, reason="set NAS_MNIST_POSTGRES_URL (scripts/start_postgres.sh)")
@pytest.mark.parametrize("flag", ["--storage", "--tracking-uri"])
def test_a_wrong_postgresql_password_exits_2_in_one_line_creating_nothing(
        flag, tmp_path, monkeypatch, capsys, real_mnist_path):
    monkeypatch.chdir(tmp_path)
    wrong = _with_password(POSTGRES, "not-the-password")
    urls = {"--storage": "sqlite:///s.db", "--tracking-uri": "sqlite:///m.db", flag: wrong}
    status = main(["search", "--trials", "1", "--epochs", "1", "--max-train-samples", "500",
                   "--data", str(real_mnist_path), "--study-name", "pw", "--no-progress",
                   "--storage", urls["--storage"], "--tracking-uri", urls["--tracking-uri"]])
    err = capsys.readouterr().err
    assert status == 2
    assert "password authentication failed" in err and "not-the-password" not in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
