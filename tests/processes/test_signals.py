"""SIGINT/SIGTERM/SIGHUP handlers whatever the inherited disposition, and Optuna's failure log
without tracebacks for expected failures."""

from __future__ import annotations

import logging
import os
import signal
import time

import optuna
import pytest

from nas_mnist.cli.main import main
from nas_mnist.errors import TrialFailure
from nas_mnist.processes.signals import (
    Terminated,
    exit_status,
    handle_signals,
    interruption,
    quiet_expected_failures,
)


def wait_for_signal() -> None:
    """Give the interpreter bytecode boundaries at which to run the signal handler."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise AssertionError("no exception from the signal")


@pytest.fixture
def sigint_ignored():
    """SIGINT as a process started with '&' from a script inherits it: ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("signum", "exception"), [(signal.SIGINT, KeyboardInterrupt),
                                                   (signal.SIGTERM, Terminated),
                                                   (signal.SIGHUP, Terminated)])
def test_handlers_raise_even_when_sigint_was_inherited_ignored_and_are_restored(
        sigint_ignored, signum, exception):
    previous_term = signal.getsignal(signal.SIGTERM)
    previous_hup = signal.getsignal(signal.SIGHUP)
    with pytest.raises(exception) as raised:
        with handle_signals():
            os.kill(os.getpid(), signum)
            wait_for_signal()
    assert exit_status(raised.value) == 128 + signum  # 130, 143, 129
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is previous_term
    assert signal.getsignal(signal.SIGHUP) is previous_hup


def test_sighup_ends_a_command_as_sigterm_does_with_exit_status_129(monkeypatch, capsys):
    """Issue 19: closing the terminal (SIGHUP) killed a search at once, without clean-up: its
    trial and MLflow run stayed RUNNING until the next run recovered them. Now it raises
    ``Terminated`` as SIGTERM does (the objective closes the trial and re-queues it)."""
    import nas_mnist.cli.export as export

    def verify_until_hung_up(folder: str) -> int:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for_signal()
        return 0

    monkeypatch.setattr(export, "_verify", verify_until_hung_up)
    assert main(["export", "--verify", "some-folder"]) == 129
    assert capsys.readouterr().err.strip() == "nas-mnist export: terminated (SIGHUP)"
    assert isinstance(interruption(signal.SIGHUP), Terminated)
    assert exit_status(interruption(signal.SIGTERM)) == 143


def test_the_watchdog_ends_the_process_on_sighup_too(monkeypatch, capsys):
    import threading

    from nas_mnist.processes import signals

    exits: list[int] = []
    monkeypatch.setattr(signals.os, "_exit", exits.append)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, bytes([signal.SIGHUP]))  # what the wake-up fd receives
    try:
        signals._watchdog(read_fd, threading.Event(), grace_seconds=0.0)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert exits == [129]
    assert "the clean-up did not start or end within 0 s" in capsys.readouterr().err


def test_cli_interrupted_while_sigint_is_ignored_exits_130(sigint_ignored, monkeypatch, capsys):
    import nas_mnist.cli.export as export

    def verify_until_interrupted(folder: str) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        wait_for_signal()
        return 0

    monkeypatch.setattr(export, "_verify", verify_until_interrupted)
    assert main(["export", "--verify", "some-folder"]) == 130
    err = capsys.readouterr().err
    # Ctrl-C during export says so, without the search's trial message.
    assert err.strip() == "nas-mnist export: interrupted", err
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


class NanLossError(TrialFailure):
    """A trial failure with a recorded reason, like the training module's."""


def failing_trials_log(error: BaseException) -> list[logging.LogRecord]:
    """The records Optuna's optimize logger lets through for one trial failing with ``error``."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    optimize_logger = logging.getLogger("optuna.study._optimize")
    optimize_logger.addHandler(handler)

    def objective(trial: optuna.Trial) -> float:
        raise error

    try:
        with quiet_expected_failures():
            try:
                optuna.create_study().optimize(objective, n_trials=1, catch=(Exception,))
            except KeyboardInterrupt:
                pass
    finally:
        optimize_logger.removeHandler(handler)
    return [r for r in records if r.levelno >= logging.WARNING]


@pytest.mark.traceback_expected  # a real bug keeps its traceback, on purpose
def test_interrupted_trials_log_nothing_nan_trials_one_line_and_bugs_keep_their_traceback():
    assert failing_trials_log(KeyboardInterrupt()) == []
    nan = failing_trials_log(NanLossError("training loss is nan after epoch 1"))
    assert len(nan) == 1 and nan[0].exc_info is None
    assert "NanLossError('training loss is nan after epoch 1')" in nan[0].getMessage()
    bug = failing_trials_log(ZeroDivisionError("a bug"))
    assert len(bug) == 2 and bug[0].exc_info is not None  # a real bug keeps its traceback


def test_watchdog_exits_within_the_grace_period_while_the_main_thread_is_stuck_in_c_code():
    """``hashlib.pbkdf2_hmac`` with 10**9 iterations runs in C for minutes without the GIL and
    without returning to the interpreter, as TensorFlow's long calls do: Python's handler cannot
    run, the watchdog ends the process."""
    import subprocess
    import sys

    # A signal handled before the C call starts (even while 'ready' is being printed) is caught,
    # and the loop enters the C call again.
    code = ("import hashlib\nfrom nas_mnist.processes.signals import handle_signals\n"
            "with handle_signals(grace_seconds=1):\n"
            "    while True:\n"
            "        try:\n"
            "            print('ready', flush=True)\n"
            "            hashlib.pbkdf2_hmac('sha256', b'password', b'salt', 10**9)\n"
            "        except KeyboardInterrupt:\n"
            "            pass\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert "the clean-up did not start or end within 1 s" in err


def test_watchdog_leaves_a_clean_up_that_ends_in_time_alone(monkeypatch):
    monkeypatch.delenv("NAS_MNIST_INTERRUPT_GRACE_SECONDS", raising=False)
    with pytest.raises(KeyboardInterrupt):
        with handle_signals(grace_seconds=2):
            os.kill(os.getpid(), signal.SIGINT)
            wait_for_signal()
    time.sleep(2.5)  # past the grace period: this process is still alive
    assert signal.set_wakeup_fd(-1) == -1  # the wake-up fd was put back


def test_after_sighup_the_terminal_is_silenced_and_files_are_left_alone(tmp_path):
    """A write to a terminal that hung up fails with EIO; the clean-up writes to /dev/null."""
    import pty

    from nas_mnist.processes.signals import silence_terminal

    primary, terminal = pty.openpty()
    log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    try:
        silence_terminal((terminal, log))
        assert not os.isatty(terminal)
        assert os.fstat(terminal).st_rdev == os.stat(os.devnull).st_rdev
        os.write(log, b"kept")
        assert (tmp_path / "log").read_bytes() == b"kept"
    finally:
        for fd in (primary, terminal, log):
            os.close(fd)
