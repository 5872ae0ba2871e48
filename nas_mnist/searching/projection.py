"""The projection a search logs before its first trial: how long its seeds, its sampled trials
and its final stage will take on this device, and the CPU-sized advice.

Every queued trial's spec is known before it runs (a seeded baseline's catalog spec, a retry's
fixed params); the sampled trials are stood in for by ``SAMPLED_SPECS`` specs drawn at random
from the search space (what TPE's start-up trials are). Seconds per image follow forward FLOPs
(``nas_mnist.model.cost.forward_flops``) through a ``timing.CostModel``: measured on this
device on two specs, the cheapest and the median one by FLOPs, when the search is large enough
that a few seconds of measuring are worth it (``timing.CALIBRATE_ABOVE_SECONDS``); else this
project's CPU numbers (``timing.CPU_COST_MODEL``), so that quick searches start as fast as
before. Pruned trials end early, so the sampled trials' time is an upper bound.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.model.cost import forward_flops, limit_reason
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.timing import (
    CALIBRATE_ABOVE_SECONDS,
    CPU_COST_MODEL,
    CPU_EPOCHS,
    CPU_TRAIN_SAMPLES,
    FULL_TRAIN_SAMPLES,
    CostModel,
    SearchProjection,
    StageWork,
    format_duration,
    suggest_cpu_budget,
)
from nas_mnist.trial_attributes import BASELINE_ATTR

logger = logging.getLogger(__name__)

SAMPLED_SPECS = 64
"""Specs drawn at random from the space to stand in for the sampled trials (a few ms each)."""


def queued_specs(study: Any, space: SearchSpace) -> list[tuple[ArchitectureSpec | None, bool]]:
    """(spec, is a seed) of each WAITING trial: a baseline's catalog spec, or the spec of its
    fixed params (a retry); None where the params give no valid spec (pruned at once)."""
    from optuna.trial import FixedTrial, TrialState

    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        name = trial.user_attrs.get(BASELINE_ATTR)
        try:
            spec = (get_baseline(name).spec if name
                    else space.suggest(FixedTrial(trial.system_attrs.get("fixed_params", {}))))
        except (SpecError, ValueError):
            spec = None
        out.append((spec, bool(name)))
    return out


def sampled_specs(space: SearchSpace, count: int = SAMPLED_SPECS,
                  seed: int = 0) -> list[ArchitectureSpec | None]:
    """``count`` specs drawn by Optuna's ``RandomSampler`` (None: an impossible one)."""
    import optuna

    quiet = logging.getLogger("optuna.storages._in_memory")  # "A new study created in memory"
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        quiet.setLevel(level)
    out = []
    for _ in range(count):
        try:
            out.append(space.suggest(study.ask()))
        except SpecError:
            out.append(None)
    return out


def _flops(spec: ArchitectureSpec | None, settings: Any) -> float:
    """A trial's forward FLOPs; 0 for one pruned before training (impossible, or over
    ``settings``' ``--max-params`` or ``--max-mflops``)."""
    if spec is None or limit_reason(spec, settings.max_params, settings.max_mflops):
        return 0.0
    return float(forward_flops(spec))


