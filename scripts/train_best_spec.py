"""Train the best spec a search found on the full training set, with data augmentation on.

The search measures at low fidelity (few epochs, a training subset); this script retrains its best
trial's spec (chosen on val_accuracy, never on the test set) on all 50,000 training images for
more epochs, with random translation, rotation and zoom as Keras preprocessing layers (active only
in training), and reports val_accuracy and test_accuracy. ``docs/results.md`` records the runs.

Example::

    python scripts/train_best_spec.py --storage sqlite:///s.db --study-name cpu40 \\
        --epochs 10 --data ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time


def main() -> int:
    """Retrain the study's best spec with augmentation; print its accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--translation", type=float, default=0.1,
                        help="RandomTranslation factor (fraction of height/width)")
    parser.add_argument("--rotation", type=float, default=0.05,
                        help="RandomRotation factor (fraction of a full turn)")
    parser.add_argument("--zoom", type=float, default=0.1, help="RandomZoom factor")
    parser.add_argument("--searched-only", action="store_true",
                        help="take the best sampled trial, not a baseline")
    parser.add_argument("--data", help="MNIST .npz (default: $NAS_MNIST_DATA, else Keras')")
    args = parser.parse_args()

    from nas_mnist.architecture.spec import ArchitectureSpec, Augmentation
    from nas_mnist.data import load_splits
    from nas_mnist.model.training import train_spec
    from nas_mnist.study.leaderboard import leaderboard
    from nas_mnist.study.storage import load_existing_study
    from nas_mnist.trial_attributes import trial_spec_data

    study = load_existing_study(args.storage, args.study_name)
    frame = leaderboard(study)
    done = frame[frame["state"].eq("complete")]
    if args.searched_only:
        done = done[done["baseline"].eq("")]
    best = int(done.iloc[0]["trial"])  # the leaderboard is sorted by val_accuracy
    trial = study.trials[best]
    spec = ArchitectureSpec.from_dict(trial_spec_data(trial))
    spec = dataclasses.replace(spec, augmentation=Augmentation(
        translation=args.translation, rotation=args.rotation, zoom=args.zoom))
    data = load_splits(args.data, None, args.seed)
    start = time.perf_counter()
    result = train_spec(spec, data, args.epochs, seed=args.seed + best)
    print(json.dumps({
        "trial": best,
        "baseline": trial.user_attrs.get("baseline"),
        "search_val_accuracy": trial.user_attrs.get("val_accuracy"),
        "params": spec.num_params,
        "epochs": args.epochs,
        "augmentation": dataclasses.asdict(spec.augmentation),
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "best_epoch": result.best_epoch,
        "seconds": round(time.perf_counter() - start, 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
