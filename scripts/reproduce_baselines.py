"""Train documented baselines with their notebook recipes; tabulate reported vs reproduced accuracy.

Each baseline trains on the 50,000/10,000 train/validation split (the notebooks trained on all
60,000 and validated on the test set; here the test set is only evaluated, once, at the end) with
its own optimizer, learning_rate and batch size, for its notebook's epochs unless ``--epochs``
says otherwise. The best epoch by val_accuracy is kept and evaluated on the test set.

Usage:
    python scripts/reproduce_baselines.py --models s004_linear,s001_m2,s003_m1 \
        --data ../shared/data/mnist.npz --out docs/baselines_reproduced.md

Writes a markdown table (and a CSV next to it) with: name, params, epochs run, training images,
reported test_accuracy, reproduced val_accuracy and test_accuracy, their difference and seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="all, or NAME,NAME (see nas-mnist "
                        "baselines list)")
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs")
    parser.add_argument("--max-train-samples", type=int, help="stratified training subset")
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: $NAS_MNIST_DATA or "
                        "Keras' download)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/baselines_reproduced.md", help="markdown table; "
                        "a .csv with the same stem is written too")
    return parser.parse_args(argv)


def reproduce(baseline: Any, data: Any, epochs: int | None, seed: int) -> dict[str, Any]:
    """Train ``baseline`` (a ``Baseline``) on ``data`` (``Splits``) for ``epochs`` (default: its
    recipe's) and return its table row; a NaN loss gives a row that says so."""
    from nas_mnist.model.training import NanLossError, train_spec

    epochs = epochs or baseline.epochs
    start = time.perf_counter()
    try:
        result = train_spec(baseline.spec, data, epochs, seed=seed)
    except NanLossError as exc:
        print(f"{baseline.name}: {exc}", flush=True)
        return {"name": baseline.name, "params": baseline.spec.num_params,
                "epochs": f"{exc.epoch + 1} of {baseline.epochs}",
                "train_images": data.num_train,
                "reported_test_accuracy": baseline.reported_test_accuracy,
                "val_accuracy": "nan_loss", "test_accuracy": "nan_loss",
                "difference": "-", "seconds": round(time.perf_counter() - start, 1)}
    seconds = time.perf_counter() - start
    print(f"{baseline.name}: test_accuracy {result.test_accuracy:.4f} (reported "
          f"{baseline.reported_test_accuracy:.4f}) in {seconds:.0f} s", flush=True)
    return {
        "name": baseline.name,
        "params": baseline.spec.num_params,
        "epochs": f"{epochs} of {baseline.epochs}",
        "train_images": data.num_train,
        "reported_test_accuracy": baseline.reported_test_accuracy,
        "val_accuracy": round(result.val_accuracy, 4),
        "test_accuracy": round(result.test_accuracy, 4),
        "difference": round(result.test_accuracy - baseline.reported_test_accuracy, 4),
        "seconds": round(seconds, 1),
    }


def write_table(rows: list[dict[str, Any]], out: Path, command: str) -> None:
    """Write ``rows`` as a markdown table at ``out`` (headed by ``command`` and this machine) and
    as a CSV with the same stem."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    header = [f"| {' | '.join(frame.columns)} |", "|" + "---|" * len(frame.columns)]
    body = [f"| {' | '.join(str(v) for v in row)} |" for row in frame.itertuples(index=False)]
    out.write_text("\n".join([
        "# Baselines: reported vs reproduced test_accuracy", "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}", "",
        *header, *body, ""]))


def main(argv: list[str] | None = None) -> int:
    """Train the chosen baselines, write the table; returns the exit status."""
    args = parse_args(argv)

    from nas_mnist.architecture.baselines import select_baselines
    from nas_mnist.data import load_mnist, make_splits

    baselines = select_baselines(args.models)
    data = make_splits(load_mnist(args.data), max_train_samples=args.max_train_samples,
                       seed=args.seed)
    rows = [reproduce(baseline, data, args.epochs, args.seed) for baseline in baselines]
    out = Path(args.out)
    command = "python scripts/reproduce_baselines.py " + " ".join(argv or sys.argv[1:])
    write_table(rows, out, command)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
