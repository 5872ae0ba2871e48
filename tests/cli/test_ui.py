"""Tests of ``nas-mnist ui``: input checks, and the MLflow UI of a real small search, bound to
127.0.0.1 only, opened in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from support import REPO_ROOT, SMALL_SPACE

from nas_mnist.cli.main import main

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run")
SERVER_START_SECONDS = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        return s.connect_ex((host, port)) == 0


def other_addresses() -> set[str]:
    """Addresses of this machine other than 127.0.0.1: another loopback address, the host
    name's address and the address of the default route's interface."""
    found = {"127.0.0.2"}  # all of 127/8 reaches this machine; a 127.0.0.1-only bind refuses it
    try:
        found.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1; a UDP connect sends nothing
            found.add(s.getsockname()[0])
    except OSError:
        pass
    return found - {"127.0.0.1", "0.0.0.0"}


# ---------------------------------------------------------------------------------------------
# fast: bad input starts nothing
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def small_store(tmp_path, monkeypatch):
    """An MLflow store with one experiment 'demo' (no training); no server may start."""
    from mlflow import MlflowClient

    import nas_mnist.cli.ui

    def must_not_start(*args, **kwargs):
        raise AssertionError("bad input must not start the MLflow server")

    monkeypatch.setattr(nas_mnist.cli.ui, "_start_server", must_not_start)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/m.db"
    MlflowClient(uri).create_experiment("demo")
    return uri


def test_another_host_is_refused_without_allow_remote(small_store, capsys):
    port = free_port()
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        assert main(["ui", "--tracking-uri", small_store, "--host", host, "--port",
                     str(port)]) == 2
        err = capsys.readouterr().err
        assert "refused" in err and "--allow-remote" in err and "no login" in err
    assert not answers("127.0.0.1", port)


def test_allow_remote_binds_another_host_with_a_warning(small_store, monkeypatch, capsys):
    import nas_mnist.cli.ui

    started = []

    class ExitedServer:
        pid = -1

        def poll(self):
            return 1

    def fake_start(uri, host, port):
        started.append((uri, host, port))
        return ExitedServer()

    monkeypatch.setattr(nas_mnist.cli.ui, "_start_server", fake_start)
    port = free_port()
    assert main(["ui", "--tracking-uri", small_store, "--host", "0.0.0.0", "--allow-remote",
                 "--port", str(port)]) == 1  # the fake server "exited" at once
    assert started == [(small_store, "0.0.0.0", port)]
    err = capsys.readouterr().err
    assert "warning: the MLflow UI has no login" in err


def test_missing_store_unknown_study_and_busy_port_exit_2(small_store, tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert main(["ui", "--tracking-uri", f"sqlite:///{missing}", "--port", str(free_port())]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert not missing.exists()  # not created by the check
    assert main(["ui", "--tracking-uri", "http://127.0.0.1:5000"]) == 2
    assert "already served" in capsys.readouterr().err
    assert main(["ui", "--tracking-uri", small_store, "--study-name", "other"]) == 2
    err = capsys.readouterr().err
    assert "no experiment named 'other'" in err and "'demo'" in err.split("experiments there")[1]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--tracking-uri", small_store, "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["ui", "--port", "70000"]) == 2


def test_printed_urls_open_the_classic_ml_view(small_store, monkeypatch, capsys):
    """The experiments list and the experiment's runs table, each with workflowType after the
    '#' route (MLflow 3.17's UI reads the query of its hash route; it opens GenAI without it)."""
    from mlflow import MlflowClient

    import nas_mnist.cli.ui

    class RunningServer:  # answers at once; Ctrl-C arrives while the CLI waits on it
        pid = -1
        stopped = False

        def poll(self):
            return 0 if self.stopped else None

        def wait(self, timeout=None):
            self.stopped = True
            raise KeyboardInterrupt

    monkeypatch.setattr(nas_mnist.cli.ui, "_start_server", lambda *a: RunningServer())
    monkeypatch.setattr(nas_mnist.cli.ui, "wait_until_up", lambda *a, **k: True)
    experiment_id = MlflowClient(small_store).get_experiment_by_name("demo").experiment_id
    port = free_port()
    assert main(["ui", "--tracking-uri", small_store, "--port", str(port),
                 "--study-name", "demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    base = f"http://127.0.0.1:{port}"
    assert lines == [
        f"MLflow UI for {small_store} at {base}/#/experiments?workflowType=machine_learning "
        "(Ctrl-C to stop)",
        f"  experiment 'demo': {base}/#/experiments/{experiment_id}/runs"
        "?workflowType=machine_learning",
    ]


# ---------------------------------------------------------------------------------------------
# slow: a real search and a real server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """A search whose study holds 2 trials (with seed 0 the first is an impossible architecture,
    not counted, so ``--trials 1``), then ``nas-mnist ui --port P`` as a subprocess; stopped at
    the end."""
    data = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not data.exists():
        pytest.skip(f"real MNIST not found at {data}; set NAS_MNIST_DATA to run this test")
    root = tmp_path_factory.mktemp("ui")
    tracking = f"sqlite:///{root}/m.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        (root / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
        assert main(["search", "--trials", "1", "--epochs", "1", "--max-train-samples", "500",
                     "--data", str(data), "--storage", f"sqlite:///{root}/s.db",
                     "--study-name", "demo", "--tracking-uri", tracking, "--space", "small.yaml",
                     "--baselines", "none", "--no-progress"]) == 0
    port = free_port()
    log = root / "ui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nas_mnist", "ui", "--tracking-uri", tracking, "--port",
             str(port), "--study-name", "demo"],
            cwd=root, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        url = None
        while time.monotonic() < deadline and process.poll() is None and url is None:
            for line in log.read_text().splitlines():
                if "experiment 'demo':" in line:
                    url = line.split(": ", 1)[1].strip()
            time.sleep(0.5)
        assert url is not None, f"no URL printed (exit {process.poll()}):\n{log.read_text()}"
        yield {"root": root, "port": port, "url": url, "tracking": tracking,
               "process": process, "log": log}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_ui_serves_the_study_on_127_0_0_1_only(ui_server):
    from mlflow import MlflowClient

    port = ui_server["port"]
    experiment = MlflowClient(ui_server["tracking"]).get_experiment_by_name("demo")
    assert ui_server["url"] == (f"http://127.0.0.1:{port}/#/experiments/"
                                f"{experiment.experiment_id}/runs?workflowType=machine_learning")
    assert answers("127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read().lower()
    others = other_addresses()
    assert others
    for address in others:
        assert not answers(address, port), f"the UI answers on {address}:{port}"
    assert not answers("::1", port)

    # The same server's REST API: the parent run and its two nested trial runs.
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment.experiment_id]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = json.loads(response.read())["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [r for r, t in zip(runs, tags) if t.get("nas_mnist.role") == "study"]
    children = [(r, t) for r, t in zip(runs, tags) if t.get("nas_mnist.role") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0]["info"]["run_name"] == "demo"
    parent_id = parents[0]["info"]["run_id"]
    assert all(t["mlflow.parentRunId"] == parent_id for _, t in children)
    names = sorted((r["info"]["run_name"], t["state"]) for r, t in children)
    assert [name.split(" (")[0] for name, _ in names] == ["trial-0000", "trial-0001"]
    # A trial that did not complete says so in its run name ("trial-0000 (pruned)").
    assert all(name.endswith(f" ({state})") is (state != "complete") for name, state in names)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (CI installs Debian's "
                    "'chromium' package in .ci/run; apt-get install chromium to run this here)")
def test_ui_experiment_page_in_headless_chromium(ui_server, tmp_path):
    url = ui_server["url"]
    common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
              "--virtual-time-budget=15000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                         timeout=180).stdout
    # The runs table of the study's experiment, rendered by the React app: the study's parent
    # run (its nested trial runs are collapsed under it) and the count of all three runs.
    text = re.sub(r"<[^>]+>", "", dom)  # "<strong>3</strong> matching runs" -> "3 matching runs"
    # In the classic ML view (the URL's workflowType): the sidebar has Models and the Model
    # registry; the GenAI view has "Training runs", Judges and Agent versions instead.
    assert "Model registry" in text and "Models" in text
    assert "Training runs" not in text and "Judges" not in text and "Agent versions" not in text
    assert ">demo<" in dom
    assert "3 matching runs" in text
    shot = tmp_path / "mlflow_ui.png"
    subprocess.run([*common, "--window-size=1400,900", f"--screenshot={shot}", url],
                   capture_output=True, timeout=180, check=True)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1400, 900)
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 5.0  # a rendered page, not a blank one
    shutil.copy(shot, ui_server["root"] / "mlflow_ui.png")  # kept with the test's files


@pytest.mark.slow
def test_ui_stops_its_server_on_sigterm(ui_server):
    process, port = ui_server["process"], ui_server["port"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while answers("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not answers("127.0.0.1", port), "the MLflow server outlived nas-mnist ui"
