"""``--jobs N``: the worker processes, N trials at once on one machine, each process replaced.

The search's own process opens the study, recovers dead trials, seeds the baselines and attaches
the MLflow parent run once (``runner``), then trains nothing itself: its
``processes.supervisor.Supervisor`` keeps up to N worker processes alive while the study-wide
``--trials`` budget is not spent. Each worker is set up as the in-process search is
(``prepare``), opens the study, runs at most ``trials_per_worker`` trials with the ordinary
``Objective`` (its PID is the trial's ``worker`` attribute) and exits; the supervisor starts a
fresh one in its slot. Nothing of Keras or TensorFlow (graphs, allocator pools, GPU memory held
by TensorFlow's BFC allocator, the ~6 MiB per trial that ``fit`` keeps: ``docs/results.md``)
outlives a worker.

Why ``multiprocessing`` with the "spawn" start method, not subprocesses of ``python -m
nas_mnist``: the worker gets its plan (the validated ``SearchSettings``, the parent run, its GPU)
as a pickled object, not as a second command line that would have to round-trip every flag; its
exit code and PID come back through ``multiprocessing.Process``; and "spawn" starts a fresh
interpreter, as a subprocess would (``fork`` is not safe once TensorFlow's threads exist:
TensorFlow's and Python's docs). It works from a notebook too (the target is importable). This
module imports nothing heavy at the top: the worker sets ``CUDA_VISIBLE_DEVICES`` before
TensorFlow or JAX is imported.

Stopping: a worker turns its first SIGINT/SIGTERM/SIGHUP into ``KeyboardInterrupt`` (the objective
re-queues the trial once, as in one process) and ignores further ones, so that the terminal's
SIGINT plus the supervisor's SIGTERM do not kill it before its clean-up (the supervisor's side:
``processes.supervisor``). "Ignores" is a Python handler that does nothing, not ``SIG_IGN``: a
second signal already pending when the first one's handler runs would otherwise be reported by
Python as ``OSError: Signal 15 ignored due to race condition``, with a traceback.

A worker never outlives its supervisor (SIGKILL, the out-of-memory killer, the interrupt
watchdog's ``os._exit``): on Linux the kernel sends it SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), and a watcher thread checks ``os.getppid()`` every
``PARENT_CHECK_SECONDS`` elsewhere; either stops it as SIGTERM does (trial re-queued, run closed).
The parent MLflow run the dead supervisor left RUNNING is closed by the next search's recovery.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from nas_mnist.processes.signals import STOP_SIGNALS, note_stop_signal
from nas_mnist.processes.supervisor import (
    EXIT_INTERRUPTED,
    EXIT_TRACKING_UNAVAILABLE,
    STOP_GRACE_SECONDS,
)

PARENT_CHECK_SECONDS = 1.0
"""How often a worker's watcher thread checks that its supervisor is still its parent."""

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process needs (pickled to it by "spawn").

    Attributes:
        settings: the search's ``SearchSettings``.
        parent_run_id: the MLflow parent run the trial runs go under.
        experiment_id: the study's MLflow experiment.
        slot: the worker's slot, 0 to jobs - 1.
        serial: how many workers this search started before this one (seeds its sampler).
        gpu: the ``CUDA_VISIBLE_DEVICES`` value, or None to leave it alone.
        deadline: ``time.time()`` after which no trial starts (``--timeout``), or None.
        trial_deadline: ``--time-budget``'s check of each trial at its start
            (``time_budget.TrialDeadline``), or None.
    """

    settings: Any
    parent_run_id: str
    experiment_id: str
    slot: int
    serial: int
    gpu: str | None = None
    deadline: float | None = None
    trial_deadline: Any = None


def start_process(plan: WorkerPlan) -> Any:
    """Start ``worker_main(plan)`` in a fresh interpreter ("spawn"); returns the started
    ``multiprocessing.Process`` (daemonic: it is terminated if the search's process exits)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    process = context.Process(target=worker_main, args=(plan, os.getpid()), daemon=True,
                              name=f"nas-mnist-worker-{plan.slot}")
    process.start()
    return process


_finished = threading.Event()
"""Set when the worker's trials are over: a stop signal then only ends the process quietly."""


def _ignore(signum: int, frame: Any) -> None:
    pass  # not SIG_IGN: a signal already pending must find a handler (module doc)


def _finish_quietly() -> None:
    """After the trials: stop signals (the supervisor stopping an exiting worker) do nothing, so
    no ``KeyboardInterrupt`` is raised while the interpreter shuts down."""
    _finished.set()
    for stop in STOP_SIGNALS:
        signal.signal(stop, _ignore)


