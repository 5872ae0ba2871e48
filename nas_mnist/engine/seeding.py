"""Seed the documented baselines into a study as its first trials, once per study.

A baseline inside the active search space is enqueued with the params that reproduce it, so the
sampler learns from it like from any trial. A baseline outside the space is enqueued with no
params; the objective trains its catalog spec as is. Both carry the user attribute
``baseline=<name>`` (and ``in_space``), which the objective copies to an MLflow tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nas_mnist.architecture.baselines import Baseline, get_baseline
from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.trial_attributes import BASELINE_ATTR, IN_SPACE_ATTR

logger = logging.getLogger(__name__)



def seeded_baselines(study: Any) -> set[str]:
    """Names of the baselines that already have a trial in ``study`` (in any state)."""
    return {
        t.user_attrs[BASELINE_ATTR]
        for t in study.get_trials(deepcopy=False)
        if BASELINE_ATTR in t.user_attrs
    }


def seed_baselines(study: Any, space: SearchSpace, baselines: Sequence[Baseline]) -> list[str]:
    """Enqueue each baseline that has no trial in ``study`` yet.

    Re-running or resuming a search never duplicates a baseline: names already in the study are
    skipped.

    Args:
        study: an ``optuna.Study``.
        space: the active search space (decides in-space or out-of-space).
        baselines: the baselines to seed, in order.

    Returns:
        The names enqueued by this call.
    """
    present = seeded_baselines(study)
    enqueued = []
    for baseline in baselines:
        if baseline.name in present:
            continue
        params = space.params_for_spec(baseline.spec)
        study.enqueue_trial(
            params or {},
            user_attrs={BASELINE_ATTR: baseline.name, IN_SPACE_ATTR: params is not None},
        )
        enqueued.append(baseline.name)
    if enqueued:
        logger.info("seeded %d baseline trial(s): %s", len(enqueued), ", ".join(enqueued))
    return enqueued


def spec_for_trial(trial: Any, space: SearchSpace) -> ArchitectureSpec:
    """The spec a trial trains: its baseline's catalog spec, or a sample from ``space``.

    An in-space baseline still goes through ``space.suggest`` so that its params are recorded on
    the trial (the sampler learns from them); the result must equal the catalog spec.

    Raises:
        SpecError: the sampled architecture is impossible (the objective prunes the trial).
        RuntimeError: an in-space baseline's params no longer reproduce its spec (the space file
            changed after seeding).
    """
    name = trial.user_attrs.get(BASELINE_ATTR)
    if not name:
        return space.suggest(trial)
    baseline = get_baseline(name)
    if trial.user_attrs.get(IN_SPACE_ATTR):
        sampled = space.suggest(trial)
        if sampled != baseline.spec:
            raise RuntimeError(
                f"baseline {name}'s enqueued params no longer give its spec in "
                f"{space.describe()}; was the space file changed?"
            )
    return baseline.spec
