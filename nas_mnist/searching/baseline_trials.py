"""Seed the documented baselines into a study as its first trials, within the trial budget.

A baseline inside the active search space is enqueued with the params that reproduce it, so the
sampler learns from it like from any trial. A baseline outside the space is enqueued with the
shared params of its spec that lie in the space (optimizer, learning_rate, batch size, training
levers: the searched params that honestly apply to it, so parameter plots can place it); the
objective records them and trains its catalog spec as is. Both carry the user attribute
``baseline=<name>`` (and ``in_space``), which the objective copies to an MLflow tag.

Which baselines, in which order, and how many (``--baselines``):

- ``auto`` (the default): the baselines that are points of the active space, in tiers of equal
  reported accuracy, strongest tier first and cheapest first within a tier (``seeding_order``),
  taking at most half of ``--trials`` (``AUTO_SHARE``); the other half is left to the sampler.
- ``all``: every baseline, in the same order, as many as the budget allows.
- ``none``: no baseline. ``NAME,NAME``: those, in the given order, as many as the budget allows.

A study never holds more pending or counted trials than ``--trials``: baselines are enqueued only
while there is room, so none is left WAITING beyond the budget, and a re-run with a larger
``--trials`` adds the next ones. A baseline is never enqueued twice in one study.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from nas_mnist.architecture.baselines import BASELINES, Baseline, get_baseline, select_baselines
from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.trial_attributes import BASELINE_ATTR, IN_SPACE_ATTR

logger = logging.getLogger(__name__)

AUTO_SHARE = 0.5
"""``--baselines auto``: baselines take at most this fraction of ``--trials`` (rounded down)."""
# Trials that count towards --trials (COMPLETE, PRUNED) or will (RUNNING, WAITING). FAILED trials
# do not count: the search replaces them, so they take no room either.
_BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


EQUIVALENT_ACCURACY = 0.002
"""Reported test accuracies within this of the best (0.2 points) count as one tier.

