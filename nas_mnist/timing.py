"""How long the running trial and the whole search will take, and a CPU-sized budget to suggest.

Plain Python, no printing: ``nas_mnist.console.RichProgress`` shows the estimates and the CLI
prints the suggestion.

The trial's ETA needs one finished epoch: mean seconds per epoch so far times the epochs left,
counted down with the clock between epochs, so that it keeps moving when an epoch takes minutes.
The search's projection is the running trial's remaining time plus the trials still to start
times the mean duration of the finished trials (complete or pruned; pruned ones are shorter, so
the mean carries the pruning rate); before a trial has finished, the running trial's projected
duration stands in for that mean.

Before the first trial, the projection comes from each trial's forward FLOPs instead
(``CostModel``, ``StageWork``, ``SearchProjection``; ``nas_mnist.searching.projection`` gathers
the specs and measures the device).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CPU_PROJECTION_LIMIT_SECONDS = 2 * 3600
"""Above this projected search time on a CPU, ``suggest_cpu_budget`` suggests a smaller budget."""

CPU_EPOCHS = 3
CPU_TRAIN_SAMPLES = 10_000
"""A CPU-sized budget: 3 epochs on 10,000 training images (issue 11's CPU-sized search,
``--epochs 3 --max-train-samples 10000``; ``s000_m1`` takes about 5 s per such epoch on this
project's 2-core CPU, ``docs/benchmarks.md``)."""

FIXED_IMAGES_PER_EPOCH = 6_000
"""Per-epoch cost that does not scale with the training images (validation on 10,000 images,
precise BN, callbacks), in training-image equivalents. Fitted to ``docs/benchmarks.md``:
``s000_m1`` took 5.0 s per epoch on 10,000 images and 17.5 s on 50,000, i.e. 0.31 ms per image
plus 1.9 s, and 1.9 s / 0.31 ms is about 6,000 images."""

FULL_TRAIN_SAMPLES = 50_000
"""Training images without ``--max-train-samples`` (60,000 minus the 10,000 validation images)."""


def format_duration(seconds: float) -> str:
    """Seconds as "45 s", "12 min" or "3 h 05 min" (rounded up to the unit shown)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{math.ceil(seconds)} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class SearchClock:
    """Tracks trial and epoch ends and projects the running trial's and the search's end.

    Args:
        now: a monotonic clock in seconds (``time.monotonic``); tests pass a fake one.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.trial_seconds: list[float] = []
        self._trial_start: float | None = None
        self._epochs = 0
        self._epoch_ends: list[float] = []

    def trial_started(self, epochs: int) -> None:
        """A trial of ``epochs`` epochs starts now."""
        self._trial_start = self.now()
        self._epochs = epochs
        self._epoch_ends = []

    def epoch_ended(self) -> None:
        """The running trial finished an epoch (validation included)."""
        self._epoch_ends.append(self.now())

    def trial_ended(self, counted: bool = True) -> None:
        """The running trial ended; ``counted``: it counts towards the search's trials
        (complete or pruned), so its duration enters the mean."""
        if self._trial_start is not None and counted:
            self.trial_seconds.append(self.now() - self._trial_start)
        self._trial_start = None
        self._epoch_ends = []

    @property
    def seconds_per_epoch(self) -> float | None:
        """Mean seconds per finished epoch of the running trial; None before the first."""
        if self._trial_start is None or not self._epoch_ends:
            return None
        return (self._epoch_ends[-1] - self._trial_start) / len(self._epoch_ends)

    def trial_remaining(self) -> float | None:
        """Seconds until the running trial ends (all its epochs); None before its first epoch
        ended or when no trial runs. Counts down between epochs; never below 0."""
        per_epoch = self.seconds_per_epoch
        if per_epoch is None:
            return None
        left = max(0, self._epochs - len(self._epoch_ends))
        end = self._epoch_ends[-1] + per_epoch * left
        return max(0.0, end - self.now())

    def search_remaining(self, trials_not_started: int) -> float | None:
        """Seconds until the search ends: the running trial's rest plus ``trials_not_started``
        trials of the mean finished-trial duration. None until there is something to go by
        (a finished trial, or the running trial's first epoch)."""
        running = self.trial_remaining()
        if self.trial_seconds:
            mean = sum(self.trial_seconds) / len(self.trial_seconds)
        elif running is not None and self._trial_start is not None:
            mean = self.now() - self._trial_start + running
        else:
            return None
        return (running or 0.0) + max(0, trials_not_started) * mean


def suggest_cpu_budget(
    projected_seconds: float | None,
    *,
    epochs: int,
    max_train_samples: int | None,
    on_gpu: bool,
    limit_seconds: float = CPU_PROJECTION_LIMIT_SECONDS,
    cpu_sized_seconds: float | None = None,
) -> str | None:
    """One line suggesting a CPU-sized ``--epochs`` / ``--max-train-samples``, or None.

    Suggests only on a CPU, when the projection exceeds ``limit_seconds`` and a smaller budget
    exists (at most ``CPU_EPOCHS`` epochs on at most ``CPU_TRAIN_SAMPLES`` images). The new
    projection is ``cpu_sized_seconds`` when given (the projection before the first trial
    computes it per spec), else it assumes seconds proportional to epochs x (training images +
    ``FIXED_IMAGES_PER_EPOCH``).

    Args:
        projected_seconds: the search's projected remaining seconds (``SearchClock``), or None.
        epochs: the search's ``--epochs``.
        max_train_samples: its ``--max-train-samples`` (None: all ``FULL_TRAIN_SAMPLES``).
        on_gpu: the Keras backend sees a GPU (then nothing is suggested).
        limit_seconds: the projection above which to suggest.
        cpu_sized_seconds: the same search's projected seconds at the CPU-sized budget, or None.

    Returns:
        e.g. "This search projects to 5 h 20 min on a CPU; a CPU-sized budget is --epochs 3
        --max-train-samples 10000 (about 38 min).", or None.
    """
    if on_gpu or projected_seconds is None or projected_seconds <= limit_seconds:
        return None
    samples = max_train_samples or FULL_TRAIN_SAMPLES
    new_epochs, new_samples = min(epochs, CPU_EPOCHS), min(samples, CPU_TRAIN_SAMPLES)
    if (new_epochs, new_samples) == (epochs, samples):
        return None
    if cpu_sized_seconds is None:
        cpu_sized_seconds = projected_seconds * (new_epochs * (
            new_samples + FIXED_IMAGES_PER_EPOCH)) / (epochs * (samples + FIXED_IMAGES_PER_EPOCH))
    return (
        f"This search projects to {format_duration(projected_seconds)} on a CPU; a CPU-sized "
        f"budget is --epochs {new_epochs} --max-train-samples {new_samples} "
        f"(about {format_duration(cpu_sized_seconds)})."
    )


# ---------------------------------------------------------------------------------------------
# The projection before the first trial: seconds per image from FLOPs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """Seconds per image as an affine function of a spec's forward FLOPs, for training and for
    evaluation: ``fixed + per_gflop * flops / 1e9``.

    The fixed part is what a step costs whatever the model (Python and kernel launches, shared
    by a batch); the slope is the arithmetic. ``fit`` makes one from specs measured on the device
    (``nas_mnist.model.cost.measure_step_cost``); ``CPU_COST_MODEL`` is this project's 2-core
    CPU.

    Attributes:
        train_fixed, train_per_gflop: seconds per training image.
        eval_fixed, eval_per_gflop: seconds per evaluated image (validation, precise BN, test).
        source: where the numbers come from, for the projection's line.
    """

    train_fixed: float
    train_per_gflop: float
    eval_fixed: float
    eval_per_gflop: float
    source: str

    def train_seconds(self, flops: float) -> float:
        """Seconds per training image of a spec of ``flops`` forward FLOPs."""
        return self.train_fixed + self.train_per_gflop * flops / 1e9

    def eval_seconds(self, flops: float) -> float:
        """Seconds per evaluated image of a spec of ``flops`` forward FLOPs."""
        return self.eval_fixed + self.eval_per_gflop * flops / 1e9

    @classmethod
    def fit(cls, points: Sequence[tuple[float, float, float]], source: str) -> CostModel:
        """The line through measured points ``(flops, train s/image, eval s/image)``.

        With two or more points: the least-squares line, its slope and intercept kept >= 0.
        With one point (or equal FLOPs): proportional to FLOPs, no fixed part.

        Raises:
            ValueError: no points.
        """
        if not points:
            raise ValueError("a cost model needs at least one measured spec")
        flops = [p[0] / 1e9 for p in points]
        lines = [_line(flops, [p[i] for p in points]) for i in (1, 2)]
        return cls(lines[0][0], lines[0][1], lines[1][0], lines[1][1], source)


def _line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through (x, y), both >= 0; through the
    origin when the x are all equal."""
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    spread = sum((v - mean_x) ** 2 for v in x)
    if spread == 0:
        return 0.0, (mean_y / mean_x if mean_x > 0 else 0.0)
    slope = max(0.0, sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)) / spread)
    intercept = mean_y - slope * mean_x
    if intercept < 0:  # a line through the origin instead
        return 0.0, sum(a * b for a, b in zip(x, y, strict=True)) / sum(a * a for a in x)
    return intercept, slope


