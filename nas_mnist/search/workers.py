"""``--jobs N``: N trials at once on one machine, each in a worker process that is replaced.

The search's own process (the supervisor) opens the study, recovers dead trials, seeds the
baselines and attaches the MLflow parent run once (``engine.session``), then trains nothing
itself: ``Supervisor`` keeps up to N worker processes alive while the study-wide ``--trials``
budget is not spent. Each worker opens the study, runs at most ``trials_per_worker`` trials with
the ordinary ``Objective`` (its PID is the trial's ``worker`` attribute) and exits; the
supervisor starts a fresh one in its slot. Nothing of Keras or TensorFlow (graphs, allocator
pools, GPU memory held by TensorFlow's BFC allocator, the ~6 MiB per trial that ``fit`` keeps:
``docs/results.md``) outlives a worker; the supervisor never imports a model.

Why ``multiprocessing`` with the "spawn" start method, not subprocesses of ``python -m
nas_mnist``: the worker gets its plan (the validated ``SearchSettings``, the parent run, its GPU)
as a pickled object, not as a second command line that would have to round-trip every flag; its
exit code and PID come back through ``multiprocessing.Process``; and "spawn" starts a fresh
interpreter, as a subprocess would (``fork`` is not safe once TensorFlow's threads exist:
TensorFlow's and Python's docs). It works from a notebook too (the target is importable).

Stopping: Ctrl-C reaches every process of the terminal's process group; SIGTERM reaches only the
supervisor, which forwards SIGTERM to each worker. A worker turns its first SIGINT/SIGTERM into
``KeyboardInterrupt`` (the objective re-queues the trial once, as in one process) and ignores
further ones, so that the terminal's SIGINT plus the supervisor's SIGTERM do not kill it before
its clean-up. A worker that does not end within ``STOP_GRACE_SECONDS`` is SIGKILLed and its
trial recovered. A worker that dies abnormally (SIGKILL, out of memory) leaves its trial RUNNING;
the supervisor runs ``recovery.recover_dead_trials`` at once (dead PID on this host).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

EXIT_TRACKING_UNAVAILABLE = 75
"""A worker's exit status when the MLflow tracking server stopped answering (EX_TEMPFAIL)."""

EXIT_INTERRUPTED = 130
STOP_GRACE_SECONDS = 60.0
"""Seconds a stopped worker gets to close its trial and MLflow run before it is SIGKILLed."""

MAX_WORKER_CRASHES = 3
"""Workers in a row that die abnormally (not stopped by us) before the supervisor gives up."""


def gpu_for_slot(gpus: Sequence[str], slot: int) -> str | None:
    """The GPU of worker slot ``slot``: round-robin over ``gpus``; None without ``gpus``.

    A replacement worker inherits its slot's GPU, so each GPU keeps ``jobs / len(gpus)`` workers
    (rounded) for the whole search.
    """
    return gpus[slot % len(gpus)] if gpus else None


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
    """

    settings: Any
    parent_run_id: str
    experiment_id: str
    slot: int
    serial: int
    gpu: str | None = None
    deadline: float | None = None


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


class WorkersCrashingError(RuntimeError):
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
        from optuna.trial import TrialState

        self.study, self.config = study, config
        self.start_worker, self.on_trial_finished, self.recover = (
            start_worker, on_trial_finished, recover)
        self.slots: dict[int, WorkerHandle] = {}
        self.outcome = SupervisorOutcome()
        self._done_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        self._seen = {t.number for t in study.get_trials(deepcopy=False,
                                                         states=self._done_states)}
        self._failures_in_row = 0
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
        from optuna.trial import TrialState

        from nas_mnist.study.trial_counts import count_claimed
        from nas_mnist.study.recovery import _parse_worker
        from nas_mnist.trial_attributes import WORKER_ATTR

        ours = {h.pid for h in self.slots.values()}
        running_ours = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            parsed = _parse_worker(str(t.user_attrs.get(WORKER_ATTR, "")))
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
        trials = self.study.get_trials(deepcopy=False, states=self._done_states)
        for trial in sorted(trials, key=lambda t: t.number):
            if trial.number in self._seen:
                continue
            self._seen.add(trial.number)
            self._count_failure(trial)
            self.on_trial_finished(trial)

    def _count_failure(self, trial: Any) -> None:
        from optuna.trial import TrialState

        if str(trial.user_attrs.get("reason", "")).startswith("surplus"):
            return
        self._failures_in_row = self._failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        if self._failures_in_row >= self.config.max_consecutive_failures:
            self.outcome.stopped_for_failures = self._stopping = True


def start_process(plan: WorkerPlan) -> Any:
    """Start ``worker_main(plan)`` in a fresh interpreter ("spawn"); returns the started
    ``multiprocessing.Process`` (daemonic: it is terminated if the search's process exits)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    process = context.Process(target=worker_main, args=(plan,), daemon=True,
                              name=f"nas-mnist-worker-{plan.slot}")
    process.start()
    return process


def _interrupt_once() -> None:
    """First SIGINT/SIGTERM: ``KeyboardInterrupt``; later ones are ignored (see module doc)."""
    def on_signal(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def worker_main(plan: WorkerPlan) -> None:
    """A worker process: up to ``trials_per_worker`` trials of the study, then exit.

    Exit status 0 (done), ``EXIT_TRACKING_UNAVAILABLE``, or ``EXIT_INTERRUPTED``.
    """
    import sys

    if plan.gpu is not None:  # before TensorFlow or JAX is imported
        os.environ["CUDA_VISIBLE_DEVICES"] = plan.gpu
    _interrupt_once()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "optuna", "alembic", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from nas_mnist.processes.signals import quiet_expected_failures

    try:
        with quiet_expected_failures():
            code = _run_worker(plan)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _run_worker(plan: WorkerPlan) -> int:
    from nas_mnist.data import load_splits
    from nas_mnist.search.budget import run_trials
    from nas_mnist.search.objective import Objective, ObjectiveConfig
    from nas_mnist.study.recovery import handle_dead_trial
    from nas_mnist.study.opening import open_study
    from nas_mnist.model.devices import configure_devices, set_mixed_precision, set_threads
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    settings = plan.settings
    set_threads(settings.worker_threads)
    configure_devices()
    set_mixed_precision(settings.mixed_precision)
    space = load_search_space(settings.space)
    data = load_splits(settings.data, settings.max_train_samples, settings.seed)
    tracker = Tracker(settings.tracking_uri)

    def on_stale_trial(study: Any, trial: Any) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    # Each worker samples with its own seed: two workers with one seed at one study state would
    # propose the same trial.
    seed = (settings.seed + 7919 * (plan.serial + 1)) % 2**31
    study, _ = open_study(settings.storage, settings.study_name, seed=seed,
                          on_stale_trial=on_stale_trial, sampler=settings.sampler,
                          pruner=settings.resolved_pruner, objectives=settings.objectives,
                          epochs=settings.epochs)
    config = ObjectiveConfig(epochs=settings.epochs, seed=settings.seed,
                             batch_size=settings.batch_size, max_params=settings.max_params,
                             max_trials=settings.trials, objectives=settings.objectives)
    objective = Objective(space, data, StudyRuns(tracker, plan.experiment_id,
                                                 plan.parent_run_id), config)
    timeout = None if plan.deadline is None else max(plan.deadline - time.time(), 0.001)
    run_trials(study, objective, settings.trials, timeout=timeout,
               max_trials_here=settings.trials_per_worker)
    return EXIT_TRACKING_UNAVAILABLE if tracker.unavailable is not None else 0
