"""Search efficiency at an equal epoch budget: Optuna TPE + median pruning (nas-mnist's default),
Optuna random search, and KerasTuner Hyperband, on the same search space, data and builder.

Each method runs once per seed until its trials have trained ``--budget-epochs`` epochs in all
(pruned trials count the epochs they trained; impossible architectures count none). Every
finished trial is recorded with the cumulative epochs spent when it finished; the table gives,
per method, the best val_accuracy found within 1/4, 1/2 and all of the budget (mean over seeds,
with the range) and the test_accuracy of the trial that was best by val_accuracy (reporting only:
the test split never selects), plus the epochs each method needed to first reach
``--target`` val_accuracy. Baselines are not seeded (KerasTuner has no queue), so all three
start from nothing. The default search space here is ``search_spaces/small_cnn.yaml`` (the
default space with 8-32 filters and 32-128 dense units), so that a CPU runs many trials.

Usage (the run in docs/benchmarks.md):
    python scripts/compare_engines.py --seeds 0,1,2 --budget-epochs 45 --epochs 3 \\
        --max-train-samples 2000 --validation-size 1000 --target 0.9 --out docs/compare_engines.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

METHODS = ("optuna-tpe-median", "optuna-random-none", "keras-tuner-hyperband")
"""Methods compared by default; any optuna-<sampler>-<pruner> (tpe|random|nsga2|gp,
median|hyperband|none) works in ``--methods``."""


def run_optuna(method: str, seed: int, args: argparse.Namespace, data, space, folder: str):
    """Rows (cumulative_epochs, val_accuracy, test_accuracy) per finished trial."""
    import optuna

    from nas_mnist.searching.objective import Objective, ObjectiveConfig
    from nas_mnist.study.opening import make_pruner, make_sampler
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    _, sampler_name, pruner_name = method.split("-")
    sampler = make_sampler(seed, sampler_name)
    pruner = make_pruner(pruner_name, args.epochs)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                study_name=f"{method}-{seed}")
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    experiment_id = tracker.experiment_id(f"{method}-{seed}")
    objective = Objective(space, data, StudyRuns(tracker, experiment_id),
                          ObjectiveConfig(epochs=args.epochs, seed=seed))
    rows: list[tuple[int, float | None, float | None]] = []
    spent = 0

    def account(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal spent
        spent += len(trial.intermediate_values)
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        rows.append((spent, trial.value if complete else None,
                     trial.user_attrs.get("test_accuracy") if complete else None))
        if spent >= args.budget_epochs:
            study.stop()

    study.optimize(objective, callbacks=[account], catch=(Exception,), gc_after_trial=True)
    return rows


def run_keras_tuner(seed: int, args: argparse.Namespace, data, space, folder: str):
    """Rows (cumulative_epochs, val_accuracy, test_accuracy) per finished KerasTuner Hyperband
    trial, until the trials trained ``--budget-epochs`` epochs."""
    from nas_mnist.searching.keras_tuner import TunerConfig, make_tuner, start_parent_run
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    experiment_id, parent = start_parent_run(tracker, f"hyperband-{seed}", "hyperband")
    config = TunerConfig("hyperband", epochs=args.epochs, max_trials=100_000, seed=seed,
                         directory=folder, project_name=f"hyperband-{seed}", overwrite=True,
                         max_epochs_total=args.budget_epochs, hyperband_iterations=1000)
    tuner = make_tuner(config, space, data, StudyRuns(tracker, experiment_id, parent))
    tuner.search(verbose=0)
    rows, spent = [], 0
    for record in tuner.records:
        spent += record.epochs_trained
        complete = record.state == "complete"
        rows.append((spent, record.val_accuracy if complete else None,
                     record.test_accuracy if complete else None))
    return rows


def best_within(rows, budget: float) -> tuple[float | None, float | None]:
    """(best val_accuracy, its trial's test_accuracy) among trials finished within ``budget``."""
    done = [(v, t) for spent, v, t in rows if spent <= budget and v is not None]
    if not done:
        return None, None
    return max(done, key=lambda vt: vt[0])


def epochs_to_reach(rows, target: float) -> int | None:
    """Cumulative epochs when a trial first reached ``target`` val_accuracy, or None."""
    return next((spent for spent, v, _ in rows if v is not None and v >= target), None)


def _summary(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def _parser() -> argparse.ArgumentParser:
    """The script's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget-epochs", type=int, default=45,
                        help="training epochs per method and seed, all trials together")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of a full trial (Hyperband's max_epochs)")
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--validation-size", type=int, default=1000,
                        help="last N training images held out for val_accuracy")
    parser.add_argument("--target", type=float, default=0.9,
                        help="val_accuracy for the epochs-to-reach column")
    parser.add_argument("--space", default=str(Path(__file__).resolve().parents[1] /
                                               "search_spaces/small_cnn.yaml"),
                        help="search-space file (default: search_spaces/small_cnn.yaml, the "
                        "default space with fewer filters and units, affordable on a CPU)")
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: $NAS_MNIST_DATA, "
                        "else Keras' download)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", help="CSV of every finished trial of every run")
    return parser


def run_method(method: str, seed: int, args: argparse.Namespace, data, space) -> list:
    """One method's run for one seed, in a temporary folder; its rows (see ``run_optuna``)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compare_") as folder:
        if method == "keras-tuner-hyperband":
            rows = run_keras_tuner(seed, args, data, space, folder)
        else:
            rows = run_optuna(method, seed, args, data, space, folder)
    best, test = best_within(rows, args.budget_epochs)
    print(f"seed {seed} {method:22s} {len(rows):3d} trials, {rows[-1][0] if rows else 0}"
          f" epochs, best val_accuracy {best}, its test_accuracy {test}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return rows


def write_csv(path: str, results: dict[str, dict[int, list]]) -> None:
    """Every finished trial of every run: method, seed, trial, cumulative_epochs,
    val_accuracy, test_accuracy."""
    seeds = list(next(iter(results.values())))
    trial_rows = [{"method": method, "seed": seed, "trial": i, "cumulative_epochs": e,
                   "val_accuracy": v, "test_accuracy": t}
                  for seed in seeds for method, by_seed in results.items()
                  for i, (e, v, t) in enumerate(by_seed[seed])]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(trial_rows[0]))
        writer.writeheader()
        writer.writerows(trial_rows)


def print_table(results: dict[str, dict[int, list]], args: argparse.Namespace, data) -> None:
    """The Markdown table of docs/benchmarks.md: per method, mean (min-max) over seeds."""
    budget = args.budget_epochs
    print(f"\n{data.num_train} training / {data.num_val} validation images, trials of up to "
          f"{args.epochs} epochs, budget {budget} epochs per run, seeds {args.seeds}; "
          "mean (min-max) over seeds\n")
    print(f"| method | best val_accuracy @ {budget // 4} epochs | @ {budget // 2} | "
          f"@ {budget} | test_accuracy of the best | epochs to val_accuracy >= "
          f"{args.target} | trials |")
    print("|" + "---|" * 7)
    for method, by_seed in results.items():
        runs = list(by_seed.values())
        cells = [_summary([best_within(r, budget * f)[0] for r in runs]) for f in (0.25, 0.5, 1)]
        test = _summary([best_within(r, budget)[1] for r in runs])
        reach = [epochs_to_reach(r, args.target) for r in runs]
        reach_text = ", ".join("-" if e is None else str(e) for e in reach)
        trials = ", ".join(str(len(r)) for r in runs)
        print(f"| {method} | {' | '.join(cells)} | {test} | {reach_text} | {trials} |")


def main() -> int:
    """Run every method for every seed, write the CSV (``--out``) and print the table."""
    args = _parser().parse_args()
    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from nas_mnist.data import load_mnist, make_splits
    from nas_mnist.search_space.space import load_search_space

    data = make_splits(load_mnist(args.data), validation_size=args.validation_size,
                       max_train_samples=args.max_train_samples, seed=0)
    space = load_search_space(args.space)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    results: dict[str, dict[int, list]] = {m: {} for m in methods}
    for seed in seeds:
        for method in methods:
            results[method][seed] = run_method(method, seed, args, data, space)
    if args.out:
        write_csv(args.out, results)
    print_table(results, args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
