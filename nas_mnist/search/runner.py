"""One search, start to end: ``nas_mnist.search(...)`` and ``nas-mnist search`` run this.

The steps, in order: validate every input and load the search space and data (nothing created
yet); open or resume the study, recover trials of dead workers, seed the baselines and attach the
MLflow parent run; run trials until the study holds ``trials`` finished ones; close the parent run
and return a ``SearchResult``. Status lines go to the ``nas_mnist`` logger (the CLI shows them);
progress bars are drawn with rich, in a terminal or in Jupyter, unless ``progress=False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from nas_mnist.search.settings import SearchSettings
from nas_mnist.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search left behind.

    Attributes:
        study: the ``optuna.Study`` (``None`` for the KerasTuner engine, which keeps its own state
            in ``tuner_dir``).
        leaderboard: a ``pandas.DataFrame`` with one row per trial that ran (complete, pruned or
            failed; queued trials are left out), best val_accuracy first, with the columns of
            ``nas_mnist.study.leaderboard.COLUMNS``.
        best_trial: the complete trial with the highest val_accuracy (an
            ``optuna.trial.FrozenTrial``), or ``None`` before any trial completed (always ``None``
            for the KerasTuner engine).
        parent_run_id: the study's MLflow parent run.
        experiment_id: the study's MLflow experiment.
        tracking_uri: the MLflow tracking store.
        settings: the settings the search ran with.
        queued: trials still waiting in the study (baselines or retries for a later run).
        stopped_for_failures: the search stopped because too many trials failed in a row.
        tracking_unavailable: why the search stopped early because the tracking server stopped
            answering (the interrupted trial is queued for one retry), else None.
    """

    study: Any
    leaderboard: Any
    best_trial: Any
    parent_run_id: str | None
    experiment_id: str | None
    tracking_uri: str
    settings: SearchSettings
    queued: int = 0
    stopped_for_failures: bool = False
    tracking_unavailable: str | None = None