def measure_cost_model(specs: list[ArchitectureSpec], data: Any) -> CostModel:
    """A ``CostModel`` fitted to the cheapest and the median distinct spec by FLOPs (one spec
    when all are equal, e.g. the ``--seeds`` final models of one spec), measured on this
    process's device (``model.cost.measure_step_cost``) on ``data``'s training images; Keras'
    state is cleared afterwards."""
    from nas_mnist.model.cost import measure_step_cost
    from nas_mnist.model.training import EVAL_BATCH_SIZE, release_memory

    distinct = [spec for i, spec in enumerate(specs) if spec not in specs[:i]]
    ranked = sorted(distinct, key=forward_flops)
    picked = [ranked[0]] + ([ranked[len(ranked) // 2]] if len(ranked) > 1 else [])
    points = []
    for spec in picked:
        cost = measure_step_cost(spec, data.x_train, data.y_train,
                                 eval_batch_size=EVAL_BATCH_SIZE)
        points.append((cost.flops, cost.train, cost.evaluate))
    release_memory()
    flops = " and ".join(f"{p[0] / 1e6:.1f}" for p in points)
    return CostModel.fit(points, f"measured on {'specs' if len(points) > 1 else 'a spec'} of "
                                 f"{flops} MFLOPs")


@dataclass(frozen=True)
class QueuedWork:
    """The forward FLOPs of the trials a search has left, and their specs (to measure).

    Attributes:
        seeds: each queued seed's FLOPs (0: pruned before training).
        sampled: each other trial's FLOPs: queued retries, then the trials the sampler will
            propose (each the mean of the drawn specs).
        specs: the queued and drawn specs that train (the candidates to measure).
    """

    seeds: tuple[float, ...]
    sampled: tuple[float, ...]
    specs: tuple[ArchitectureSpec, ...]

    def stages(self, data: Any, epochs: int, train_images: int) -> list[StageWork]:
        """The seeds and the sampled trials as ``StageWork`` of ``epochs`` epochs on
        ``train_images`` images (at most ``data``'s), without empty ones."""
        from nas_mnist.model.precise_bn import PRECISE_BN_IMAGES

        work = dict(epochs=epochs, train_images=min(train_images, data.num_train),
                    eval_images=data.num_val + PRECISE_BN_IMAGES, test_images=data.num_test)
        stages = [StageWork("seed", self.seeds, **work),
                  StageWork("sampled trial", self.sampled, **work, note="less when pruned")]
        return [stage for stage in stages if stage.flops]


def queued_work(settings: Any, space: SearchSpace, study: Any) -> QueuedWork:
    """What ``study`` has left to train under ``settings`` (``--trials``, ``--max-params``,
    ``--max-mflops``)."""
    from nas_mnist.study.trial_counts import count_finished

    queued = queued_specs(study, space)
    sampled = max(0, settings.trials - count_finished(study) - len(queued))
    drawn = sampled_specs(space, seed=settings.seed) if sampled else []
    drawn_flops = [_flops(s, settings) for s in drawn]
    mean = statistics.fmean(drawn_flops) if drawn_flops else 0.0
    return QueuedWork(
        seeds=tuple(_flops(s, settings) for s, seed in queued if seed),
        sampled=(*[_flops(s, settings) for s, seed in queued if not seed],
                 *[mean] * sampled),
        specs=tuple(s for s in [*(s for s, _ in queued), *drawn] if s is not None),
    )


def final_stage(models: int, epochs: int, flops: float, data: Any) -> StageWork:
    """The final stage's work: ``models`` trainings of ``epochs`` epochs on every training image
    (``timing.FULL_TRAIN_SAMPLES``) of a spec of ``flops`` forward FLOPs (the specs it retrains
    are not known before the search)."""
    from nas_mnist.model.precise_bn import PRECISE_BN_IMAGES

    return StageWork("final model", (flops,) * models, epochs, FULL_TRAIN_SAMPLES,
                     data.num_val + PRECISE_BN_IMAGES, data.num_test)


def final_models_line(models: list[tuple[str, ArchitectureSpec]], epochs: int, data: Any) -> str:
    """One line with each final model's projected time and their total, before ``retrain``
    trains them, e.g. "final models projected on the CPU (...): s000_m1/seed:0 ~10 min,
    trial:59/seed:0 ~2 h 50 min; in all ~3 h 00 min".

    Each model is ``epochs`` epochs on ``data``'s training images (``--max-train-samples``
    already applied), its validation and precise-BN images each epoch and one test evaluation,
    at its spec's forward FLOPs (the recipe's augmentation layers are not counted). The device
    is measured on the specs (``measure_cost_model``, a few seconds) on a GPU or when this
    project's CPU numbers project ``CALIBRATE_ABOVE_SECONDS`` or more.

    Args:
        models: (key, spec) of each final model still to train, non-empty.
        epochs: epochs per final model.
        data: the loaded ``DataSplits``.
    """
    from nas_mnist.model.devices import gpu_available
    from nas_mnist.model.precise_bn import PRECISE_BN_IMAGES

    flops = [float(forward_flops(spec)) for _, spec in models]

    def stage(cost: CostModel) -> list[float]:
        return [StageWork("final model", (f,), epochs, data.num_train,
                          data.num_val + PRECISE_BN_IMAGES, data.num_test).seconds(cost)
                for f in flops]

    on_gpu = gpu_available()
    cost, how = CPU_COST_MODEL, CPU_COST_MODEL.source
    if on_gpu or sum(stage(cost)) >= CALIBRATE_ABOVE_SECONDS:
        start = time.perf_counter()
        cost = measure_cost_model([spec for _, spec in models], data)
        how = f"{cost.source}, in {time.perf_counter() - start:.0f} s"
    seconds = stage(cost)
    each = ", ".join(f"{key} ~{format_duration(s)}"
                     for (key, _), s in zip(models, seconds, strict=True))
    return (f"final models projected on the {'GPU' if on_gpu else 'CPU'} ({how}): {each}; in "
            f"all ~{format_duration(sum(seconds))}")


def project_search(settings: Any, prepared: Any, study: Any, *, final_models: int = 0,
                   final_epochs: int | None = None) -> tuple[SearchProjection, str | None]:
    """The projection of what the search has left, and the CPU-sized advice (or None).

    Args:
        settings: the validated ``SearchSettings``.
        prepared: what ``prepare.prepare`` loaded (space, data).
        study: the opened, seeded study.
        final_models: models the final stage will train after the search (0: no final stage),
            each projected at the mean FLOPs of the search's trials that train.
        final_epochs: their epochs (None: ``settings.epochs``).

    Returns:
        (projection, advice): the advice is ``timing.suggest_cpu_budget``'s line.
    """
    from nas_mnist.model.devices import gpu_available

    on_gpu = gpu_available()
    work = queued_work(settings, prepared.space, study)
    training = [f for f in (*work.seeds, *work.sampled) if f > 0]
    last = []
    if final_models and training:
        last = [final_stage(final_models, final_epochs or settings.epochs,
                            statistics.fmean(training), prepared.data)]
    stages = work.stages(prepared.data, settings.epochs, prepared.data.num_train) + last
    cost, measured = CPU_COST_MODEL, 0.0
    if work.specs and (on_gpu or SearchProjection(tuple(stages), cost).total_seconds
                       >= CALIBRATE_ABOVE_SECONDS):
        start = time.perf_counter()
        cost = measure_cost_model(list(work.specs), prepared.data)
        measured = time.perf_counter() - start
    projection = SearchProjection(tuple(stages), cost, "GPU" if on_gpu else "CPU", measured,
                                  settings.jobs)
    small = work.stages(prepared.data, min(settings.epochs, CPU_EPOCHS), CPU_TRAIN_SAMPLES)
    advice = suggest_cpu_budget(
        projection.total_seconds, epochs=settings.epochs,
        max_train_samples=settings.max_train_samples, on_gpu=on_gpu,
        cpu_sized_seconds=SearchProjection(tuple(small + last), cost).total_seconds)
    return projection, advice


def log_projection(settings: Any, prepared: Any, study: Any, *, final_models: int = 0,
                   final_epochs: int | None = None) -> tuple[str | None, SearchProjection | None]:
    """Log the projection line and the CPU-sized advice (``project_search``, same arguments);
    never fails the search (a projection that cannot be made is logged at debug level).

    Returns:
        (advice line or None, the projection or None when none could be made).
    """
    try:
        projection, advice = project_search(settings, prepared, study,
                                            final_models=final_models, final_epochs=final_epochs)
    except Exception:  # a projection is a courtesy: never stop a search for it
        logger.debug("no projection", exc_info=True)
        return None, None
    logger.info("%s", projection.describe())
    if advice:
        logger.info("%s", advice)
    return advice, projection