Two test accuracies near 0.995 on MNIST's 10,000 test images each carry a binomial standard error
of sqrt(0.995 * 0.005 / 10,000) = 0.0007, so their difference carries 0.001: 0.002 is two
standard errors, the smallest gap that the notebooks' single runs can tell apart (and they used
different epochs and protocols besides)."""


def seeding_order(baselines: Sequence[Baseline] = BASELINES) -> tuple[Baseline, ...]:
    """Baselines in the order a search seeds them: strong tiers first, cheapest first in a tier.

    The first tier is every baseline whose reported test accuracy is within
    ``EQUIVALENT_ACCURACY`` (0.2 points) of the best one; within it, the fewest forward FLOPs
    (``nas_mnist.model.cost.forward_flops``) go first, ties to the higher accuracy, then catalog
    order. The next tier is formed the same way from the baselines left, and so on. In the
    catalog's default space this seeds ``s002_m1`` (8.7 MFLOPs, 0.9936) and ``s002_m5``
    (13.6 MFLOPs, 0.9938) first, and ``s002_m9`` (104 MFLOPs, the best reported, 0.9954) seventh.

    Why this order: TPE (Bergstra et al. 2011) models the best trials so far (its "good" group)
    against the rest, so the first completed trials decide where it starts to look. Starting from
    the designs with the best evidence (the accuracies the notebooks printed,
    ``shared/baselines.md``) warm-starts the search near proven architectures, as meta-learned
    initial designs do for Bayesian optimisation (Feurer et al. 2015, AAAI, "Initializing Bayesian
    hyperparameter optimization via meta-learning"). But accuracies within a tier are not
    distinguishable (``EQUIVALENT_ACCURACY``), while their training costs differ by a factor of
    up to 40 (seconds per image follow FLOPs, ``scripts/bench_seed_cost.py``): seeding the cheap
    ones of a tier first gives the sampler as much evidence per hour, and on a CPU many finished
    trials within the first hour instead of one or two large ones. The search re-measures every
    baseline at its own budget, so the order is a prior, not a ranking.

    Args:
        baselines: the baselines to order.

    Returns:
        The same baselines, reordered.
    """
    from nas_mnist.model.cost import forward_flops

    index = {b.name: i for i, b in enumerate(BASELINES)}
    left = list(baselines)
    ordered: list[Baseline] = []
    while left:
        floor = max(b.reported_test_accuracy for b in left) - EQUIVALENT_ACCURACY - 1e-9
        tier = [b for b in left if b.reported_test_accuracy >= floor]
        tier.sort(key=lambda b: (forward_flops(b.spec), -b.reported_test_accuracy,
                                 index.get(b.name, 0)))
        ordered.extend(tier)
        left = [b for b in left if b.reported_test_accuracy < floor]
    return tuple(ordered)


@dataclass(frozen=True)
class SeedingPlan:
    """Which baselines a search seeds, in which order, and how much of the budget they may take.

    Args:
        selection: the ``--baselines`` value it came from, e.g. "auto".
        baselines: the candidates, in seeding order.
        max_share: baselines (already seeded ones included) take at most
            ``floor(max_share * n_trials)`` trials.
        in_space_only: skip candidates that are not points of the active search space (the
            sampler learns nothing from those).
    """

    selection: str
    baselines: tuple[Baseline, ...]
    max_share: float = 1.0
    in_space_only: bool = False


def seeding_plan(selection: str) -> SeedingPlan:
    """The plan for a ``--baselines`` value.

    Args:
        selection: "auto" (in-space baselines in ``seeding_order``, at most ``AUTO_SHARE`` of
            the trials), "all" (every baseline, in ``seeding_order``), "none", or
            comma-separated names (in the given order). Keywords are case-insensitive.

    Returns:
        The ``SeedingPlan``.

    Raises:
        ValueError: unknown names, an empty list, or keywords mixed with names; the message says
            what was expected.
    """
    keyword = selection.strip().lower()
    if keyword == "auto":
        return SeedingPlan("auto", seeding_order(), max_share=AUTO_SHARE, in_space_only=True)
    if keyword == "all":
        return SeedingPlan("all", seeding_order())
    try:
        return SeedingPlan(selection, select_baselines(selection))
    except ValueError:
        if "auto" in [part.strip().lower() for part in selection.split(",")]:
            raise ValueError(
                f"baseline selection {selection!r} mixes 'auto' with names; use 'auto' alone"
            ) from None
        raise


def seeded_baselines(study: Any) -> set[str]:
    """Names of the baselines that already have a trial in ``study`` (in any state)."""
    return {
        t.user_attrs[BASELINE_ATTR]
        for t in study.get_trials(deepcopy=False)
        if BASELINE_ATTR in t.user_attrs
    }


def seed_baselines(
    study: Any,
    space: SearchSpace,
    baselines: SeedingPlan | Sequence[Baseline],
    n_trials: int | None = None,
) -> list[str]:
    """Enqueue the plan's next baselines that fit in the trial budget.

    Never enqueues a baseline that already has a trial in ``study`` (re-running or resuming a
    search never duplicates one). Callers with several workers hold a storage lock around this
    call, since it reads the study and then writes to it.

    Args:
        study: an ``optuna.Study``.
        space: the active search space (decides in-space or out-of-space).
        baselines: a ``SeedingPlan``, or baselines to seed in the given order (a plan without a
            share limit).
        n_trials: the search's ``--trials``. The study's counted and pending trials (complete,
            pruned, running, waiting) stay at or below it, and a plan's baselines at or below
            ``floor(max_share * n_trials)``. None: no budget (every candidate is enqueued).

    Returns:
        The names enqueued by this call, in order.
    """
    plan = baselines if isinstance(baselines, SeedingPlan) else SeedingPlan(
        "given", tuple(baselines)
    )
    present = seeded_baselines(study)
    limit = math.inf
    if n_trials is not None:
        held = len(study.get_trials(deepcopy=False, states=_BUDGET_STATES))
        share = math.floor(plan.max_share * n_trials) - len(present)
        limit = max(0, min(n_trials - held, share))
    enqueued: list[str] = []
    for baseline in plan.baselines:
        if len(enqueued) >= limit:
            break
        if baseline.name in present:
            continue
        params = space.params_for_spec(baseline.spec)
        if params is None and plan.in_space_only:
            continue
        # Outside the space: the shared params that apply to it (spec_for_trial records them).
        study.enqueue_trial(
            params if params is not None else space.shared_params_for_spec(baseline.spec),
            user_attrs={BASELINE_ATTR: baseline.name, IN_SPACE_ATTR: params is not None},
        )
        enqueued.append(baseline.name)
    if enqueued:
        logger.info(
            "seeded %d baseline trial(s) (--baselines %s, --trials %s): %s",
            len(enqueued), plan.selection, n_trials, ", ".join(enqueued),
        )
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
    else:  # outside the space: its shared params that lie in it, recorded as Optuna params
        honest = space.shared_params_for_spec(baseline.spec)
        if honest:  # none when the space's shared sections do not fit it at all
            space.record_shared_params(trial, baseline.spec, honest)
    return baseline.spec