CPU_COST_MODEL = CostModel(
    train_fixed=2e-4, train_per_gflop=2e-2, eval_fixed=2e-5, eval_per_gflop=7e-3,
    source="FLOPs at this project's 2-core CPU's speed, not measured here",
)
"""This project's shared 2-core CPU, rounded from four fits (``scripts/bench_seed_cost.py`` over the
20 seeds of ``--baselines auto``, twice, and two projections' measurements): 0.12 to 0.48 ms per
training image plus 14 to 31 ms per GFLOP, 0 to 0.12 ms per evaluated image plus 3 to 9 ms per
GFLOP, as the machine's other load varied. Used when a search is small enough that measuring the
device would cost a sizeable share of it (``CALIBRATE_ABOVE_SECONDS``)."""

CALIBRATE_ABOVE_SECONDS = 600.0
"""A search whose ``CPU_COST_MODEL`` projection is above this is measured on its device first
(a few seconds); below it, the projection comes from ``CPU_COST_MODEL`` alone, so that quick
searches start as fast as before."""

FIT_LOOP_FACTOR = 1.2
"""A trial's ``fit`` and ``evaluate`` over bare training and evaluation steps (the input pipeline,
callbacks, metrics, precise BN's probe). On this project's CPU, 3-epoch trials of 10,000 images
took 1.06 (``s002_m9``, 156 s) to 1.30 (``s002_m1``, 22 s) times what ``measure_step_cost``
measured just before them in the same process; with this factor the projections were 176 s and
20 s."""

