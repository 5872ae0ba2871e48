"""Measure precise BN: seconds per re-estimation, and val_accuracy against the number of images.

    python scripts/bench_precise_bn.py --data ../shared/data/mnist.npz
    python scripts/bench_precise_bn.py --data ../shared/data/mnist.npz --accuracy

Cost: for each model, the fastest of ``--repeats`` re-estimations (after one untimed call that
builds and traces the probe models) on 1,000 and 4,000 training images, and the fastest of two
``predict`` passes over the 10,000 validation images, for scale.

Accuracy (``--accuracy``): each model trains 1 epoch on 10,000 images with Keras' moving
averages (precise BN off), then its BN statistics are re-estimated on 250 to 10,000 images (three
image subsets each) and the validation split is evaluated.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> int:
    """Measure the cost (and with ``--accuracy`` the accuracy) of precise BN; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST .npz or IDX folder")
    parser.add_argument("--models", default="s000_m2,s000_m1,s001_m1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true", help="val_accuracy against images")
    args = parser.parse_args()

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.data import load_mnist, make_splits
    from nas_mnist.model.builder import build_model
    from nas_mnist.model.precise_bn import (
        BatchNormStatistics,
        precise_bn_images,
        recompute_batch_norm_statistics,
    )
    from nas_mnist.model.training import TrainingOptions, train_spec

    arrays = load_mnist(args.data)
    if args.accuracy:
        data = make_splits(arrays, max_train_samples=10_000, seed=0)
        for name in args.models.split(","):
            result = train_spec(get_baseline(name).spec, data, 1, seed=0, evaluate_test=False,
                                options=TrainingOptions(precise_bn_images=0))
            row: dict = {"keras": round(result.val_accuracy, 4)}
            for n in (250, 1_000, 2_000, 4_000, 10_000):
                accuracies = []
                for seed in (0, 1, 2):
                    images = precise_bn_images(data.x_train, n, seed)
                    recompute_batch_norm_statistics(result.model, images)
                    accuracies.append(result.model.evaluate(data.x_val, data.y_val,
                                                            batch_size=1024, verbose=0)[1])
                row[n] = (round(float(np.mean(accuracies)), 4), round(float(np.std(accuracies)), 4))
            print(name, row, flush=True)
        return 0
    data = make_splits(arrays, seed=0)
    for name in args.models.split(","):
        model = build_model(get_baseline(name).spec)
        statistics = BatchNormStatistics(model)
        row = {}
        for n in (1_000, 4_000):
            images = data.x_train[:n]
            statistics.recompute(images)
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                statistics.recompute(images)
                seconds.append(time.perf_counter() - start)
            row[f"{n} images"] = round(min(seconds), 3)
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            model.predict(data.x_val, batch_size=1024, verbose=0)
            seconds.append(time.perf_counter() - start)
        row["validation predict"] = round(min(seconds), 3)
        print(name, f"{len(statistics.layers)} BN layers, {statistics.num_passes} passes", row,
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
