"""From search to champion: ``nas_mnist.retrain(...)`` and ``nas-mnist retrain`` run this.

The steps, in order: check every setting and read the study (``settings``; the storage and
the study must exist and the study must hold a complete trial); choose the specs
(``selection``: the top-k distinct trials by val_accuracy, the study's best baseline and
``--baselines``) and plan ``--seeds`` final models for each under the final recipe
(``recipe``); prepare this process as a search does (``prepare``: data, tracker, Keras);
open the final study ``<study>/final`` in the same storage, fail the trials of dead workers and
enqueue the missing final models (``queue``); train them one by one with the search's
trial machinery (``budget.run_trials`` with ``FinalObjective``), each in an MLflow run under the
study's parent run; register the champion and the ensemble in the Model Registry
(``publish``). Nothing is created before the checks pass; running the same call again
trains nothing and registers nothing new.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from nas_mnist.processes.quiet_start import quiet_libraries
from nas_mnist.searching.final.recipe import DEFAULT_FINAL_EPOCHS, FinalRecipe
from nas_mnist.searching.final.result import RetrainResult
from nas_mnist.searching.final.selection import FinalModel
from nas_mnist.searching.final.settings import DEFAULT_TOP_K, RetrainSettings

logger = logging.getLogger(__name__)

__all__ = ["RetrainResult", "RetrainSettings", "retrain", "run_retrain"]


@dataclass(frozen=True)
class _Job:
    """What the checks found: the study, the plan and the recipe, the data and the store."""

    settings: RetrainSettings
    study: Any
    plan: list[FinalModel]
    recipe: FinalRecipe
    data: str | os.PathLike | None
    tracking_uri: str
    mixed_precision: bool


@quiet_libraries()
def retrain(storage: str, study_name: str, top_k: int = DEFAULT_TOP_K,
            epochs: int = DEFAULT_FINAL_EPOCHS, seeds: int = 1,
            baselines: str | Sequence[str] | None = None, data: str | os.PathLike | None = None,
            max_train_samples: int | None = None, jobs: int = 1, augmentation: bool = True,
            cosine: bool = True, tracking_uri: str | None = None, progress: bool = True,
            seed: int = 0) -> RetrainResult:
    """Retrain a study's best specs from scratch at full budget; register the champion.

    The arguments are ``RetrainSettings``' fields (the CLI's flags): the ``top_k`` best
    distinct complete trials by val_accuracy and the study's best baseline (``baselines``: None
    or "auto"; "none"; or names to add) are each trained ``seeds`` times for ``epochs`` on all
    training images (or ``max_train_samples``) with the final recipe (the spec's own choices,
    plus augmentation and a cosine schedule unless ``augmentation``/``cosine`` are False;
    ``nas_mnist.searching.final.recipe``), keeping the best epoch by val_accuracy. The final
    models are the trials of the Optuna study ``<study_name>/final`` in ``storage``; the
    champion (best val_accuracy) is registered in MLflow as ``<study_name>`` with alias
    ``champion``, the mean-softmax ensemble with alias ``ensemble``.

    Example:
        >>> import nas_mnist
        >>> result = nas_mnist.retrain("sqlite:///s.db", "demo", top_k=2, epochs=2,
        ...                            max_train_samples=2000)
        >>> result.final_models[["key", "val_accuracy", "test_accuracy"]]
        >>> result.champion_uri  # 'models:/demo@champion', for mlflow.pyfunc.load_model

    Returns:
        A ``RetrainResult``.

    Raises:
        InputError: a bad value, a storage or study that does not exist, a study without a
            complete trial, final models of another recipe, bad data or tracking store;
            nothing is created before these checks pass.
        TrackingUnavailableError: the tracking server stopped answering (the interrupted final
            model is queued for one retry: run the same call again).
        RegistryError: the Model Registry refused a registration.
        KeyboardInterrupt: Ctrl-C; the running final model is closed and queued for a retry.
    """
    return run_retrain(RetrainSettings(
        storage=storage, study_name=study_name, top_k=top_k, epochs=epochs, seeds=seeds,
        baselines=baselines, data=data, max_train_samples=max_train_samples, jobs=jobs,
        augmentation=augmentation, cosine=cosine, tracking_uri=tracking_uri, progress=progress,
        seed=seed))


def run_retrain(settings: RetrainSettings, *, take_lock: bool = True) -> RetrainResult:
    """``retrain`` with its settings as one ``RetrainSettings`` (same behaviour and errors).

    Args:
        settings: the checked settings.
        take_lock: hold the storage file's search lock (``study.locks.one_search_per_storage``)
            while training; False for a caller that holds it already (a search's final stage:
            the lock is not reentrant).
    """
    import contextlib

    from nas_mnist.searching.prepare import prepare
    from nas_mnist.study.final_models import final_study_name
    from nas_mnist.study.locks import one_search_per_storage

    job = _check(settings)
    prepared = prepare(_search_settings(job))
    lock = (one_search_per_storage(settings.storage, final_study_name(settings.study_name))
            if take_lock else contextlib.nullcontext())
    with lock:
        final_study, runs = _open_final_study(job, prepared)
        done_before = _complete_keys(final_study, job.plan)
        _train_queue(job, prepared, final_study, runs)
        return _finish(job, prepared, final_study, runs, done_before)


def _check(settings: RetrainSettings) -> _Job:
    """Every check that reads: the tracking URI, the study, the specs, the recipe, the data.

    Raises:
        InputError: what is wrong (nothing is created).
    """
    from nas_mnist.searching.final.queue import check_recipe
    from nas_mnist.searching.final.selection import plan_final_models, select_sources
    from nas_mnist.searching.final.settings import parse_final_baselines
    from nas_mnist.study.final_models import load_final_study
    from nas_mnist.study.memory import study_data, study_tracker
    from nas_mnist.study.storage import load_existing_study
    from nas_mnist.tracking.tracker import validate_tracking_uri
    from nas_mnist.trial_attributes import SETTINGS_ATTR

    validate_tracking_uri(settings.tracking_uri)
    study = load_existing_study(settings.storage, settings.study_name)
    best_baseline, names = parse_final_baselines(settings.baselines)
    sources = select_sources(study, settings.top_k, best_baseline, names)
    searched = dict(study.user_attrs.get(SETTINGS_ATTR) or {})
    recipe = settings.recipe(batch_size=searched.get("batch_size"))
    check_recipe(load_final_study(study._storage, settings.study_name), recipe.to_dict(),
                 settings.study_name)
    data = study_data(study, settings.data)
    tracker = study_tracker(study, settings.tracking_uri)
    return _Job(settings, study, plan_final_models(sources, recipe, settings.seeds), recipe,
                data, tracker.tracking_uri, bool(searched.get("mixed_precision", False)))


def _search_settings(job: _Job) -> Any:
    """The ``SearchSettings`` that ``prepare`` reads: the study, its data and store, the
    recipe's training images and seed, the search's mixed precision."""
    from nas_mnist.searching.settings import SearchSettings

    settings = job.settings
    return SearchSettings(storage=settings.storage, study_name=settings.study_name,
                          tracking_uri=job.tracking_uri, data=job.data,
                          max_train_samples=settings.max_train_samples, seed=settings.seed,
                          epochs=settings.epochs, mixed_precision=job.mixed_precision,
                          progress=settings.progress)


def _open_final_study(job: _Job, prepared: Any) -> tuple[Any, Any]:
    """Open (or create) the final study, fail its dead workers' trials, enqueue the missing
    final models and attach the study's MLflow parent run.

    Returns:
        (final study, ``StudyRuns`` of the search study).
    """
    from nas_mnist.searching.final.queue import drop_unplanned, enqueue_final_models
    from nas_mnist.study.final_models import final_study_name
    from nas_mnist.study.locks import storage_lock
    from nas_mnist.study.opening import open_study
    from nas_mnist.study.recovery import handle_dead_trial, recover_dead_trials

    tracker, name = prepared.tracker, final_study_name(job.settings.study_name)

    def on_stale_trial(study: Any, trial: Any) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    final_study, _ = open_study(job.settings.storage, name, seed=job.settings.seed,
                                on_stale_trial=on_stale_trial, sampler="random", pruner="none",
                                epochs=job.recipe.epochs)
    for number in recover_dead_trials(final_study, tracker):
        logger.warning("final model trial %d was left running by a dead worker: marked failed, "
                       "queued for one retry", number)
    record = job.recipe.record(len(prepared.data.y_train))
    with storage_lock(job.settings.storage, f"final:{job.settings.study_name}"):
        dropped = drop_unplanned(final_study, {m.key for m in job.plan})
        enqueue_final_models(final_study, job.plan, record)
    if dropped:
        logger.info("dropped %d queued final model(s) this call does not ask for", len(dropped))
    return final_study, _attach_runs(job.study, final_study, tracker)


def _attach_runs(study: Any, final_study: Any, tracker: Any) -> Any:
    """The study's ``StudyRuns`` (its parent run reattached, RUNNING while this call trains);
    the final study records the same experiment, parent run and store, and runs an earlier
    call left RUNNING are closed."""
    from nas_mnist.study.recovery import close_orphan_runs
    from nas_mnist.tracking.tracker import StudyRuns
    from nas_mnist.trial_attributes import EXPERIMENT_ATTR, PARENT_RUN_ATTR, TRACKING_URI_ATTR

    parent_run_id = tracker.attach_parent_run(study)
    for name in (EXPERIMENT_ATTR, PARENT_RUN_ATTR, TRACKING_URI_ATTR):
        final_study.set_user_attr(name, study.user_attrs[name])
    closed = close_orphan_runs(final_study, tracker, parent_run_id)
    if closed:
        logger.warning("closed %d MLflow run(s) an earlier retrain left running", len(closed))
    return StudyRuns(tracker, study.user_attrs[EXPERIMENT_ATTR], parent_run_id)


def _complete_keys(final_study: Any, plan: Sequence[FinalModel]) -> set[str]:
    """The planned keys that have a complete final model."""
    from nas_mnist.searching.final.queue import trials_by_key

    grouped = trials_by_key(final_study)
    return {m.key for m in plan
            if any(t.state.name == "COMPLETE" for t in grouped.get(m.key, []))}


def _final_model_finished(progress: Any, plan: Sequence[FinalModel], study: Any,
                          trial: Any) -> None:
    """Optuna callback: one line on the final model that finished (``result.final_model_line``),
    where no bar is drawn."""
    from nas_mnist.searching.final.result import final_model_line

    try:
        complete = len(_complete_keys(study, plan))
    except Exception as exc:  # a storage hiccup must not stop the final stage, as in the search
        logger.debug("could not read the final study after trial %d: %s", trial.number, exc)
        return
    progress.log_line(final_model_line(trial, complete, len(plan)))


def _stop_when_queue_empty(study: Any, trial: Any) -> None:
    """Optuna callback: stop once no enqueued final model waits (the sampler never proposes)."""
    from nas_mnist.searching.final.queue import waiting_count

    if waiting_count(study) == 0:
        study.stop()


def _train_queue(job: _Job, prepared: Any, final_study: Any, runs: Any) -> None:
    """Train the waiting final models one by one; close the parent run.

    Raises:
        TrackingUnavailableError: the tracking server stopped answering.
        KeyboardInterrupt: Ctrl-C (the running final model is queued for one retry).
    """
    from nas_mnist.console import RichProgress
    from nas_mnist.searching.budget import count_claimed, run_trials
    from nas_mnist.searching.final.objective import FinalObjective
    from nas_mnist.searching.final.queue import waiting_count
    from nas_mnist.searching.objective import ObjectiveConfig

    waiting = waiting_count(final_study)
    logger.info("%s; final models: %d asked for, %d to train (%s)", prepared.devices,
                len(job.plan), waiting, job.recipe.describe())
    if waiting:
        _log_projection(job, prepared, final_study)
    status = "FINISHED"
    done = len(_complete_keys(final_study, job.plan))
    with RichProgress(len(job.plan), done, disable=not job.settings.progress) as progress:
        config = ObjectiveConfig(epochs=job.recipe.epochs, seed=job.recipe.seed)
        try:
            if waiting:  # finished, running (other workers') and waiting ones: all of them
                run_trials(final_study, FinalObjective(prepared.data, runs, config, progress),
                           count_claimed(final_study) + waiting,
                           callbacks=[partial(_final_model_finished, progress, job.plan),
                                      _stop_when_queue_empty])
        except BaseException:
            status = "KILLED"
            runs.tracker.fail_fast()
            raise
        finally:
            runs.tracker.finish_parent_run(runs.parent_run_id, status)
    if runs.tracker.unavailable is not None:
        raise runs.tracker.unavailable


def _log_projection(job: _Job, prepared: Any, final_study: Any) -> None:
    """Log the projected time of each final model still to train
    (``projection.final_models_line``); never fails the call."""
    from nas_mnist.searching.projection import final_models_line

    done = _complete_keys(final_study, job.plan)
    models = [(m.key, m.spec) for m in job.plan if m.key not in done]
    try:
        logger.info("%s", final_models_line(models, job.recipe.epochs, prepared.data))
    except Exception:  # a projection is a courtesy, as in the search
        logger.debug("no projection of the final models", exc_info=True)


def _finish(job: _Job, prepared: Any, final_study: Any, runs: Any,
            done_before: set[str]) -> RetrainResult:
    """Register the champion and the ensemble; the ``RetrainResult``."""
    from nas_mnist.searching.final.publish import publish
    from nas_mnist.searching.final.queue import trials_by_key
    from nas_mnist.searching.final.result import final_models_frame, spread_by_spec

    keys = [m.key for m in job.plan]
    grouped = trials_by_key(final_study)
    frame = final_models_frame(grouped, keys)
    done = frame[frame["state"].eq("complete")]
    members = [next(t for t in grouped[key] if t.number == number)
               for key, number in zip(done["key"], done["trial"], strict=True)]
    published = publish(final_study, job.settings.study_name, members, runs, prepared.data)
    search_values = {m.source.name: m.source.search_val_accuracy for m in job.plan}
    versions = [published.champion_version, published.ensemble_version]
    return RetrainResult(
        final_models=frame, by_spec=spread_by_spec(frame, search_values),
        champion=published.champion, recipe=job.recipe,
        trained=len(set(done["key"]) - done_before),
        missing=tuple(k for k in keys if k not in set(done["key"])),
        registered_model=job.settings.study_name if published.champion_version else None,
        champion_version=versions[0].version if versions[0] else None,
        ensemble_version=versions[1].version if versions[1] else None,
        ensemble_members=published.ensemble_members,
        ensemble_val_accuracy=published.ensemble_val_accuracy,
        ensemble_test_accuracy=published.ensemble_test_accuracy,
        study=job.study, final_study=final_study, parent_run_id=runs.parent_run_id,
        experiment_id=runs.experiment_id, tracking_uri=runs.tracker.tracking_uri)