TRIAL_OVERHEAD_SECONDS = 1.0
"""Seconds a trial costs besides its images: building the model, its MLflow run, logging the
model (``docs/benchmarks.md``: 0.3 s of per-trial overhead and 0.1 to 0.3 s of model logging)."""


@dataclass(frozen=True)
class StageWork:
    """The trials of one stage of a search to project (seeds, sampled trials, final models).

    Attributes:
        name: one trial of it, e.g. "seed", "sampled trial", "final model" (an "s" is added
            for several).
        flops: each trial's forward FLOPs (0 for a trial that ends before training).
        epochs: epochs per trial.
        train_images: training images per epoch.
        eval_images: evaluated images per epoch (validation and precise BN).
        test_images: images of the one test evaluation per trial.
        note: what the projection leaves out, e.g. "less when pruned".
    """

    name: str
    flops: tuple[float, ...]
    epochs: int
    train_images: int
    eval_images: int
    test_images: int
    note: str = ""

    def seconds(self, cost: CostModel) -> float:
        """Projected seconds of all its trials, one after another, under ``cost``: each trial's
        images at ``cost``'s seconds per image times ``FIT_LOOP_FACTOR``, plus
        ``TRIAL_OVERHEAD_SECONDS``."""
        return sum(
            FIT_LOOP_FACTOR * (self.epochs * (self.train_images * cost.train_seconds(f)
                                              + self.eval_images * cost.eval_seconds(f))
                               + self.test_images * cost.eval_seconds(f))
            + TRIAL_OVERHEAD_SECONDS
            for f in self.flops
        )


@dataclass(frozen=True)
class SearchProjection:
    """How long a search's stages will take, projected before its first trial.

    Attributes:
        stages: the stages with work (``StageWork``), in order.
        cost: the ``CostModel`` used.
        device: "CPU" or "GPU".
        measured_seconds: seconds spent measuring the device (0: ``CPU_COST_MODEL``).
        jobs: trials at once (``--jobs``); the times are for one at a time.
    """

    stages: tuple[StageWork, ...]
    cost: CostModel
    device: str = "CPU"
    measured_seconds: float = 0.0
    jobs: int = 1

    @property
    def total_seconds(self) -> float:
        """Projected seconds of every stage, one trial at a time."""
        return sum(stage.seconds(self.cost) for stage in self.stages)

    def describe(self) -> str:
        """One line, e.g. "projected on the CPU before the first trial (...): 20 seeds ~1 h 05 min,
        80 sampled trials ~3 h 10 min (less when pruned); in all ~4 h 15 min"."""
        parts = []
        for stage in self.stages:
            note = f" ({stage.note})" if stage.note else ""
            name = stage.name if len(stage.flops) == 1 else f"{stage.name}s"
            parts.append(f"{len(stage.flops)} {name} ~"
                         f"{format_duration(stage.seconds(self.cost))}{note}")
        how = self.cost.source + (f", in {self.measured_seconds:.0f} s"
                                  if self.measured_seconds else "")
        jobs = f"; --jobs {self.jobs} runs {self.jobs} at once" if self.jobs > 1 else ""
        return (f"projected on the {self.device} before the first trial ({how}): "
                f"{', '.join(parts) or 'nothing left to train'}; in all "
                f"~{format_duration(self.total_seconds)}, one trial at a time{jobs}")
