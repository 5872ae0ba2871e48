"""The final study's queue: enqueue exactly the final models that are missing, nothing twice.

Each planned final model (``selection.FinalModel``) is an enqueued trial of the final study
``<study>/final`` carrying its key (``FINAL_KEY_ATTR``). A key is done when a trial with it is
COMPLETE (or PRUNED), claimed while it is RUNNING or WAITING; only the other keys are enqueued,
so the same ``retrain`` call run again trains nothing, and an interrupted one enqueues only what
is missing. A retried trial (``study.recovery.requeue_trial``, after Ctrl-C, SIGKILL or a lost
tracking server) carries ``retry_of`` instead of the final attributes: ``final_attrs`` finds them
on the trial it retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import TrialState

from nas_mnist.errors import InputError
from nas_mnist.searching.final.recipe import recipe_differences
from nas_mnist.searching.final.selection import FinalModel
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_KEY_ATTR,
    FINAL_SEED_ATTR,
    REASON_ATTR,
    RECIPE_ATTR,
    RETRY_OF_ATTR,
    SOURCE_TRIAL_ATTR,
    SPEC_ATTR,
)

logger = logging.getLogger(__name__)

FINAL_ATTRS = (FINAL_KEY_ATTR, FINAL_SEED_ATTR, SOURCE_TRIAL_ATTR, BASELINE_ATTR, RECIPE_ATTR,
               SPEC_ATTR)
"""The attributes a final trial is enqueued with (a retry gets them from the trial it retries)."""

CLAIMED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
"""States in which a final trial's key needs no new trial."""


def final_attrs(trial: Any, by_number: Mapping[int, Any]) -> dict[str, Any]:
    """A final trial's ``FINAL_ATTRS``: its own, else those of the trial it retries
    (``retry_of``, followed back); ``{}`` for a trial that ``retrain`` did not enqueue."""
    seen = set()
    while trial is not None and trial.number not in seen:
        if FINAL_KEY_ATTR in trial.user_attrs:
            return {k: trial.user_attrs[k] for k in FINAL_ATTRS if k in trial.user_attrs}
        seen.add(trial.number)
        trial = by_number.get(trial.user_attrs.get(RETRY_OF_ATTR))
    return {}


def trials_by_key(final_study: Any) -> dict[str, list[Any]]:
    """The final study's trials grouped by key (``final_attrs``), in trial-number order."""
    trials = final_study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    grouped: dict[str, list[Any]] = {}
    for trial in trials:
        key = final_attrs(trial, by_number).get(FINAL_KEY_ATTR)
        if key is not None:
            grouped.setdefault(key, []).append(trial)
    return grouped


def check_recipe(final_study: Any | None, wanted: dict[str, Any], study_name: str) -> None:
    """Refuse a recipe other than the one the study's final models were trained with: final
    models of two recipes are not comparable, and a finished one is never trained again.

    Args:
        final_study: the final study, or None (no final model yet: any recipe goes).
        wanted: ``FinalRecipe.to_dict()`` of this call.
        study_name: the searched study, for the message.

    Raises:
        InputError: a complete final model has another recipe; the message says which fields.
    """
    if final_study is None:
        return
    for trial in final_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        differ = recipe_differences(dict(trial.user_attrs.get(RECIPE_ATTR) or {}), wanted)
        if differ:
            said = ", ".join(f"{k} {old!r} (asked: {new!r})" for k, (old, new) in differ.items())
            raise InputError(
                f"the final models of study {study_name!r} were trained with {said}; pass the "
                "same settings to finish them, or delete their study first (optuna "
                f"delete-study --study-name '{final_study.study_name}' --storage URL)")


def drop_unplanned(final_study: Any, keys: set[str]) -> list[int]:
    """Fail the WAITING final trials whose key is not planned now (an earlier call asked for
    more ``--top-k``, ``--seeds`` or ``--baselines``), so that only what is asked for trains.

    Returns:
        The numbers of the trials failed.
    """
    dropped = []
    storage = final_study._storage  # Optuna's storage API, as recovery uses it
    for key, trials in trials_by_key(final_study).items():
        for trial in trials:
            if key in keys or trial.state != TrialState.WAITING:
                continue
            storage.set_trial_user_attr(trial._trial_id, REASON_ATTR,
                                        "dropped: not asked for by the latest retrain")
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                dropped.append(trial.number)
    return dropped


def missing_final_models(final_study: Any, plan: Sequence[FinalModel]) -> list[FinalModel]:
    """The planned final models with no COMPLETE, PRUNED, RUNNING or WAITING trial."""
    claimed = {key for key, trials in trials_by_key(final_study).items()
               if any(t.state in CLAIMED_STATES for t in trials)}
    return [model for model in plan if model.key not in claimed]


def enqueue_final_models(final_study: Any, plan: Sequence[FinalModel],
                         recipe_record: dict[str, Any]) -> list[str]:
    """Enqueue one trial per missing final model (``missing_final_models``), in plan order.

    Call under a lock across the storage's workers (``study.locks.storage_lock``): it reads,
    then writes.

    Returns:
        The keys enqueued.
    """
    missing = missing_final_models(final_study, plan)
    for model in missing:
        final_study.enqueue_trial({}, user_attrs=model.user_attrs(recipe_record),
                                  skip_if_exists=False)
    if missing:
        logger.info("queued %d final model(s): %s", len(missing),
                    ", ".join(m.key for m in missing))
    return [m.key for m in missing]


def waiting_count(final_study: Any) -> int:
    """Trials of the final study waiting to run."""
    return len(final_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
