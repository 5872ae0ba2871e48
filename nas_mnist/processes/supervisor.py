"""The ``--jobs N`` supervisor: keeps N worker processes alive until the study's budget is spent.

The search's own process opens the study, recovers dead trials, seeds the baselines and attaches
the MLflow parent run once (``search.runner``), then trains nothing itself: ``Supervisor`` starts
worker processes (``search.workers``), replaces each one that exits, and reaps those that die,
while the study-wide ``--trials`` budget is not spent. It reads the study, never writes a trial,
and imports no training code (no TensorFlow, Keras, model or search module): what a worker runs
is the ``start_worker`` callable it is given.

Stopping: Ctrl-C (and SIGHUP, the terminal closing, handled as SIGTERM) reaches every process of
the terminal's process group; SIGTERM reaches only the supervisor, which forwards SIGTERM to each
worker (``Supervisor.stop``). A worker that does not
end within ``STOP_GRACE_SECONDS`` is SIGKILLed and its trial recovered. A worker that dies
abnormally (SIGKILL, out of memory) leaves its trial RUNNING; the supervisor calls its ``recover``
at once (``recovery.recover_dead_trials``: dead PID on this host).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from optuna.trial import TrialState

from nas_mnist.errors import RuntimeFailure
from nas_mnist.study.recovery import parse_worker
from nas_mnist.study.trial_counts import (
    FailureStreak,
    ImpossibleStreak,
    TimeRefusalStreak,
    count_claimed,
)
from nas_mnist.trial_attributes import WORKER_ATTR

logger = logging.getLogger(__name__)

EXIT_TRACKING_UNAVAILABLE = 75
"""A worker's exit status when the MLflow tracking server stopped answering (EX_TEMPFAIL)."""

EXIT_INTERRUPTED = 130
"""A worker's exit status after SIGINT, SIGTERM or SIGHUP (128 + SIGINT)."""

STOP_GRACE_SECONDS = 60.0
"""Seconds a stopped worker gets to close its trial and MLflow run before it is SIGKILLed."""

MAX_WORKER_CRASHES = 3
"""Workers in a row that die abnormally (not stopped by us) before the supervisor gives up."""

_DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def gpu_for_slot(gpus: Sequence[str], slot: int) -> str | None:
    """The GPU of worker slot ``slot``: round-robin over ``gpus``; None without ``gpus``.

    A replacement worker inherits its slot's GPU, so each GPU keeps ``jobs / len(gpus)`` workers
    (rounded) for the whole search.
    """
    return gpus[slot % len(gpus)] if gpus else None


class WorkerHandle(Protocol):
    """What the supervisor needs of a worker process (``multiprocessing.Process`` has it)."""

    pid: int | None
    exitcode: int | None

    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


@dataclass
class SupervisorConfig:
    """Limits of the supervisor loop.

    Attributes:
        jobs: worker processes at once.
        trials: the study-wide ``--trials`` (finished trials in total).
        deadline: ``time.time()`` after which no worker starts, or None.
        poll_seconds: how often the study and the workers are looked at.
        max_consecutive_failures: failed trials in a row (study-wide, this search) that stop it.
        gpus: GPU ids assigned round-robin by slot.
    """

    jobs: int
    trials: int
    deadline: float | None = None
    poll_seconds: float = 0.5
    max_consecutive_failures: int = 10
    gpus: tuple[str, ...] = ()


@dataclass
class SupervisorOutcome:
    """How a supervised search ended.

    Attributes:
        started: worker processes started.
        pids: PIDs of every worker started, in order.
        stopped_for_failures: too many trials failed in a row.
        tracking_unavailable: a worker stopped because the tracking server stopped answering.
        crashed: workers that died abnormally (their trials recovered).
    """

    started: int = 0
    pids: list[int] = field(default_factory=list)
    stopped_for_failures: bool = False
    tracking_unavailable: bool = False
    crashed: int = 0


class WorkersCrashingError(RuntimeFailure):
    """Several workers in a row died before finishing; the message has their exit statuses."""


