"""One search, start to end: ``nas_mnist.search(...)`` and ``nas-mnist search`` run this.

The steps, in order: validate every setting (``settings.validate_search_settings``) and prepare
this process (``prepare``: the search space, the data, Keras; nothing created yet); open or resume
the study (refused if its trials trained at another fidelity, ``check_resumed_fidelity``),
recover trials of dead workers, seed the baselines and attach the MLflow parent run; log the
projection of what is left (``projection``); run trials until the study holds ``trials``
finished ones, here or in ``--jobs`` worker processes (``workers``, supervised by
``processes.supervisor``); close the parent run and return a ``SearchResult``. A trial stopped
by a full disk (under ``disk_space``'s floor, checked before each trial and before its model is
logged) stops the search: ``DiskSpaceError`` once the parent run is closed as FAILED. Status
lines go to the ``nas_mnist`` logger (the CLI shows them); progress bars are drawn with rich,
in a terminal or in Jupyter, unless ``progress=False``.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from nas_mnist.errors import DiskSpaceError, InputError
from nas_mnist.processes.quiet_start import quiet_libraries
from nas_mnist.searching.result import SearchResult
from nas_mnist.searching.settings import (
    SearchSettings,
    check_resumed_fidelity,
    check_resumed_space,
    validate_search_settings,
)

logger = logging.getLogger(__name__)

__all__ = ["SearchResult", "search"]


@quiet_libraries()  # a notebook sees nas-mnist's lines, not every library's INFO lines
def search(settings: SearchSettings | None = None, /, **kwargs: Any) -> SearchResult:
    """Run an architecture search on MNIST and return what it found.

    Pass either a ``SearchSettings`` or its fields as keyword arguments, named after the CLI's
    flags (``trials``, ``epochs``, ``data``, ``storage``, ``study_name``, ``tracking_uri``,
    ``max_train_samples``, ``baselines``, ``seed``, ``sampler``, ``pruner``, ``objective``,
    ``space``, ``timeout``, ``progress``, ...; defaults as the CLI's). A study that exists is
    resumed: ``trials`` is the study-wide total of finished trials. Calling it again in the same
    process (a notebook re-run) starts from a clean Keras state.

    Example:
        >>> import nas_mnist
        >>> result = nas_mnist.search(trials=2, epochs=1, max_train_samples=2000,
        ...                           data="mnist.npz", storage="sqlite:///s.db",
        ...                           study_name="demo", tracking_uri="sqlite:///m.db")
        >>> result.leaderboard[["trial", "val_accuracy", "params"]]
        >>> result.best_trial.number

    Returns:
        A ``SearchResult``.

    Raises:
        InputError: bad settings, data, search space, storage or tracking URI (the message is
            the one ``nas-mnist search`` prints before exiting with status 2); nothing is
            created before these checks pass.
        KeyboardInterrupt: Ctrl-C (or SIGTERM in the CLI); the running trial is closed first.
        DiskSpaceError: a folder the search writes to fell under the free-space floor
            (``NAS_MNIST_MIN_FREE_MB``), or a write failed on a full disk: the running trial
            was failed and queued for one retry, no further trial started.
    """
    from nas_mnist.disk_space import min_free_mb
    from nas_mnist.searching.final.stage import (
        final_stage_epochs,
        final_stage_models,
        run_final_stage,
    )
    from nas_mnist.searching.prepare import prepare
    from nas_mnist.searching.projection import log_projection

    started = time.monotonic()  # a --time-budget counts from here
    if settings is None:
        settings = SearchSettings.from_mapping(kwargs)
    elif kwargs:
        raise InputError("pass either a SearchSettings or keyword arguments, not both")
    baselines = validate_search_settings(settings)
    min_free_mb()  # a bad NAS_MNIST_MIN_FREE_MB is bad input: refused before anything exists
    if settings.engine == "keras-tuner":
        from nas_mnist.searching.keras_tuner import run_keras_tuner_search

        prepared = prepare(settings)
        return run_keras_tuner_search(settings, prepared.space, prepared.data, prepared.tracker,
                                      prepared.devices)
    from nas_mnist.study.locks import one_search_per_storage

    # One search per SQLite storage, guaranteed by an OS lock taken before anything is created
    # and held until the search ends.
    with one_search_per_storage(settings.storage, settings.study_name):
        prepared = prepare(settings)
        study, runs = _open(settings, prepared, baselines)
        # Seconds after the start: the projection of the seeds, the sampled trials (and the
        # final stage) from each spec's FLOPs, with the CPU-sized advice.
        advice, projection = log_projection(settings, prepared, study,
                                            final_models=final_stage_models(settings),
                                            final_epochs=final_stage_epochs(settings))
        advised = advice is not None
        settings, deadline = _within_time_budget(settings, projection,
                                                 time.monotonic() - started)
        if settings.jobs > 1:
            stopped = _run_workers(settings, study, runs, deadline)
        else:
            stopped = _run(settings, prepared, study, runs, advised=advised, deadline=deadline)
        final = run_final_stage(settings, study, stopped)
    return _result(settings, study, runs, stopped, final)


def _within_time_budget(settings: SearchSettings, projection: Any,
                        elapsed: float) -> tuple[SearchSettings, Any]:
    """(``settings`` fitted to ``--time-budget``, each trial's ``TrialDeadline`` or None)
    (``searching.time_budget``), the plan logged in one line; unchanged without a budget."""
    if settings.time_budget is None:
        return settings, None
    from nas_mnist.searching.time_budget import plan_time_budget

    plan = plan_time_budget(settings, projection, elapsed)
    logger.info("%s", plan.line)
    return plan.settings, plan.deadline


def _open(settings: SearchSettings, prepared: Any, baselines: Any) -> tuple[Any, Any]:
    """Open or resume the study, recover dead trials, seed baselines, attach the parent run.

    Args:
        settings: the validated settings.
        prepared: what ``prepare.prepare`` loaded (space, data, tracker, devices).
        baselines: the baselines' ``SeedingPlan``.

    Returns:
        (study, runs): the ``optuna.Study`` and its ``StudyRuns``.

    Raises:
        InputError: another worker runs this SQLite study, or the study has other objectives.
    """
    from nas_mnist.searching.baseline_trials import seed_baselines
    from nas_mnist.study.locks import storage_lock

    study = _open_study(settings, prepared.tracker)
    # Seeding reads the study, then enqueues what is missing: workers take turns.
    with storage_lock(settings.storage, f"seed:{settings.study_name}"):
        seeded = seed_baselines(study, prepared.space, baselines, n_trials=settings.trials)
    runs = _attach_parent_run(settings, prepared.tracker, study)
    _log_start(settings, prepared, study, seeded)
    return study, runs


def _open_study(settings: SearchSettings, tracker: Any) -> Any:
    """The study, opened by this search's process, with its dead workers' trials recovered.

    Raises:
        InputError: another worker runs this SQLite study, the study has other objectives, or
            its finished trials trained at another fidelity (``check_resumed_fidelity``) or its
            trials were sampled from another space (``check_resumed_space``).
    """
    from nas_mnist.searching.prepare import open_search_study
    from nas_mnist.study.recovery import live_workers, recover_dead_trials
    from nas_mnist.study.storage_url import StorageURL

    study = open_search_study(settings, tracker)
    for mixed in (check_resumed_fidelity(settings, study),  # refuse before anything is written
                  check_resumed_space(settings, study)):
        if mixed:
            logger.warning("%s", mixed)
    others = live_workers(study)
    if others and StorageURL.parse(settings.storage).one_writer:
        raise InputError(
            f"another worker ({', '.join(sorted(others))}) is running study "
            f"{settings.study_name!r} on this SQLite storage; SQLite locks under concurrent "
            "writers, so run several workers on a PostgreSQL storage (see 'Several workers' in "
            "docs/jobs.md)"
        )
    for number in recover_dead_trials(study, tracker):
        logger.warning("trial %d was left running by a dead worker: marked failed, its "
                       "configuration queued for one retry", number)
    return study


def _attach_parent_run(settings: SearchSettings, tracker: Any, study: Any) -> Any:
    """Attach the study's MLflow parent run (made by the first worker), record the search's
    data and settings on the study and as the run's params, close runs left open before.

    Returns:
        The ``StudyRuns`` that trial runs go under.
    """
    from nas_mnist.data import data_fingerprint
    from nas_mnist.study.locks import storage_lock
    from nas_mnist.study.memory import record_parent_params, remember_search
    from nas_mnist.study.recovery import close_orphan_runs
    from nas_mnist.tracking.datasets import log_dataset, mnist_dataset
    from nas_mnist.tracking.tracker import StudyRuns
    from nas_mnist.trial_attributes import EXPERIMENT_ATTR

    fingerprint = data_fingerprint(settings.data)
    dataset = mnist_dataset(fingerprint.source, fingerprint.sha256)
    # The study remembers its data and settings; the parent run records them as params. Workers
    # started together take turns: the first creates the parent run, the others find it; each
    # reads the params logged before it, then logs the others (MLflow refuses a param logged
    # twice).
    with storage_lock(settings.storage, f"params:{settings.study_name}"):
        parent_run_id = tracker.attach_parent_run(study)
        record_parent_params(tracker, parent_run_id,
                             remember_search(study, settings, fingerprint))
        log_dataset(tracker.client, parent_run_id, dataset)
    runs = StudyRuns(tracker, study.user_attrs[EXPERIMENT_ATTR], parent_run_id, dataset)
    closed = close_orphan_runs(study, tracker, parent_run_id)
    if closed:
        logger.warning("closed %d MLflow run(s) an earlier search left running", len(closed))
    return runs


def _log_start(settings: SearchSettings, prepared: Any, study: Any, seeded: Any) -> None:
    """The status lines before the first trial: devices, study, space, data, baselines, sampler."""
    from nas_mnist.study.storage_url import StorageURL
    from nas_mnist.study.trial_counts import count_finished

    # The first line says where the trials train (--jobs workers see the same devices, or their
    # --gpus share of them).
    logger.info("%s", prepared.devices)
    logger.info("study %r in %s: %d of %d trials finished; %s; %s", settings.study_name,
                StorageURL.parse(settings.storage), count_finished(study), settings.trials,
                prepared.space.describe(), prepared.data.describe())
    if seeded:
        logger.info("baselines queued first (--baselines %s): %s", settings.baselines,
                    ", ".join(seeded))
    logger.info("sampler %s, pruner %s, objective %s", settings.sampler,
                settings.resolved_pruner, ",".join(settings.objectives))


def _run(settings: SearchSettings, prepared: Any, study: Any, runs: Any,
         advised: bool = False, deadline: Any = None) -> bool:
    """Run trials until the study holds ``settings.trials`` finished ones; close the parent run.

    Unless the projection before the first trial gave the CPU-sized advice already
    (``advised``), the progress bars give it once the first epoch's time projects past
    ``timing.CPU_PROJECTION_LIMIT_SECONDS``. ``deadline``: ``--time-budget``'s check of each
    trial at its start (``time_budget.TrialDeadline``), or None.

    Returns:
        Whether the search stopped because too many trials failed in a row.
    """
    from nas_mnist.console import RichProgress
    from nas_mnist.model.devices import gpu_available
    from nas_mnist.searching.budget import count_finished, run_trials
    from nas_mnist.searching.prepare import make_objective
    from nas_mnist.searching.refresher import ParentRunRefresher
    from nas_mnist.study.leaderboard import best_val_accuracy
    from nas_mnist.timing import suggest_cpu_budget

    status = "FINISHED"
    done = count_finished(study)
    budget_hint = partial(suggest_cpu_budget, epochs=settings.epochs,
                          max_train_samples=settings.max_train_samples, on_gpu=gpu_available())
    with RichProgress(settings.trials, done, disable=not settings.progress,
                      budget_hint=None if advised else budget_hint,
                      study_best=partial(best_val_accuracy, study)) as progress:
        objective = make_objective(settings, prepared, runs, listener=progress,
                                   trial_deadline=deadline)
        try:
            outcome = run_trials(
                study, objective, settings.trials, timeout=settings.timeout,
                # a line per trial where no bar is drawn; the parent run's study/ leaderboard
                # and plots, refreshed as trials finish
                callbacks=[partial(_trial_finished, progress),
                           ParentRunRefresher(runs.tracker, runs.parent_run_id,
                                              n_trials=settings.trials)],
            )
            if objective.disk_full is not None:  # the trial was re-queued, the study stopped
                raise objective.disk_full
        except BaseException as exc:
            failure = full_disk_failure(exc)  # also Optuna's own writes
            if failure is not None:
                status = "FAILED"
                raise failure from None
            status = "KILLED"
            runs.tracker.fail_fast()  # the clean-up must not keep Ctrl-C waiting on a server
            raise
        finally:
            runs.tracker.finish_parent_run(runs.parent_run_id, status)
    return bool(outcome["stopped_for_failures"])


def _run_workers(settings: SearchSettings, study: Any, runs: Any, deadline: Any = None) -> bool:
    """``--jobs N``: supervise N worker processes until the budget is spent (no training here);
    close the parent run. ``deadline``: as for ``_run``, passed to each worker.

    Returns:
        Whether the search stopped because too many trials failed in a row.
    """
    from nas_mnist.console import RichProgress
    from nas_mnist.processes.supervisor import Supervisor
    from nas_mnist.searching.refresher import ParentRunRefresher
    from nas_mnist.study.trial_counts import count_finished
    from nas_mnist.tracking.tracker import TrackingUnavailableError

    refresher = ParentRunRefresher(runs.tracker, runs.parent_run_id, n_trials=settings.trials)
    status = "FINISHED"
    logger.info("%d trials at once, each in a worker process that runs up to %d trial(s)%s",
                settings.jobs, settings.trials_per_worker,
                f"; GPUs {','.join(settings.gpu_ids)} round-robin" if settings.gpu_ids else "")
    with RichProgress(settings.trials, count_finished(study),
                      disable=not settings.progress) as progress:

        def on_trial_finished(trial: Any) -> None:
            _stop_if_disk_full(trial)
            _trial_finished(progress, study, trial)
            refresher(study, trial)

        config, start_worker = _worker_pool(settings, runs, deadline)
        supervisor = Supervisor(study, config, start_worker, on_trial_finished=on_trial_finished,
                                recover=partial(_recover_workers, study, runs.tracker))
        try:
            outcome = supervisor.run()
        except BaseException as exc:
            status = "FAILED" if isinstance(exc, DiskSpaceError) else "KILLED"
            runs.tracker.fail_fast()
            raise
        finally:
            runs.tracker.finish_parent_run(runs.parent_run_id, status)
    if outcome.tracking_unavailable and runs.tracker.unavailable is None:
        runs.tracker.unavailable = TrackingUnavailableError(
            "a worker's tracking server stopped answering")
    return outcome.stopped_for_failures


def full_disk_failure(exc: BaseException) -> Exception | None:
    """The one-line error of a search that a full disk stopped, or None if ``exc`` is not that.

    ``exc`` or an exception it was raised from may be a ``TornJournalError`` (a write tore the
    journal: its hint says to run ``nas-mnist doctor``), which comes first, or a write that
    failed on a full disk (``disk_space.is_disk_full``: a ``DiskSpaceError``). Optuna, when its
    own write of a trial's end fails, raises ``AssertionError("Should not reach.")`` from it.
    """
    from nas_mnist.disk_space import disk_full_error, is_disk_full
    from nas_mnist.study.storage import TornJournalError

    if not isinstance(exc, Exception):
        return None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TornJournalError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return disk_full_error(exc) if is_disk_full(exc) else None


def _stop_if_disk_full(trial: Any) -> None:
    """Raise ``DiskSpaceError`` if a worker's ``trial`` was stopped by a full disk (its reason
    says ``disk_full``; the worker re-queued it): the supervisor stops the other workers (their
    trials are re-queued as on SIGTERM) and the search ends with that one line.

    Raises:
        DiskSpaceError: with the trial's reason.
    """
    from nas_mnist.trial_attributes import REASON_ATTR

    reason = str(trial.user_attrs.get(REASON_ATTR, ""))
    prefix = f"{DiskSpaceError.reason}: "
    if reason.startswith(prefix):
        raise DiskSpaceError(f"trial {trial.number}: {reason[len(prefix):]}")


def _worker_pool(settings: SearchSettings, runs: Any, trial_deadline: Any = None
                 ) -> tuple[Any, Any]:
    """(SupervisorConfig, start_worker) for ``settings``: how many workers, until when, on
    which GPUs, and how each is started (``workers.start_process``)."""

    from nas_mnist.processes.supervisor import SupervisorConfig
    from nas_mnist.searching.workers import WorkerPlan, start_process

    deadline = None if settings.timeout is None else time.time() + settings.timeout

    def start_worker(slot: int, serial: int, gpu: str | None) -> Any:
        return start_process(WorkerPlan(settings, runs.parent_run_id, runs.experiment_id, slot,
                                        serial, gpu, deadline, trial_deadline))

    config = SupervisorConfig(jobs=settings.jobs, trials=settings.trials, deadline=deadline,
                              gpus=settings.gpu_ids)
    return config, start_worker


def _trial_finished(progress: Any, study: Any, trial: Any) -> None:
    """Tell the bars that ``trial`` finished, with the study-wide count and best (they log one
    line per trial where no bar is drawn: ``console.RichProgress.trial_finished``)."""
    from nas_mnist.study.leaderboard import best_result
    from nas_mnist.study.trial_counts import count_finished, is_impossible

    try:
        finished, best = count_finished(study), best_result(study)
    except Exception as exc:  # a storage hiccup must not stop the search
        logger.debug("could not read the study after trial %d: %s", trial.number, exc)
        return
    progress.trial_finished(trial, finished, best, impossible=is_impossible(trial))


def _recover_workers(study: Any, tracker: Any) -> None:
    """Fail and re-queue the trials of worker processes that died."""
    from nas_mnist.study.recovery import recover_dead_trials

    for number in recover_dead_trials(study, tracker):
        logger.warning("trial %d was left running by a dead worker process: marked failed, "
                       "its configuration queued for one retry", number)


def _result(settings: SearchSettings, study: Any, runs: Any, stopped: bool,
            final: Any = None) -> SearchResult:
    from nas_mnist.study.leaderboard import best_trial, leaderboard

    frame = leaderboard(study)
    queued = int(frame["state"].eq("waiting").sum())
    return SearchResult(
        study=study,
        leaderboard=frame[frame["state"].ne("waiting")].reset_index(drop=True),
        best_trial=best_trial(study),
        parent_run_id=runs.parent_run_id,
        experiment_id=runs.experiment_id,
        tracking_uri=runs.tracker.tracking_uri,
        settings=settings,
        queued=queued,
        stopped_for_failures=stopped,
        tracking_unavailable=(None if runs.tracker.unavailable is None
                              else str(runs.tracker.unavailable)),
        final=final,
    )