def _interrupt_once() -> None:
    """First SIGINT/SIGTERM: ``KeyboardInterrupt``; later ones are ignored (see module doc).

    A ``KeyboardInterrupt`` raised while Python runs a garbage-collection callback or a
    ``__del__`` (JAX's, TensorFlow's) is swallowed by Python as "Exception ignored in", with a
    traceback: then the handler is re-armed and the signal sent again, quietly, so that the
    interrupt reaches the trial after all. A stop signal that comes while that hook runs (the
    parent-death SIGTERM and the watcher's, one after the other) raises nothing there: raised in
    the hook, Python would print it as a traceback and drop it; the resent signal follows.
    """
    in_hook = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if in_hook.is_set():
            return  # the hook's timer sends SIGTERM again in a moment
        for stop in STOP_SIGNALS:
            signal.signal(stop, _ignore)
        note_stop_signal(signum)  # an error a library makes of it is still the interruption
        raise KeyboardInterrupt()

    previous_hook = sys.unraisablehook

    def on_unraisable(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            if _finished.is_set():
                return
            in_hook.set()
            try:
                for stop in STOP_SIGNALS:
                    signal.signal(stop, on_signal)
                # Sent from a thread, a moment later: raised here, it would be swallowed again.
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            finally:
                in_hook.clear()
            return
        previous_hook(unraisable)

    sys.unraisablehook = on_unraisable
    for stop in STOP_SIGNALS:  # the terminal closing (SIGHUP) reaches workers too
        signal.signal(stop, on_signal)


def tie_to_parent(parent_pid: int | None) -> None:
    """Stop this process as SIGTERM does when ``parent_pid`` stops being its parent.

    On Linux the kernel sends SIGTERM when the parent dies (``PR_SET_PDEATHSIG``); everywhere a
    daemon thread compares ``os.getppid()`` with ``parent_pid`` every ``PARENT_CHECK_SECONDS``
    and sends SIGTERM to this process once they differ (also when the parent died before the
    ``prctl``). A worker whose clean-up has not ended ``STOP_GRACE_SECONDS`` later exits
    (the next search recovers its trial). Does nothing when ``parent_pid`` is None.
    """
    if parent_pid is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM),
                                                     0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher alone
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_SECONDS)  # as the supervisor's stop: its clean-up had its time
        os._exit(EXIT_INTERRUPTED)  # its trial is recovered by the next search

    threading.Thread(target=watch, name="nas-mnist-parent-watch", daemon=True).start()


def worker_main(plan: WorkerPlan, parent_pid: int | None = None) -> None:
    """A worker process: up to ``trials_per_worker`` trials of the study, then exit.

    Args:
        plan: what to run.
        parent_pid: the supervisor's PID; the worker stops (as on SIGTERM) when it dies
            (``tie_to_parent``). None: not tied.

    Exit status 0 (done), ``EXIT_TRACKING_UNAVAILABLE``, or ``EXIT_INTERRUPTED``.
    """
    if plan.gpu is not None:  # before TensorFlow or JAX is imported
        os.environ["CUDA_VISIBLE_DEVICES"] = plan.gpu
    _interrupt_once()
    try:
        tie_to_parent(parent_pid)
        from nas_mnist.processes.quiet_start import quiet_worker_start
        from nas_mnist.processes.signals import quiet_expected_failures

        quiet_worker_start()
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        for name in ("mlflow", "optuna", "alembic", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # A stop signal that lands inside a database read makes SQLAlchemy's pool log "Error
        # closing cursor" with a traceback while the trial is closed; nothing is lost there.
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
        with quiet_expected_failures():
            code = _run_worker(plan)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        _finish_quietly()
    sys.exit(code)


def _run_worker(plan: WorkerPlan) -> int:
    """Prepare this process, open the study with this worker's sampler seed, run its trials.

    Returns:
        0, or ``EXIT_TRACKING_UNAVAILABLE`` when the tracking server stopped answering.
    """
    from nas_mnist.data import data_fingerprint
    from nas_mnist.searching.budget import run_trials
    from nas_mnist.searching.prepare import make_objective, open_search_study, prepare
    from nas_mnist.tracking.datasets import mnist_dataset
    from nas_mnist.tracking.tracker import StudyRuns

    settings = plan.settings
    prepared = prepare(settings, threads=settings.worker_threads, check_tracking=False)
    study = open_search_study(settings, prepared.tracker, worker=plan.serial)
    fingerprint = data_fingerprint(settings.data)
    runs = StudyRuns(prepared.tracker, plan.experiment_id, plan.parent_run_id,
                     mnist_dataset(fingerprint.source, fingerprint.sha256))
    timeout = None if plan.deadline is None else max(plan.deadline - time.time(), 0.001)
    objective = make_objective(settings, prepared, runs, trial_deadline=plan.trial_deadline)
    run_trials(study, objective, settings.trials, timeout=timeout,
               max_trials_here=settings.trials_per_worker)
    return EXIT_TRACKING_UNAVAILABLE if prepared.tracker.unavailable is not None else 0
