"""Resident memory of one search process across many small trials (issue: memory must not grow).

Runs N trials of a small conv spec in one process (in-memory Optuna study, SQLite MLflow store in
a temporary folder, random 28x28 images) and prints the resident set size after each trial.

Usage:
    python scripts/memory_across_trials.py --trials 30
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(trials: int, folder: str) -> list[float]:
    """RSS in MiB after each of ``trials`` trials."""
    import numpy as np
    import optuna

    from nas_mnist.architecture.spec import ArchitectureSpec, Conv, Dense, Flatten, MaxPool
    from nas_mnist.data import MnistArrays, make_splits
    from nas_mnist.searching.objective import Objective, ObjectiveConfig
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    arrays = MnistArrays(rng.integers(0, 256, (1100, 28, 28), dtype=np.uint8),
                         rng.integers(0, 10, 1100), rng.integers(0, 256, (100, 28, 28),
                                                                 dtype=np.uint8),
                         rng.integers(0, 10, 100), "random")
    data = make_splits(arrays, validation_size=100)
    tracker = Tracker(f"sqlite:///{folder}/m.db")
    experiment_id = tracker.experiment_id("memory")
    specs = [ArchitectureSpec(layers=(Conv(8 + n % 3, 3), MaxPool(2), Flatten(), Dense(16)))
             for n in range(3)]
    objective = Objective(None, data, StudyRuns(tracker, experiment_id), ObjectiveConfig(epochs=1),
                          spec_for_trial=lambda t: specs[t.number % 3])
    study = optuna.create_study(direction="maximize")
    sizes = []
    study.optimize(objective, n_trials=trials, callbacks=[lambda s, t: sizes.append(rss_mib())],
                   gc_after_trial=True)
    return sizes


def main() -> int:
    """Run ``--trials`` trials in this process; print the resident size after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    if args.trials < 6:
        parser.error("--trials must be at least 6 (growth is measured from trial 5)")
    with tempfile.TemporaryDirectory() as folder:
        sizes = measure(args.trials, folder)
    for n, size in enumerate(sizes):
        print(f"after trial {n:3d}: {size:7.1f} MiB")
    print(f"growth from trial 5 to trial {len(sizes) - 1}: {sizes[-1] - sizes[5]:+.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
