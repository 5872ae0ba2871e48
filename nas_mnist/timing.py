"""How long the running trial and the whole search will take, and a CPU-sized budget to suggest.

Plain Python, no printing: ``nas_mnist.console.RichProgress`` shows the estimates and the CLI
prints the suggestion.

The trial's ETA needs one finished epoch: mean seconds per epoch so far times the epochs left,
counted down with the clock between epochs, so that it keeps moving when an epoch takes minutes.
The search's projection is the running trial's remaining time plus the trials still to start
times the mean duration of the finished trials (complete or pruned; pruned ones are shorter, so
the mean carries the pruning rate); before a trial has finished, the running trial's projected
duration stands in for that mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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
) -> str | None:
    """One line suggesting a CPU-sized ``--epochs`` / ``--max-train-samples``, or None.

    Suggests only on a CPU, when the projection exceeds ``limit_seconds`` and a smaller budget
    exists (at most ``CPU_EPOCHS`` epochs on at most ``CPU_TRAIN_SAMPLES`` images). The new
    projection assumes seconds proportional to epochs x (training images +
    ``FIXED_IMAGES_PER_EPOCH``).

    Args:
        projected_seconds: the search's projected remaining seconds (``SearchClock``), or None.
        epochs: the search's ``--epochs``.
        max_train_samples: its ``--max-train-samples`` (None: all ``FULL_TRAIN_SAMPLES``).
        on_gpu: the Keras backend sees a GPU (then nothing is suggested).
        limit_seconds: the projection above which to suggest.

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
    scale = (new_epochs * (new_samples + FIXED_IMAGES_PER_EPOCH)) / (
        epochs * (samples + FIXED_IMAGES_PER_EPOCH)
    )
    return (
        f"This search projects to {format_duration(projected_seconds)} on a CPU; a CPU-sized "
        f"budget is --epochs {new_epochs} --max-train-samples {new_samples} "
        f"(about {format_duration(projected_seconds * scale)})."
    )
