"""The Optuna objective: spec from the trial, train it, report val_accuracy, log to MLflow.

Each trial gets a nested MLflow run before anything else happens, so that every trial, complete,
pruned or failed, has a run whose ``state`` tag and ``reason`` tag say how it ended. Only the
free-space check comes first (``disk_space``): under the floor, or when a write fails on a full
disk, the trial ends as failed with reason ``disk_full``, is queued for one retry and the study
stops; ``Objective.disk_full`` then holds the error, which the search raises (exit 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import optuna

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.data import DataSplits
from nas_mnist.disk_space import check_free_space, disk_full_error, is_disk_full
from nas_mnist.errors import DiskSpaceError, TrialFailure
from nas_mnist.model.cost import forward_flops, limit_reason
from nas_mnist.model.training import TrainingOptions
from nas_mnist.processes.signals import interruption, stop_signal
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.searching import baseline_trials as seeding
from nas_mnist.searching.takeover import TrialTakenOver, is_taken_over
from nas_mnist.searching.trial_training import TrialOutcome, TrialPlan, TrialRun, train_trial
from nas_mnist.study.recovery import requeue_trial, worker_id
from nas_mnist.study.trial_counts import count_claimed
from nas_mnist.tracking.sqlite_locks import is_database_locked
from nas_mnist.tracking.tracker import StudyRuns, TrackingUnavailableError
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    IN_SPACE_ATTR,
    MODEL_URI_ATTR,
    NUM_PARAMS_ATTR,
    PHASE_SECONDS_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    SPEC_URI_ATTR,
    SUMMARY_ATTRS,
    WORKER_ATTR,
    record_trial_spec,
)

logger = logging.getLogger(__name__)



class SearchListener(Protocol):
    """Progress hooks (the CLI draws progress bars with them); all are optional no-ops."""

    def trial_started(self, number: int, epochs: int, label: str) -> None: ...
    def epoch_ended(self, number: int, epoch: int, logs: dict[str, float]) -> None: ...
    def trial_ended(self, number: int, state: str, value: float | None) -> None: ...


class _NoListener:
    def trial_started(self, number: int, epochs: int, label: str) -> None:
        pass

    def epoch_ended(self, number: int, epoch: int, logs: dict[str, float]) -> None:
        pass

    def trial_ended(self, number: int, state: str, value: float | None) -> None:
        pass


@dataclass
class ObjectiveConfig:
    """Settings shared by every trial of one search.

    Attributes:
        epochs: training epochs per trial.
        seed: base seed; trial ``n`` trains with seed ``seed + n``.
        batch_size: overrides every spec's batch size when set (images per step).
        max_params: specs with more parameters are pruned before training (memory guard).
        max_mflops: specs of more forward MFLOPs per image are pruned before training (time
            guard, ``model.cost.limit_reason``).
        max_trials: the study-wide ``--trials``; a trial that would exceed it (several workers
            started the last trials at once) ends at once as a failed "surplus" trial, without
            training or an MLflow run, and its worker stops.
        training: input pipeline settings passed to ``train_trial``.
        objectives: what the trial returns, in order: val_accuracy, then optionally params
            (parameter count) and latency (milliseconds per image,
            ``nas_mnist.searching.trial_training.measure_latency_ms``).
            With more than one, trials are neither reported per epoch nor pruned (Optuna does
            not prune multi-objective studies).
        storage: the study's storage URL; the folder of its file (SQLite, journal) is checked
            for free space with the MLflow store's and the artifacts' (``disk_space``). None:
            only those two.
        trial_deadline: ``--time-budget``'s check (``time_budget.TrialDeadline``): a trial
            whose spec projects past it does not train (``TimeBudgetTrialError``). None: none.
    """

    epochs: int = 15
    seed: int = 0
    batch_size: int | None = None
    max_params: int | None = None
    max_mflops: int | None = None
    max_trials: int | None = None
    training: TrainingOptions = field(default_factory=TrainingOptions)
    objectives: tuple[str, ...] = ("val_accuracy",)
    storage: str | None = None
    trial_deadline: Any = None


class SurplusTrialError(TrialFailure):
    """The study already has ``--trials`` finished or running trials ahead of this one."""

    reason = "surplus"
    silent = True


class TimeBudgetTrialError(TrialFailure):
    """A queued trial's spec (a baseline, a retry, one the user enqueued) projects past
    ``--time-budget``: it did not train; its configuration waits in the study for the next run,
    and the search stops."""

    reason = "time_budget"
    silent = True


class _TrialReporter(keras.callbacks.Callback):
    """Tells the listener each epoch ended and, if ``prune``, reports val_accuracy to Optuna
    (step = the epoch, from 0) and prunes the trial when its pruner says so (raises
    ``optuna.TrialPruned``).

    The last epoch is reported (later trials compare against it) but the pruner is not asked:
    the training is finished, so pruning would save nothing and lose its result, its test
    evaluation and its model. This holds for every pruner. The last epoch is ``epochs - 1``, or
    Keras' own count of the ``fit`` when ``epochs`` is None.
    """

    def __init__(self, trial: optuna.Trial, listener: SearchListener, prune: bool,
                 epochs: int | None = None) -> None:
        super().__init__()
        self.trial, self.listener, self.prune, self.epochs = trial, listener, prune, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Hear the epoch's metrics; report and, before the last epoch, maybe prune."""
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.listener.epoch_ended(self.trial.number, epoch, logs)
        value = logs.get("val_accuracy")
        if value is None or not self.prune:
            return
        self.trial.report(value, epoch)
        epochs = self.epochs or (self.params or {}).get("epochs")
        if epochs is not None and epoch + 1 >= epochs:
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: val_accuracy {value:.4f} "
                                     + _pruning_rule(self.trial.study.pruner))