@dataclass
class _Inputs:
    """The validated and loaded inputs of a search."""

    space: Any
    data: Any
    tracker: Any
    baselines: tuple[Any, ...]
    devices: str


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
    """
    if settings is None:
        settings = SearchSettings.from_mapping(kwargs)
    elif kwargs:
        raise InputError("pass either a SearchSettings or keyword arguments, not both")
    baselines = _validate(settings)
    if settings.engine == "keras-tuner":
        from nas_mnist.search.keras_tuner import run_keras_tuner_search

        inputs = _load(settings, baselines)
        return run_keras_tuner_search(settings, inputs.space, inputs.data, inputs.tracker,
                                      inputs.devices)
    from nas_mnist.study.locks import single_worker

    # One search per SQLite storage, guaranteed by an OS lock taken before anything is created
    # and held until the search ends.
    with single_worker(settings.storage, settings.study_name):
        inputs = _load(settings, baselines)
        study, runs = _open(settings, inputs)
        if settings.jobs > 1:
            stopped = _run_workers(settings, study, runs)
        else:
            stopped = _run(settings, inputs, study, runs)
    return _result(settings, study, runs, stopped)


def _validate(settings: SearchSettings) -> Any:
    """Check every setting that can be checked without reading files; creates nothing.

    Returns:
        The baselines' ``SeedingPlan``.

    Raises:
        InputError: the first bad setting found.
    """
    from nas_mnist.search.baseline_trials import seeding_plan
    from nas_mnist.search.validation import validate_search_settings

    validate_search_settings(storage=settings.storage, study_name=settings.study_name,
                             seed=settings.seed, tracking_uri=settings.tracking_uri,
                             engine=settings.engine, tuner_dir=settings.tuner_dir)
    if settings.jobs > 1 and settings.storage.startswith("sqlite"):
        raise InputError(
            f"--jobs {settings.jobs}: a SQLite storage ({settings.storage}) takes one writing "
            "process at a time; run several trials at once on a journal file (--storage "
            "journal:///nas_mnist.log) or on PostgreSQL (--storage "
            "postgresql://USER:PASSWORD@HOST/DB)")
    try:
        baselines = seeding_plan(settings.baselines)
    except ValueError as exc:
        raise InputError(f"--baselines: {exc}") from None
    if settings.sampler == "gp":
        from nas_mnist.study.opening import make_sampler

        try:
            make_sampler(0, "gp")
        except ValueError as exc:
            raise InputError(f"--sampler: {exc}") from None
    return baselines


def _load(settings: SearchSettings, baselines: Any) -> _Inputs:
    """Load the space and data and check the tracking store (which MLflow creates if missing).

    Raises:
        InputError: a bad search-space or data file, or an unreachable tracking store.
    """
    from nas_mnist.data import load_splits
    from nas_mnist.model.devices import configure_devices, set_mixed_precision
    from nas_mnist.model.training import reset_training_state
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.tracking.tracker import Tracker

    space = load_search_space(settings.space)
    data = load_splits(settings.data, settings.max_train_samples, settings.seed)
    tracker = Tracker(settings.tracking_uri)
    tracker.check()
    reset_training_state()  # nothing of an earlier search in this process carries over
    devices = f"{configure_devices()}, dtype policy {set_mixed_precision(settings.mixed_precision)}"
    return _Inputs(space, data, tracker, baselines, devices)


def _open(settings: SearchSettings, inputs: _Inputs) -> tuple[Any, Any]:
    """Open or resume the study, recover dead trials, seed baselines, attach the parent run.

    Returns:
        (study, runs): the ``optuna.Study`` and its ``StudyRuns``.

    Raises:
        InputError: another worker runs this SQLite study, or the study has other objectives.
    """
    from nas_mnist.data import data_fingerprint
    from nas_mnist.study.trial_counts import count_finished
    from nas_mnist.study.recovery import (
        close_orphan_runs,
        handle_dead_trial,
        live_workers,
        recover_dead_trials,
    )
    from nas_mnist.search.baseline_trials import seed_baselines
    from nas_mnist.study.storage import storage_lock
    from nas_mnist.study.opening import open_study
    from nas_mnist.study.memory import record_parent_params, remember_search
    from nas_mnist.tracking.tracker import StudyRuns
    from nas_mnist.trial_attributes import EXPERIMENT_ATTR

    tracker = inputs.tracker

    def on_stale_trial(study: Any, trial: Any) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    study, created = open_study(
        settings.storage, settings.study_name, seed=settings.seed, on_stale_trial=on_stale_trial,
        sampler=settings.sampler, pruner=settings.resolved_pruner,
        objectives=settings.objectives, epochs=settings.epochs,
    )
    others = live_workers(study)
    if others and settings.storage.startswith("sqlite"):
        raise InputError(
            f"another worker ({', '.join(sorted(others))}) is running study "
            f"{settings.study_name!r} on this SQLite storage; SQLite locks under concurrent "
            "writers, so run several workers on a PostgreSQL storage (see the README's 'Several "
            "workers')"
        )
    for number in recover_dead_trials(study, tracker):
        logger.warning("trial %d was left running by a dead worker: marked failed, its "
                       "configuration queued for one retry", number)
    # Seeding reads the study, then enqueues what is missing: workers take turns.
    with storage_lock(settings.storage, f"seed:{settings.study_name}"):
        seeded = seed_baselines(study, inputs.space, inputs.baselines, n_trials=settings.trials)
    parent_run_id = tracker.attach_parent_run(study, wait_seconds=0 if created else 30)
    runs = StudyRuns(tracker, study.user_attrs[EXPERIMENT_ATTR], parent_run_id)
    # The study remembers its data and settings; the parent run records them as params.
    record_parent_params(tracker, parent_run_id,
                         remember_search(study, settings, data_fingerprint(settings.data)))
    closed = close_orphan_runs(study, tracker, parent_run_id)
    if closed:
        logger.warning("closed %d MLflow run(s) an earlier search left running", len(closed))
    # The first line says where the trials train (--jobs workers see the same devices, or their
    # --gpus share of them).
    logger.info("%s", inputs.devices)
    logger.info("study %r in %s: %d of %d trials finished; %s; %s", settings.study_name,
                settings.storage, count_finished(study), settings.trials,
                inputs.space.describe(), inputs.data.describe())
    if seeded:
        logger.info("baselines queued first (--baselines %s): %s", settings.baselines,
                    ", ".join(seeded))
    logger.info("sampler %s, pruner %s, objective %s", settings.sampler,
                settings.resolved_pruner, ",".join(settings.objectives))
    return study, runs


def _run(settings: SearchSettings, inputs: _Inputs, study: Any, runs: Any) -> bool:
    """Run trials until the study holds ``settings.trials`` finished ones; close the parent run.

    Returns:
        Whether the search stopped because too many trials failed in a row.
    """
    from nas_mnist.console import RichProgress
    from nas_mnist.search.budget import count_finished, run_trials
    from nas_mnist.study.leaderboard import best_val_accuracy
    from nas_mnist.search.objective import Objective, ObjectiveConfig
    from nas_mnist.search.refresher import ParentRunRefresher
    from nas_mnist.model.devices import gpu_available
    from nas_mnist.timing import suggest_cpu_budget

    config = ObjectiveConfig(
        epochs=settings.epochs, seed=settings.seed, batch_size=settings.batch_size,
        max_params=settings.max_params, max_trials=settings.trials,
        objectives=settings.objectives,
    )
    status = "FINISHED"
    done = count_finished(study)
    budget_hint = partial(suggest_cpu_budget, epochs=settings.epochs,
                          max_train_samples=settings.max_train_samples, on_gpu=gpu_available())
    with RichProgress(settings.trials, done, disable=not settings.progress,
                      budget_hint=budget_hint,
                      study_best=partial(best_val_accuracy, study)) as progress:
        objective = Objective(inputs.space, inputs.data, runs, config, listener=progress)
        try:
            outcome = run_trials(
                study, objective, settings.trials, timeout=settings.timeout,
                # the parent run's study/ leaderboard and plots, refreshed as trials finish
                callbacks=[ParentRunRefresher(runs.tracker, runs.parent_run_id,
                                              n_trials=settings.trials)],
            )
        except BaseException:
            status = "KILLED"
            runs.tracker.fail_fast()  # the clean-up must not keep Ctrl-C waiting on a server
            raise
        finally:
            runs.tracker.finish_parent_run(runs.parent_run_id, status)
    return bool(outcome["stopped_for_failures"])


def _run_workers(settings: SearchSettings, study: Any, runs: Any) -> bool:
    """``--jobs N``: supervise N worker processes until the budget is spent (no training here);
    close the parent run.

    Returns:
        Whether the search stopped because too many trials failed in a row.
    """
    import time

    from nas_mnist.console import RichProgress
    from nas_mnist.study.trial_counts import count_finished
    from nas_mnist.study.recovery import recover_dead_trials
    from nas_mnist.search.refresher import ParentRunRefresher
    from nas_mnist.search.workers import (
        Supervisor,
        SupervisorConfig,
        WorkerPlan,
        start_process,
    )
    from nas_mnist.tracking.tracker import TrackingUnavailableError

    deadline = None if settings.timeout is None else time.time() + settings.timeout
    refresher = ParentRunRefresher(runs.tracker, runs.parent_run_id, n_trials=settings.trials)

    def start_worker(slot: int, serial: int, gpu: str | None) -> Any:
        return start_process(WorkerPlan(settings, runs.parent_run_id, runs.experiment_id, slot,
                                        serial, gpu, deadline))

    def recover() -> None:
        for number in recover_dead_trials(study, runs.tracker):
            logger.warning("trial %d was left running by a dead worker process: marked failed, "
                           "its configuration queued for one retry", number)

    status = "FINISHED"
    logger.info("%d trials at once, each in a worker process that runs up to %d trial(s)%s",
                settings.jobs, settings.trials_per_worker,
                f"; GPUs {','.join(settings.gpu_ids)} round-robin" if settings.gpu_ids else "")
    with RichProgress(settings.trials, count_finished(study),
                      disable=not settings.progress) as progress:

        def on_trial_finished(trial: Any) -> None:
            progress.progress.update(progress.trials, completed=count_finished(study))
            refresher(study, trial)

        supervisor = Supervisor(
            study, SupervisorConfig(jobs=settings.jobs, trials=settings.trials, deadline=deadline,
                                    gpus=settings.gpu_ids),
            start_worker, on_trial_finished=on_trial_finished, recover=recover)
        try:
            outcome = supervisor.run()
        except BaseException:
            status = "KILLED"
            runs.tracker.fail_fast()
            raise
        finally:
            runs.tracker.finish_parent_run(runs.parent_run_id, status)
    if outcome.tracking_unavailable and runs.tracker.unavailable is None:
        runs.tracker.unavailable = TrackingUnavailableError(
            "a worker's tracking server stopped answering")
    return outcome.stopped_for_failures


def _result(settings: SearchSettings, study: Any, runs: Any, stopped: bool) -> SearchResult:
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
    )
