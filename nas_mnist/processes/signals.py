"""Signals and Optuna's failure log during a search.

- ``handle_signals``: SIGINT raises ``KeyboardInterrupt``, SIGTERM and SIGHUP (the terminal
  closed) raise ``Terminated`` in the main thread, whatever the disposition the process
  inherited. A process started with ``cmd &`` from a non-interactive shell, or under ``nohup``,
  inherits SIGINT as ignored, and Python then installs no ``KeyboardInterrupt`` handler at all
  (Python docs, ``signal``: "SIGINT is translated into a KeyboardInterrupt exception if the
  parent process has not changed it"), so
  ``kill -INT`` did nothing. A second signal while the first one's clean-up runs ends the process
  at once (exit status 128 + signal number), and with a grace period a watchdog ends it if the
  clean-up has not finished in time (TensorFlow's C++ code can hold off Python's handler), so the
  user gets the prompt back within seconds; the next run recovers what was left.
- ``quiet_expected_failures``: Optuna logs every failed trial as a warning with the objective's
  traceback. For failures that are expected outcomes, whose reason is already in the trial's
  ``reason`` attribute and its MLflow run's tags (interrupted, NaN loss, surplus trials, a
  tracking server that went away), that traceback only scrolls the progress display away; it is
  dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from nas_mnist.errors import TrialFailure

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals ``handle_signals`` turns into exceptions: Ctrl-C, ``kill``, the terminal closing."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that the running trial ends as on Ctrl-C.

    Attributes:
        signum: the signal (``signal.SIGTERM`` unless given).
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum

    @property
    def signal_name(self) -> str:
        """"SIGTERM" or "SIGHUP"."""
        return signal.Signals(self.signum).name


EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
"""128 plus the signal number: the shell's convention for a process ended by a signal."""


def exit_status(exc: KeyboardInterrupt) -> int:
    """130 for ``KeyboardInterrupt`` (SIGINT), 143 for ``Terminated`` of SIGTERM, 129 of SIGHUP
    (``EXIT_STATUS``)."""
    return EXIT_STATUS[exc.signum if isinstance(exc, Terminated) else signal.SIGINT]


GRACE_ENV_VAR = "NAS_MNIST_INTERRUPT_GRACE_SECONDS"
"""Environment variable overriding ``handle_signals``' ``grace_seconds`` (a number of seconds)."""


