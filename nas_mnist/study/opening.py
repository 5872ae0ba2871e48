"""The Optuna study: created or resumed, with its sampler, pruner and objectives."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import optuna

from nas_mnist.study import samplers
from nas_mnist.study.defaults import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    PRUNERS,
    SAMPLERS,
    check_pruner,
)
from nas_mnist.study.storage import StorageError, make_storage
from nas_mnist.trial_attributes import OBJECTIVE_ATTR, RETRY_OF_ATTR

# Median pruner on per-epoch val_accuracy (Optuna's MedianPruner). The first 5 trials always run
# in full to give the median something to stand on (Optuna's default n_startup_trials).
PRUNER_STARTUP_TRIALS = 5


def directions(objectives: Sequence[str]) -> list[str]:
    """Optuna directions: maximize val_accuracy, minimize params and latency."""
    return ["maximize" if n == "val_accuracy" else "minimize" for n in objectives]


def make_sampler(seed: int | None, name: str = DEFAULT_SAMPLER) -> optuna.samplers.BaseSampler:
    """Optuna's sampler ``name``, seeded, its stepped float values on their step
    (``study.samplers``: 0.3, not 0.30000000000000004, in the study).

    tpe: ``TPESampler`` (Optuna's default; handles several objectives too). random:
    ``RandomSampler``. gp: ``GPSampler`` (Gaussian process; needs PyTorch). nsga2:
    ``NSGAIISampler`` (genetic, meant for several objectives). ``docs/benchmarks.md`` compares
    them on this search space.

    Raises:
        ValueError: unknown name, or gp without PyTorch installed.
    """
    if name == "tpe":
        return samplers.TPESampler(seed=seed)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("--sampler gp needs PyTorch: pip install torch (CPU wheels suffice), "
                             "or choose tpe") from None
        return samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def make_pruner(name: str = DEFAULT_PRUNER, epochs: int = 15) -> optuna.pruners.BasePruner:
    """Optuna's pruner ``name`` on per-epoch val_accuracy.

    median: ``MedianPruner``; the first ``PRUNER_STARTUP_TRIALS`` trials always run in full.
    hyperband: ``HyperbandPruner`` from 1 to ``epochs`` epochs (reduction factor 3, Optuna's
    default). none: ``NopPruner``. Whichever it is, a trial's last epoch is reported but never
    pruned: the objective does not ask the pruner then (``searching.objective``), since a
    finished training has nothing left to save.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                           n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")


class RetriesFirstStudy(optuna.Study):
    """An ``optuna.Study`` whose queue gives out retries first: an interrupted or killed trial's
    retry (a WAITING trial with ``retry_of``, ``study.recovery.requeue_trial``) runs before the
    other queued trials (seeded baselines), not after all of them.

    Optuna starts the lowest-numbered WAITING trial (``Study._pop_waiting_trial_id``), and a retry
    is enqueued behind what already waits. This study takes the WAITING trials with
    ``retry_of`` first (lowest number first), then the others by number; each is claimed as
    Optuna claims it (the storage's WAITING -> RUNNING update succeeds for one worker only), so
    several workers never start one trial twice. Rewriting the queued trials' fixed params and
    user attributes instead (which Optuna allows on WAITING trials) could not remove an
    attribute, and a worker popping a trial while it is rewritten would train a mixed
    configuration.

    Made by ``open_study``; the arguments are ``optuna.Study``'s.
    """

    def _pop_waiting_trial_id(self) -> int | None:
        """The id of the queued trial this process claimed (now RUNNING), or None."""
        waiting = self._storage.get_all_trials(self._study_id, deepcopy=False,
                                               states=(optuna.trial.TrialState.WAITING,))
        for trial in sorted(waiting, key=lambda t: (RETRY_OF_ATTR not in t.user_attrs,
                                                    t.number)):
            try:
                if self._storage.set_trial_state_values(
                    trial._trial_id, state=optuna.trial.TrialState.RUNNING
                ):
                    return trial._trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker finished it
        return None


def open_study(
    storage_url: str,
    study_name: str,
    seed: int | None = None,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    *,
    sampler: str = DEFAULT_SAMPLER,
    pruner: str = DEFAULT_PRUNER,
    objectives: Sequence[str] = ("val_accuracy",),
    epochs: int = 15,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it if it exists.

    The study maximizes val_accuracy (fraction of the validation split classified correctly),
    and with several ``objectives`` also minimizes the others (a Pareto front; Optuna does not
    prune multi-objective trials, so ``pruner`` must then be "none"). The sampler's seed is
    ``seed`` plus the number of trials already in the study, so a resumed study does not replay
    the random start-up suggestions of its first run, and the same sequence of commands still
    gives the same sequence of trials.

    Optuna's metric names are the objectives' names (``val_accuracy``, ``params``, ``latency``),
    so Optuna's CLI and optuna-dashboard label values by them.

    The study is a ``RetriesFirstStudy``: a queued retry runs before the other queued trials.

    Returns:
        (study, created): ``created`` is True for exactly one caller, even when several workers
        start at once (the storage's unique study name decides).

    Raises:
        StorageError: the existing study was created with other objectives, or its Optuna
            directions are not theirs (a ``minimize`` study made by plain Optuna).
        ValueError: an unknown sampler or pruner, or a pruner with several objectives.
    """
    objectives = tuple(objectives)
    check_pruner(pruner, objectives)
    storage = make_storage(storage_url, on_stale_trial)
    kwargs = {"storage": storage, "study_name": study_name,
              "sampler": make_sampler(seed, sampler),
              "pruner": make_pruner(pruner, epochs)}
    try:
        study = optuna.create_study(directions=directions(objectives), load_if_exists=False,
                                    **kwargs)
        study.set_user_attr(OBJECTIVE_ATTR, list(objectives))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        created = False
    mismatch = _objectives_mismatch(study, objectives)
    if mismatch:
        raise StorageError(f"study {study_name!r} {mismatch}")
    if study.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))
    existing_trials = len(study.get_trials(deepcopy=False))
    if seed is not None and existing_trials:
        study.sampler = make_sampler(seed + existing_trials, sampler)
    study = RetriesFirstStudy(study_name=study.study_name, storage=study._storage,
                              sampler=study.sampler, pruner=study.pruner)
    return study, created


def _objectives_mismatch(study: optuna.Study, objectives: tuple[str, ...]) -> str | None:
    """What differs between the study's objectives and ``objectives``, or None if nothing.

    Both the recorded objective names and Optuna's directions are compared: a study made by
    plain Optuna (no recorded names) with ``direction="minimize"`` has as many directions as
    val_accuracy but the wrong one (TPE would look for low accuracy, the median pruner prune good
    trials).
    """
    have = [d.name.lower() for d in study.directions]
    wanted = directions(objectives)
    # A study created a moment ago by another worker may not have its attribute yet.
    existing = study.user_attrs.get(OBJECTIVE_ATTR)
    if existing and tuple(existing) != objectives:
        return (f"optimizes {','.join(existing)}, not {','.join(objectives)}; pass the same "
                "--objective to resume it, or choose a new --study-name")
    if have != wanted:
        named = ",".join(existing) if existing else f"{len(have)} objective(s)"
        return (f"optimizes {named} to {','.join(have)}, not {','.join(objectives)} (to "
                f"{','.join(wanted)}): it was not made by nas-mnist for these objectives; "
                "choose a new --study-name")
    return None


def val_accuracy_of(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's val_accuracy: its (first) objective value, else the ``val_accuracy`` user attr.

    Works for single- and multi-objective studies (``trial.value`` raises for the latter).
    """
    if trial.values:
        return float(trial.values[0])
    value = trial.user_attrs.get("val_accuracy")
    return None if value is None else float(value)


def study_objectives(study: optuna.Study) -> tuple[str, ...]:
    """The objectives a study was created with (("val_accuracy",) for older studies)."""
    return tuple(study.user_attrs.get(OBJECTIVE_ATTR, ["val_accuracy"]))


