"""A process made ready to train a search's trials, the same way wherever they run.

``prepare`` loads the search space and the data, makes the MLflow tracker and sets up Keras
(a clean state, devices, mixed precision, threads); ``open_search_study`` opens the search's
study with its sampler, pruner and objectives; ``make_objective`` builds the ``Objective`` from
the settings. The in-process search (``runner``), every ``--jobs`` worker process (``workers``)
and a stage that trains specs again with a search's settings (retraining the best ones) all go
through these, so a trial is set up one way. Imports are lazy: a ``--jobs`` worker sets
``CUDA_VISIBLE_DEVICES`` after this module is imported and before TensorFlow is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from nas_mnist.data import DataSplits
    from nas_mnist.search_space.space import SearchSpace
    from nas_mnist.searching.objective import Objective, SearchListener
    from nas_mnist.searching.settings import SearchSettings
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

WORKER_SEED_STRIDE = 7919
"""A ``--jobs`` worker's sampler seed is ``seed + WORKER_SEED_STRIDE * (serial + 1)`` (mod 2**31):
two workers with one seed at one study state would propose the same trial."""


@dataclass
class Prepared:
    """What ``prepare`` loaded and set up.

    Attributes:
        space: the ``SearchSpace``.
        data: the ``DataSplits`` (uint8 images 28x28, labels 0-9).
        tracker: the MLflow ``Tracker`` of ``settings.tracking_uri``.
        devices: one line naming the Keras backend, its devices and the dtype policy.
    """

    space: SearchSpace
    data: DataSplits
    tracker: Tracker
    devices: str


def prepare(settings: SearchSettings, *, threads: int | None = None,
            check_tracking: bool = True) -> Prepared:
    """Load the space and data, make the tracker, and set up Keras for training in this process.

    Nothing is created before the files are read and the tracking store answered: a bad file
    raises first. Keras starts from a clean state (nothing of an earlier search in this process,
    such as a notebook re-run, carries over), with GPU memory growth and ``mixed_precision``.

    Args:
        settings: the search's (validated) ``SearchSettings``.
        threads: TensorFlow intra- and inter-op threads; None: TensorFlow's default. Must be
            set before TensorFlow runs its first operation (a fresh worker process).
        check_tracking: ask the tracking store once (which MLflow creates if missing); a
            ``--jobs`` worker skips it, its supervisor asked.

    Raises:
        InputError: a bad search-space or data file, or an unreachable tracking store
            (``TrackingError``).
    """
    from nas_mnist.data import load_splits
    from nas_mnist.database_servers import check_server_connects
    from nas_mnist.model.devices import configure_devices, set_mixed_precision, set_threads
    from nas_mnist.model.training import reset_training_state
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.tracking.tracker import Tracker

    # A server's password, before MLflow's store or the study exists.
    check_server_connects(settings.storage, "storage")
    space = load_search_space(settings.space)
    data = load_splits(settings.data, settings.max_train_samples, settings.seed)
    tracker = Tracker(settings.tracking_uri)
    if check_tracking:
        tracker.check()
        tracker.check_experiment(settings.study_name)  # deleted: refused before the study opens
    set_threads(threads)
    devices = configure_devices()  # before TensorFlow touches a GPU
    reset_training_state()  # clears Keras' global state, the dtype policy too: set it after
    policy = set_mixed_precision(settings.mixed_precision)
    return Prepared(space, data, tracker, f"{devices}, dtype policy {policy}")


def open_search_study(settings: SearchSettings, tracker: Tracker,
                      worker: int | None = None) -> optuna.Study:
    """Open (or create) the search's study with its sampler, pruner and objectives.

    A RUNNING trial whose heartbeat stops (RDB storages) is failed, its MLflow run closed and its
    configuration queued once more (``recovery.handle_dead_trial``).

    Args:
        settings: the search's ``SearchSettings``.
        tracker: the MLflow tracker that closes dead trials' runs.
        worker: a ``--jobs`` worker's serial number (its sampler gets its own seed,
            ``WORKER_SEED_STRIDE``); None: the search's own process (seed ``settings.seed``).

    Returns:
        The ``optuna.Study`` (``study.opening.open_study``: created, or resumed as it is).

    Raises:
        StorageError: the study exists with other objectives.
    """
    from nas_mnist.study.opening import open_study
    from nas_mnist.study.recovery import handle_dead_trial

    def on_stale_trial(study: Any, trial: Any) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    seed = settings.seed
    if worker is not None:
        seed = (settings.seed + WORKER_SEED_STRIDE * (worker + 1)) % 2**31
    study, _ = open_study(settings.storage, settings.study_name, seed=seed,
                          on_stale_trial=on_stale_trial, sampler=settings.sampler,
                          pruner=settings.resolved_pruner, objectives=settings.objectives,
                          epochs=settings.epochs)
    return study


def make_objective(settings: SearchSettings, prepared: Prepared, runs: StudyRuns,
                   listener: SearchListener | None = None,
                   trial_deadline: Any = None) -> Objective:
    """The search's ``Objective``: ``prepared``'s space and data, trial runs under ``runs``'
    parent run, epochs, seed, batch size, parameter limit, budget and objectives from
    ``settings``; ``listener`` gets progress events (None: none); ``trial_deadline``:
    ``--time-budget``'s check of each trial at its start (None: none)."""
    from nas_mnist.searching.objective import Objective, ObjectiveConfig

    config = ObjectiveConfig(
        epochs=settings.epochs, seed=settings.seed, batch_size=settings.batch_size,
        max_params=settings.max_params, max_mflops=settings.max_mflops,
        max_trials=settings.trials,
        objectives=settings.objectives, storage=settings.storage,
        trial_deadline=trial_deadline,
    )
    return Objective(prepared.space, prepared.data, runs, config, listener=listener)