class Supervisor:
    """Keeps up to ``config.jobs`` workers running until the study's budget is spent.

    Args:
        study: the ``optuna.Study`` (read only: the workers write the trials).
        config: the limits.
        start_worker: ``(slot, serial, gpu) -> WorkerHandle``, a started worker.
        on_trial_finished: called with each trial that finishes during the search
            (``FrozenTrial``), in the order seen (parent-run refresh, progress).
        recover: called after a worker died abnormally, to fail and re-queue its trial.
    """

    def __init__(
        self,
        study: Any,
        config: SupervisorConfig,
        start_worker: Callable[[int, int, str | None], WorkerHandle],
        on_trial_finished: Callable[[Any], None] = lambda trial: None,
        recover: Callable[[], None] = lambda: None,
    ) -> None:
        self.study, self.config = study, config
        self.start_worker, self.on_trial_finished, self.recover = (
            start_worker, on_trial_finished, recover)
        self.slots: dict[int, WorkerHandle] = {}
        self.outcome = SupervisorOutcome()
        self._seen = {t.number for t in study.get_trials(deepcopy=False, states=_DONE_STATES)}
        self._failures = FailureStreak(config.max_consecutive_failures)
        self._impossible = ImpossibleStreak()
        self._refused = TimeRefusalStreak()
        self._crashes_in_row = 0
        self._stopping = False

    def run(self) -> SupervisorOutcome:
        """Start, replace and reap workers until the budget is spent or the search stops.

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM, after every worker stopped (see ``stop``).
            WorkersCrashingError: ``MAX_WORKER_CRASHES`` workers in a row died abnormally.
        """
        try:
            while True:
                self._reap()
                self._note_finished()
                if not self._stopping and not self._past_deadline():
                    self._fill_slots()
                if not self.slots:
                    break
                time.sleep(self.config.poll_seconds)
        except BaseException:
            self.stop()
            raise
        self._note_finished()
        return self.outcome

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds, SIGKILL the rest, recover."""
        for handle in self.slots.values():
            if handle.is_alive():
                handle.terminate()
        end = time.monotonic() + grace
        killed = False
        for handle in self.slots.values():
            handle.join(max(0.0, end - time.monotonic()))
            if handle.is_alive():
                handle.kill()
                handle.join(5.0)
                killed = True
        self.slots.clear()
        if killed:
            self.recover()

    def _past_deadline(self) -> bool:
        return self.config.deadline is not None and time.time() >= self.config.deadline

    def _demand(self) -> int:
        """Trials finished or running, plus workers of ours not yet running one (each will
        claim one): what the budget must still cover."""
        ours = {h.pid for h in self.slots.values()}
        running_ours = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            parsed = parse_worker(str(t.user_attrs.get(WORKER_ATTR, "")))
            running_ours += parsed is not None and parsed[1] in ours
        return count_claimed(self.study) + len(self.slots) - running_ours

    def _fill_slots(self) -> None:
        for slot in range(self.config.jobs):
            if slot in self.slots:
                continue
            if self._demand() >= self.config.trials:
                return
            gpu = gpu_for_slot(self.config.gpus, slot)
            handle = self.start_worker(slot, self.outcome.started, gpu)
            self.slots[slot] = handle
            self.outcome.started += 1
            if handle.pid is not None:
                self.outcome.pids.append(handle.pid)
            logger.debug("worker %s started in slot %d (GPU %s)", handle.pid, slot, gpu)

    def _reap(self) -> None:
        for slot, handle in list(self.slots.items()):
            if handle.is_alive():
                continue
            handle.join(1.0)
            del self.slots[slot]
            code = handle.exitcode
            if code == 0:
                self._crashes_in_row = 0
                continue
            if code == EXIT_TRACKING_UNAVAILABLE:
                self.outcome.tracking_unavailable = self._stopping = True
                continue
            self.outcome.crashed += 1
            self._crashes_in_row += 1
            logger.warning("worker %s (slot %d) died with exit status %s; its trial, if any, is "
                           "failed and queued for one retry", handle.pid, slot, code)
            self.recover()
            if self._crashes_in_row >= MAX_WORKER_CRASHES:
                raise WorkersCrashingError(
                    f"{self._crashes_in_row} worker processes in a row died (last exit status "
                    f"{code}); run with --jobs 1 to see the error, or --verbose")

    def _note_finished(self) -> None:
        trials = self.study.get_trials(deepcopy=False, states=_DONE_STATES)
        for trial in sorted(trials, key=lambda t: t.number):
            if trial.number in self._seen:
                continue
            self._seen.add(trial.number)
            # Impossible architectures in a row stop the search as failures do (each worker
            # logs why).
            if self._failures.add(trial) | self._impossible.add(trial):
                self.outcome.stopped_for_failures = self._stopping = True
            if self._refused.add(trial):  # sampled specs that --time-budget refused
                self._stopping = True
            self.on_trial_finished(trial)