def _pruning_rule(pruner: optuna.pruners.BasePruner) -> str:
    """Why ``pruner`` stops a trial, in the words of its rule (Optuna's pruner docs)."""
    if isinstance(pruner, optuna.pruners.MedianPruner):
        return "is below the median of earlier trials at this epoch"
    if isinstance(pruner, optuna.pruners.HyperbandPruner):
        return "is not in the top third of its Hyperband bracket's trials at this epoch"
    return f"was stopped by the {type(pruner).__name__}"


def _run_name(trial: optuna.Trial) -> str:
    baseline = trial.user_attrs.get(BASELINE_ATTR)
    return f"trial-{trial.number:04d}" + (f"-{baseline}" if baseline else "")


class Objective:
    """Callable objective for ``study.optimize``.

    Args:
        space: the search space that proposes specs.
        data: the splits; loaded once per process and shared by every trial.
        runs: where the trial runs go (MLflow tracker, experiment and parent run).
        config: epochs, seed and limits.
        listener: progress hooks.
        spec_for_trial: optional override ``(trial) -> spec``; the default trains a seeded
            baseline's catalog spec or samples ``space`` (``seeding.spec_for_trial``).
    """

    def __init__(
        self,
        space: SearchSpace,
        data: DataSplits,
        runs: StudyRuns,
        config: ObjectiveConfig,
        listener: SearchListener | None = None,
        spec_for_trial: Callable[[optuna.Trial], ArchitectureSpec] | None = None,
    ) -> None:
        self.space = space
        self.data = data
        self.runs = runs
        self.tracker = runs.tracker
        self.config = config
        self.listener = listener or _NoListener()
        self.spec_for_trial = spec_for_trial or (lambda trial: seeding.spec_for_trial(trial, space))
        self.disk_full: DiskSpaceError | None = None  # why the study was stopped, if it was
        self._locations: tuple[str, ...] | None = None
        from nas_mnist.model.training import freeze_long_lived_objects

        freeze_long_lived_objects()

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        """Train the trial's spec; return its objective value(s).

        A trial interrupted by SIGINT/SIGTERM (``KeyboardInterrupt``), or failed because the
        tracking server stopped answering (``TrackingUnavailableError``; the study is then
        stopped), is re-queued once with the same configuration (``recovery.requeue_trial``):
        the configuration did nothing wrong. Its ``reason`` says which. A trial stopped by a
        full disk (``DiskSpaceError``, reason ``disk_full``) is re-queued too, even a retry (the
        study stops, so it cannot loop), and kept in ``disk_full``.

        Raises:
            TrialTakenOver: the trial is no longer RUNNING in the storage when it ends (another
                process's recovery failed and re-queued it while this one was stopped): its
                result is dropped, Optuna tells nothing (``searching.takeover``).
        """
        try:
            result = self._call(trial)
        except Exception:
            if is_taken_over(trial):
                raise TrialTakenOver(trial.number) from None
            raise
        if is_taken_over(trial):
            raise TrialTakenOver(trial.number)
        return result

    def _call(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        try:
            return self._run(trial)
        except TrackingUnavailableError as exc:
            reason = f"tracking_unavailable: {exc}"
            trial.set_user_attr(REASON_ATTR, reason)
            trial.study.stop()
            requeue_trial(trial.study, trial.number, trial.params, trial.user_attrs, reason)
            raise
        except DiskSpaceError as exc:
            self._stop_for_disk(trial, exc)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(REASON_ATTR, "interrupted")
            requeue_trial(trial.study, trial.number, trial.params, trial.user_attrs,
                          "interrupted")
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        from nas_mnist.model.training import NanLossError

        trial_start = time.perf_counter()
        trial.set_user_attr(WORKER_ATTR, worker_id())
        self._check_budget(trial)
        check_free_space(self._disk_locations())
        run_id = self._start_run(trial)
        try:
            spec = self._prepared_spec(trial, run_id)
            outcome = self._train(trial, spec, run_id, trial_start)
            values = self._record(trial, outcome)
            self.tracker.end_trial_run(run_id, "complete")
            self.listener.trial_ended(trial.number, "complete", outcome.val_accuracy)
            if len(self.config.objectives) == 1:
                return outcome.val_accuracy
            return tuple(values[name] for name in self.config.objectives)
        except optuna.TrialPruned as exc:
            self._end(trial, run_id, "pruned", str(exc) or "pruned")
            raise
        except (NanLossError, DiskSpaceError) as exc:
            self._end(trial, run_id, "failed", f"{exc.reason}: {exc}")
            raise
        except TrackingUnavailableError:
            self.listener.trial_ended(trial.number, "failed", None)
            raise  # its run cannot be closed now; the next search closes it
        except TimeBudgetTrialError:
            raise  # _defer closed and deleted its run
        except Exception as exc:
            error = self._failure(trial, run_id, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:  # KeyboardInterrupt, SystemExit: the process is going away
            self.tracker.fail_fast()
            self._end(trial, run_id, "killed", "interrupted")
            raise

    def _failure(self, trial: optuna.Trial, run_id: str, exc: Exception) -> BaseException:
        """Close the run of a trial that raised ``exc``; what to raise instead: the interruption
        of a stop signal that library code turned into an error, a ``DiskSpaceError`` for a
        write that failed on a full disk, else ``exc`` itself."""
        signum = stop_signal()
        if signum is not None:  # a stop signal that library code turned into an error
            self.tracker.fail_fast()
            self._end(trial, run_id, "killed", "interrupted")
            return interruption(signum)
        if is_disk_full(exc):
            error = disk_full_error(exc)
            self._end(trial, run_id, "failed", f"{error.reason}: {error}")
            return error
        kind = type(exc).__name__
        out_of_memory = "ResourceExhausted" in kind or "out of memory" in str(exc).lower()
        prefix = "out_of_memory: " if out_of_memory else ""
        self._end(trial, run_id, "failed", f"{prefix}{kind}: {exc}")
        return exc

    def _disk_locations(self) -> tuple[str, ...]:
        """The places a trial writes to, for ``check_free_space``: the storage URL, the
        tracking URI and the experiment's artifact location (asked once)."""
        if self._locations is None:
            experiment = self.tracker.client.get_experiment(self.runs.experiment_id)
            places = (self.config.storage, self.tracker.tracking_uri,
                      getattr(experiment, "artifact_location", None))
            self._locations = tuple(str(p) for p in places if p)
        return self._locations

    def _stop_for_disk(self, trial: optuna.Trial, exc: DiskSpaceError) -> None:
        """Stop the study, record why, and queue the trial's configuration for one retry (also
        a retry's: the configuration did nothing wrong). On a disk too full even for that (or a
        journal torn by it), one warning: the trial stays failed, or RUNNING for the next
        search (after ``nas-mnist doctor``) to recover."""
        self.disk_full = exc
        trial.study.stop()
        reason = f"{exc.reason}: {exc}"
        try:
            trial.set_user_attr(REASON_ATTR, reason)
            attrs = {k: v for k, v in trial.user_attrs.items() if k != RETRY_OF_ATTR}
            requeue_trial(trial.study, trial.number, _queued_params(trial), attrs, reason)
        except Exception as write_error:
            if not _on_full_disk(write_error):
                raise
            logger.warning("trial %d could not be queued for a retry: the disk is full (%s)",
                           trial.number, type(write_error).__name__)

    def _check_budget(self, trial: optuna.Trial) -> None:
        """End a trial that would exceed ``--trials`` before it trains or logs anything."""
        if self.config.max_trials is None:
            return
        claimed = count_claimed(trial.study, before_number=trial.number)
        if claimed >= self.config.max_trials:
            trial.set_user_attr(REASON_ATTR, f"surplus: {claimed} trials are finished or "
                                f"running ahead of it; --trials is {self.config.max_trials}")
            trial.study.stop()
            raise SurplusTrialError(trial.user_attrs[REASON_ATTR])

    def _start_run(self, trial: optuna.Trial) -> str:
        """The trial's MLflow run, tagged with its baseline; the listener hears it started."""
        tags = {k: str(v) for k, v in trial.user_attrs.items()
                if k in (BASELINE_ATTR, IN_SPACE_ATTR)}
        run_id = self.runs.start_trial_run(trial.number, trial.study.study_name, tags=tags,
                                           run_name=_run_name(trial))
        trial.set_user_attr(RUN_ATTR, run_id)
        label = trial.user_attrs.get(BASELINE_ATTR) or f"trial {trial.number}"
        self.listener.trial_started(trial.number, self.config.epochs, label)
        return run_id

    def _prepared_spec(self, trial: optuna.Trial, run_id: str) -> ArchitectureSpec:
        """The trial's spec, recorded on the trial and its run; those over ``--max-params`` or
        ``--max-mflops``, and sampled ones that project past ``--time-budget``, are pruned."""
        spec = self._spec(trial)
        over = limit_reason(spec, self.config.max_params, self.config.max_mflops)
        late = None if over else self._check_deadline(trial, run_id, spec)
        record_trial_spec(trial, spec.to_dict())  # hidden from the dashboard's table
        trial.set_user_attr(SPEC_URI_ATTR, f"runs:/{run_id}/spec.json")  # log_trial_spec's
        summary = spec.summary()
        for key in SUMMARY_ATTRS:
            trial.set_user_attr(key, summary[key])
        trial.set_user_attr(NUM_PARAMS_ATTR, spec.num_params)
        self.tracker.log_trial_spec(run_id, spec, trial.params, trial.number)
        if over or late:
            raise optuna.TrialPruned(over or late)
        return spec

    def _check_deadline(self, trial: optuna.Trial, run_id: str,
                        spec: ArchitectureSpec) -> str | None:
        """Under ``--time-budget``: a trial whose spec projects past the deadline does not train.

        A sampled trial: returns its reason (``time_budget: ...``), and ``_prepared_spec``
        prunes it after logging its spec, so that the sampler proposes another spec (after
        ``trial_counts.TIME_REFUSAL_LIMIT`` such trials in a row, the search stops: the
        callbacks of ``searching.budget`` and ``processes.supervisor``). A queued trial
        (a baseline, a retry, one enqueued by the user): its configuration is queued again as it
        was (baseline and retry attributes kept) for the next run, its MLflow run is closed and
        deleted (nothing ran), and the search stops (raises ``TimeBudgetTrialError``). None: it
        fits, or there is no deadline.
        """
        deadline = self.config.trial_deadline
        if deadline is None:
            return None

        reason = deadline.refusal(float(forward_flops(spec)))
        if reason is None:
            return None
        trial.set_user_attr(REASON_ATTR, reason)
        if not _was_enqueued(trial):
            return reason
        trial.study.stop()
        kept = {k: v for k, v in trial.user_attrs.items()
                if k in (BASELINE_ATTR, IN_SPACE_ATTR, RETRY_OF_ATTR)}
        trial.study.enqueue_trial(dict(trial.params), user_attrs=kept)
        self.tracker.end_trial_run(run_id, "killed", reason)
        self.tracker.client.delete_run(run_id)
        self.listener.trial_ended(trial.number, "failed", None)
        logger.info("trial %d not started: %s; its configuration waits for the next run",
                    trial.number, reason.removeprefix("time_budget: "))
        raise TimeBudgetTrialError(reason)

    def _train(self, trial: optuna.Trial, spec: ArchitectureSpec, run_id: str,
               trial_start: float) -> TrialOutcome:
        """Train the spec and log it to the trial's run (``train_trial``); epochs are reported
        to the listener and, with one objective, to Optuna's pruner."""
        plan = TrialPlan(
            epochs=self.config.epochs, seed=self.config.seed + trial.number,
            batch_size=self.config.batch_size, options=self.config.training,
            measure_latency="latency" in self.config.objectives, title=_run_name(trial),
            model_metadata={"study_name": trial.study.study_name, "trial_number": trial.number},
            free_space_at=self._disk_locations(),
        )
        reporter = _TrialReporter(trial, self.listener, prune=len(self.config.objectives) == 1,
                                  epochs=self.config.epochs)
        return train_trial(spec, self.data, plan, TrialRun(self.tracker, run_id),
                           callbacks=[reporter], started=trial_start)

    def _record(self, trial: optuna.Trial, outcome: TrialOutcome) -> dict[str, float]:
        """Store the trial's results and phase timings on it; the objective values by name."""
        values = {"val_accuracy": outcome.val_accuracy, "params": float(outcome.num_params)}
        if outcome.latency_ms is not None:
            values["latency"] = outcome.latency_ms
            trial.set_user_attr("latency_ms", outcome.latency_ms)
        for key, value in (
            ("val_accuracy", outcome.val_accuracy),
            ("test_accuracy", outcome.test_accuracy),
            ("train_seconds", outcome.train_seconds),
            ("best_epoch", outcome.best_epoch),
            (MODEL_URI_ATTR, outcome.model_uri),
            (PHASE_SECONDS_ATTR, {k: round(v, 4) for k, v in outcome.phase_seconds.items()}),
        ):
            trial.set_user_attr(key, value)
        return values

    def _spec(self, trial: optuna.Trial) -> ArchitectureSpec:
        try:
            return self.spec_for_trial(trial)
        except SpecError as exc:
            raise optuna.TrialPruned(f"invalid_architecture: {exc}") from None

    def _end(self, trial: optuna.Trial, run_id: str, state: str, reason: str) -> None:
        try:
            trial.set_user_attr(REASON_ATTR, reason)
        except Exception as exc:
            if not _on_full_disk(exc):
                raise
            logger.warning("could not store the reason of trial %d: the disk is full",
                           trial.number)
        try:
            self.tracker.end_trial_run(run_id, state, reason)
        except TrackingUnavailableError as exc:  # the next search closes it
            logger.warning("could not close MLflow run %s of trial %d: %s", run_id, trial.number,
                           exc)
        except Exception as exc:  # never hide the trial's own error behind a tracking error
            if _on_full_disk(exc):  # one line; the next search closes it
                logger.warning("could not close MLflow run %s of trial %d: the disk is full",
                               run_id, trial.number)
            elif stop_signal() is not None or is_database_locked(exc):
                # A stopping worker beside another one on an SQLite store: one line, and the
                # next search's recovery closes the run.
                logger.warning("could not close MLflow run %s of trial %d (%s); the next "
                               "search closes it", run_id, trial.number,
                               (str(exc).strip().splitlines() or [type(exc).__name__])[0])
            else:
                logger.exception("could not close MLflow run %s of trial %d", run_id,
                                 trial.number)
        self.listener.trial_ended(trial.number, state, None)


def _on_full_disk(exc: BaseException) -> bool:
    """Whether a write failed on a full disk (``is_disk_full``), or was refused because one
    tore the journal's last record (``TornJournalError``): the trial's clean-up goes on, and
    the search ends with that error."""
    from nas_mnist.study.storage import TornJournalError

    return is_disk_full(exc) or isinstance(exc, TornJournalError)


def _fixed_params(trial: optuna.Trial) -> dict | None:
    """The params the trial was enqueued with (Optuna keeps them as the ``fixed_params`` system
    attribute); None for a trial the sampler proposes."""
    frozen = next((t for t in trial.study.get_trials(deepcopy=False)
                   if t.number == trial.number), None)
    return frozen.system_attrs.get("fixed_params") if frozen is not None else None


def _was_enqueued(trial: optuna.Trial) -> bool:
    """Whether the trial came from the study's queue: a baseline, a retry, or one the user
    enqueued with ``study.enqueue_trial``."""
    return (BASELINE_ATTR in trial.user_attrs or RETRY_OF_ATTR in trial.user_attrs
            or _fixed_params(trial) is not None)


def _queued_params(trial: optuna.Trial) -> dict:
    """The trial's params, with those it was enqueued with (a queued baseline or retry that
    stopped before it sampled them)."""
    return {**(_fixed_params(trial) or {}), **trial.params}
