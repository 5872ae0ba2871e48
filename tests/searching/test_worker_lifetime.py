"""A ``--jobs`` worker's own process rules: it stops when its supervisor dies (``tie_to_parent``)
and a second stop signal during its clean-up is ignored without Python's "ignored due to race
condition" traceback (``_interrupt_once``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from support import REPO_ROOT

from nas_mnist.searching import workers

# A "supervisor" that starts a "worker" (tied to it, as worker_main ties itself) and prints the
# worker's PID; the worker prints "stopped" when its KeyboardInterrupt (SIGTERM) arrives.
SUPERVISOR = textwrap.dedent("""
    import os, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", '''
    import os, sys, time
    from nas_mnist.searching.workers import _interrupt_once, tie_to_parent
    _interrupt_once()
    tie_to_parent(int(sys.argv[1]))
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        sys.exit(130)
    ''', str(os.getpid())])
    print(worker.pid, flush=True)
    time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_stops_when_its_supervisor_is_sigkilled():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR], env=env,
                                  stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(supervisor.stdout.readline())
        assert supervisor.stdout.readline().strip() == "ready"
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker_pid)
        assert supervisor.stdout.readline().strip() == "stopped"  # its clean-up ran
    finally:
        supervisor.kill()
        if _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


@pytest.fixture
def handlers_restored():
    """The stop signals' handlers and ``sys.unraisablehook`` as they were, after the test
    (``workers._interrupt_once`` replaces them)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    hook = sys.unraisablehook
    yield
    sys.unraisablehook = hook
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_a_second_stop_signal_during_the_clean_up_finds_a_python_handler(handlers_restored):
    # Python reports "OSError: Signal 15 ignored due to race condition" (with a traceback) when a
    # signal already pending finds its handler set to SIG_IGN or SIG_DFL: the worker's later
    # handler must be a Python function that does nothing.
    workers._interrupt_once()
    with pytest.raises(KeyboardInterrupt):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the terminal's Ctrl-C
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        later = signal.getsignal(signum)
        assert callable(later)  # not SIG_IGN / SIG_DFL
        assert later(signum, None) is None  # the supervisor's SIGTERM: ignored
    signal.raise_signal(signal.SIGTERM)  # a real one: nothing happens


def test_an_interrupt_swallowed_by_a_finalizer_is_raised_again(handlers_restored):
    # JAX's garbage-collection callback ran when SIGTERM came: Python swallowed the
    # KeyboardInterrupt ("Exception ignored in", a traceback) and the worker trained on.
    class Finalized:
        def __del__(self):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)

    workers._interrupt_once()
    with pytest.raises(KeyboardInterrupt):
        Finalized()  # dropped at once: its __del__ runs
        for _ in range(100):
            time.sleep(0.01)


def test_a_stop_signal_during_the_resend_hook_raises_nothing_there_and_the_interrupt_follows(
        monkeypatch, handlers_restored):
    # The parent-death SIGTERM and the watcher's came one after the other: the second reached
    # the re-armed handler while the hook started its timer, and its KeyboardInterrupt was
    # printed as "Exception ignored in sys.unraisablehook" (a traceback) instead of stopping.
    class Unraisable:
        exc_value = KeyboardInterrupt()

    real_timer = threading.Timer

    def timer_hit_by_a_signal(*args):
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # raises nothing in the hook
        return real_timer(*args)

    workers._interrupt_once()
    monkeypatch.setattr(workers.threading, "Timer", timer_hit_by_a_signal)
    sys.unraisablehook(Unraisable())  # returns: nothing raised inside the hook
    monkeypatch.setattr(workers.threading, "Timer", real_timer)
    with pytest.raises(KeyboardInterrupt):  # the resent SIGTERM, outside the hook
        for _ in range(100):
            time.sleep(0.01)