def _watchdog(read_fd: int, done: threading.Event, grace_seconds: float) -> None:
    """Wait for a signal's byte on ``read_fd`` (written by the C-level handler the moment the
    signal arrives, ``signal.set_wakeup_fd``), then for ``done``; exit after ``grace_seconds``."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data or done.is_set():
            return
        signals = [s for s in data if s in STOP_SIGNALS]
        if signals:
            break
    if done.wait(grace_seconds):
        return
    print(f"\nthe clean-up did not start or end within {grace_seconds:g} s (TensorFlow was in a "
          "long call): exiting now. The running trial is recovered, marked failed and queued "
          "for one retry, when the same command runs again.", file=sys.stderr, flush=True)
    os._exit(128 + signals[0])


_STOP_SIGNALS: list[int] = []
"""The stop signals received inside the running ``handle_signals`` block, or by a worker's own
handler (first one first); emptied when a ``handle_signals`` block starts and ends."""


def stop_signal() -> int | None:
    """The first stop signal (``STOP_SIGNALS``) that ``handle_signals`` turned into an exception
    in this process, or None. Library code can catch the exception (TensorFlow turned one into
    "TypeError: Cannot find maximum value of <dtype: 'int32'>"): callers that see an error after
    a stop signal use this to treat it as the interruption it is."""
    return _STOP_SIGNALS[0] if _STOP_SIGNALS else None


def note_stop_signal(signum: int) -> None:
    """Record a stop signal that a handler of its own (a ``--jobs`` worker's) turns into an
    exception, for ``stop_signal``."""
    _STOP_SIGNALS.append(signum)


def interruption(signum: int) -> KeyboardInterrupt:
    """The exception ``handle_signals`` raises for ``signum``: ``Terminated`` for SIGTERM and
    SIGHUP, else ``KeyboardInterrupt``."""
    if signum in (signal.SIGTERM, signal.SIGHUP):
        return Terminated(signum)
    return KeyboardInterrupt()


def silence_terminal(fds: tuple[int, ...] = (1, 2)) -> None:
    """Point those of ``fds`` (stdout, stderr) that are terminals at /dev/null.

    After SIGHUP the terminal is gone, and a write to it fails with EIO: the clean-up's log
    lines (and the final "terminated" line) would end in ``OSError`` before the trial is
    closed. Files and pipes (``nohup``, ``> log``) are left as they are.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextlib.contextmanager
def handle_signals(grace_seconds: float | None = None) -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into exceptions in the main thread while the block runs.

    The first SIGINT raises ``KeyboardInterrupt`` and the first SIGTERM or SIGHUP (the terminal
    closed) raises ``Terminated`` (a ``KeyboardInterrupt``), so ``finally`` blocks close the
    running trial and its MLflow run. Any further stop signal before the block ends exits the
    process at once with
    ``os._exit(128 + signum)``. The previous handlers are restored on exit. Outside the main
    thread (signal handlers can only be set there) this does nothing.

    Python runs a signal handler only when the main thread is back in the interpreter; inside a
    long TensorFlow call (seen: up to 15 s at an epoch boundary on a loaded 2-core machine) it
    waits. With ``grace_seconds``, a watchdog thread learns of the signal the moment it arrives
    (``signal.set_wakeup_fd``) and, if the block has not ended ``grace_seconds`` later, exits the
    process with ``os._exit(128 + signum)``. What the clean-up did not do is then done by the next
    run of the same command, as after SIGKILL (``recovery.recover_dead_trials``): the trial is
    failed and queued for one retry, its MLflow run closed; SQLite rolls back a write it was in.

    Args:
        grace_seconds: seconds from the signal to the forced exit; None (and no
            ``NAS_MNIST_INTERRUPT_GRACE_SECONDS`` in the environment) for no watchdog.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if os.environ.get(GRACE_ENV_VAR):
        grace_seconds = float(os.environ[GRACE_ENV_VAR])
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received:
            print(f"\nsignal {signum} again: exiting now, without clean-up", file=sys.stderr,
                  flush=True)
            os._exit(128 + signum)
        received.append(signum)
        note_stop_signal(signum)
        if signum == signal.SIGHUP:
            silence_terminal()  # the clean-up's lines must not fail on a terminal that is gone
        raise interruption(signum)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    _STOP_SIGNALS.clear()  # a signal belongs to the block it stopped
    for signum in previous:
        signal.signal(signum, on_signal)
    watch = contextlib.ExitStack()
    if grace_seconds is not None:
        watch.enter_context(_wakeup_watchdog(grace_seconds))
    try:
        with watch:
            yield
    finally:
        for signum, handler in previous.items():
            # None: a handler set outside Python, which cannot be put back; use the default.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _STOP_SIGNALS.clear()


@contextlib.contextmanager
def _wakeup_watchdog(grace_seconds: float) -> Iterator[None]:
    """Run ``_watchdog`` on a wake-up pipe while the block runs; restore the wake-up fd after."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    done = threading.Event()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    thread = threading.Thread(target=_watchdog, args=(read_fd, done, grace_seconds),
                              name="nas-mnist-interrupt-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watchdog reads end-of-file and returns
        thread.join(timeout=5)
        os.close(read_fd)


class ExpectedFailureFilter(logging.Filter):
    """Filter for the ``optuna.study._optimize`` logger: drops the traceback of expected failures.

    Optuna logs a failed trial as two warnings: "Trial N failed with parameters: ... because of
    the following error: ...", with ``exc_info``, then "Trial N failed with value None.". For a
    ``KeyboardInterrupt`` or a ``nas_mnist.errors.TrialFailure`` (NaN loss, surplus trial,
    tracking server gone: the trial records why), the first keeps one line without the traceback
    (or is dropped, for interrupts and ``silent`` failures) and the second is dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._quiet_trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        trial = message.split(" failed", 1)[0] if message.startswith("Trial ") else None
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and trial is not None:
            if isinstance(exc, (KeyboardInterrupt, TrialFailure)):
                self._quiet_trials.add(trial)
                if isinstance(exc, KeyboardInterrupt) or exc.silent:
                    return False
                record.exc_info = None
                record.exc_text = None
                return True
        if trial in self._quiet_trials and "failed with value" in message:
            self._quiet_trials.discard(trial)
            return False
        return True


@contextlib.contextmanager
def quiet_expected_failures() -> Iterator[ExpectedFailureFilter]:
    """Install an ``ExpectedFailureFilter`` on Optuna's optimize logger while the block runs."""
    optimize_logger = logging.getLogger("optuna.study._optimize")
    failure_filter = ExpectedFailureFilter()
    optimize_logger.addFilter(failure_filter)
    try:
        yield failure_filter
    finally:
        optimize_logger.removeFilter(failure_filter)
