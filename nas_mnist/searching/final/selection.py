"""Which specs ``retrain`` turns into final models, and the final models it plans for them.

The sources, in order: the ``top_k`` best distinct complete trials of the study by val_accuracy
(``study.leaderboard.best_trials``; two trials with equal spec dicts count once, the better one
kept), then, for the comparison with hand-built models trained identically, the study's best
baseline trial (by its search val_accuracy) and the catalog baselines ``--baselines`` names. A
spec already among the sources is not added twice. The test split selects nothing.

Each source gives ``seeds`` final models (``FinalModel``), each named by a key unique in the final
study (``trial:12/seed:0``, ``baseline:s002_m9/seed:1``): a baseline is keyed by its name, so that
the same baseline keeps its key whether it came from the study's trials or the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.errors import InputError
from nas_mnist.searching.final.recipe import FinalRecipe
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_KEY_ATTR,
    FINAL_SEED_ATTR,
    RECIPE_ATTR,
    SOURCE_TRIAL_ATTR,
    SPEC_ATTR,
    trial_spec_data,
)


@dataclass(frozen=True)
class FinalSource:
    """A spec to retrain and where it comes from.

    Attributes:
        spec: the spec as searched (before the final recipe).
        source_trial: the search trial's number; None for a catalog baseline not in the study.
        baseline: the baseline's catalog name; None for a sampled spec.
        search_val_accuracy: its val_accuracy in the search (None for a catalog baseline).
    """

    spec: ArchitectureSpec
    source_trial: int | None = None
    baseline: str | None = None
    search_val_accuracy: float | None = None

    @property
    def name(self) -> str:
        """``trial:<number>`` or ``baseline:<name>``."""
        return f"baseline:{self.baseline}" if self.baseline else f"trial:{self.source_trial}"


@dataclass(frozen=True)
class FinalModel:
    """One planned final model: a source's spec under the recipe, with one training seed.

    Attributes:
        source: what it retrains.
        final_seed: which of the ``--seeds`` runs (0, 1, ...).
        spec: the final spec (``FinalRecipe.apply`` of the source's spec).
    """

    source: FinalSource
    final_seed: int
    spec: ArchitectureSpec

    @property
    def key(self) -> str:
        """Its ``FINAL_KEY_ATTR``: ``<source name>/seed:<final_seed>``."""
        return f"{self.source.name}/seed:{self.final_seed}"

    def user_attrs(self, recipe_record: dict[str, Any]) -> dict[str, Any]:
        """The attributes its final trial is enqueued with: key, seed, source, recipe, spec."""
        attrs: dict[str, Any] = {FINAL_KEY_ATTR: self.key, FINAL_SEED_ATTR: self.final_seed,
                                 RECIPE_ATTR: recipe_record, SPEC_ATTR: self.spec.to_dict()}
        if self.source.source_trial is not None:
            attrs[SOURCE_TRIAL_ATTR] = self.source.source_trial
        if self.source.baseline:
            attrs[BASELINE_ATTR] = self.source.baseline
        return attrs


def spec_identity(spec: ArchitectureSpec) -> str:
    """A spec's dict as canonical JSON: equal specs, equal strings."""
    return json.dumps(spec.to_dict(), sort_keys=True)


def _trial_source(trial: Any) -> FinalSource | None:
    """The source of a complete search trial, or None when it records no spec."""
    from nas_mnist.study.opening import val_accuracy_of

    data = trial_spec_data(trial)
    if not data:
        return None
    return FinalSource(ArchitectureSpec.from_dict(data), trial.number,
                       trial.user_attrs.get(BASELINE_ATTR) or None, val_accuracy_of(trial))


def top_distinct_sources(study: Any, k: int) -> list[FinalSource]:
    """The ``k`` best complete trials of ``study`` by val_accuracy with distinct specs, best
    first (ties: the earlier trial); fewer when the study has fewer distinct specs."""
    chosen: dict[str, FinalSource] = {}
    for trial in _ranked_trials(study):
        source = _trial_source(trial)
        if source is not None:
            chosen.setdefault(spec_identity(source.spec), source)
        if len(chosen) == k:
            break
    return list(chosen.values())


def _ranked_trials(study: Any) -> list[Any]:
    """Every complete trial of ``study``, best val_accuracy first (``best_trials``' order)."""
    from nas_mnist.study.leaderboard import best_trials

    return best_trials(study, len(study.get_trials(deepcopy=False)))


def best_baseline_source(study: Any, name: str | None = None) -> FinalSource | None:
    """The study's complete baseline trial (of baseline ``name``, or any) with the highest
    search val_accuracy, or None."""
    for trial in _ranked_trials(study):
        baseline = trial.user_attrs.get(BASELINE_ATTR)
        if baseline and name in (None, baseline):
            return _trial_source(trial)
    return None


def select_sources(study: Any, top_k: int, best_baseline: bool,
                   baselines: Sequence[str] = ()) -> list[FinalSource]:
    """The specs to retrain: the top ``top_k`` distinct trials, the best baseline trial (if
    ``best_baseline``), then the catalog ``baselines`` (each spec once).

    Raises:
        InputError: the study has no complete trial with a spec.
    """
    from nas_mnist.architecture.baselines import get_baseline

    sources = top_distinct_sources(study, top_k)
    if not sources:
        raise InputError(f"study {study.study_name!r} has no complete trial to retrain; run "
                         "nas-mnist search until a trial completes")
    extra = [best_baseline_source(study)] if best_baseline else []
    extra += [best_baseline_source(study, name) or FinalSource(get_baseline(name).spec,
                                                               baseline=name)
              for name in baselines]
    seen = {spec_identity(s.spec) for s in sources}
    names = {s.baseline for s in sources if s.baseline}
    for source in extra:
        if source is None or source.baseline in names or spec_identity(source.spec) in seen:
            continue
        sources.append(source)
        seen.add(spec_identity(source.spec))
        names.add(source.baseline)
    return sources


def plan_final_models(sources: Sequence[FinalSource], recipe: FinalRecipe,
                      seeds: int) -> list[FinalModel]:
    """``seeds`` final models per source, source by source."""
    return [FinalModel(source, s, recipe.apply(source.spec))
            for source in sources for s in range(seeds)]
