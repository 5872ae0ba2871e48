"""``nas-mnist baselines list|train``: the documented hand-built models."""

from __future__ import annotations

import argparse

from nas_mnist.cli.arguments import (
    EXIT_FAILURE,
    EXIT_OK,
    add_data_arguments,
    positive_int,
)
from nas_mnist.tracking.redaction import redact_uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="baselines_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list the documented baseline models")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    listing.add_argument(
        "--space",
        metavar="FILE",
        help="search-space file, or the name of a shipped space, for the in-space column: "
        "whether the baseline is an exact point of it (default: default)",
    )
    train = sub.add_parser("train", help="train one baseline with its recipe")
    train.add_argument("name", help="baseline name, e.g. s000_m1 (see 'baselines list')")
    train.add_argument("--epochs", type=positive_int, help="default: the notebook's epochs")
    train.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    train.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the "
                       "study's with --storage/--study-name, else $MLFLOW_TRACKING_URI or "
                       "sqlite:///mlflow.db)")
    train.add_argument("--storage", metavar="URL", help="a study's Optuna storage: train on its "
                       "data and log to its MLflow store (default: no study)")
    train.add_argument("--study-name", metavar="NAME", help="that study (default: nas-mnist)")
    add_data_arguments(train)


def run(args: argparse.Namespace) -> int:
    if args.baselines_command == "list":
        return _baselines_list(args)
    return _baselines_train(args)


def _baselines_list(args: argparse.Namespace) -> int:
    import json

    from nas_mnist.architecture.baselines import BASELINES
    from nas_mnist.search_space.space import load_search_space

    space = load_search_space(args.space)
    rows = [
        {
            "name": b.name,
            "source": b.source,
            "description": b.description,
            "params": b.spec.num_params,
            "depth": b.spec.depth,
            "kernel_sizes": list(b.spec.kernel_sizes),
            "optimizer": b.spec.optimizer.name,
            "learning_rate": b.spec.optimizer.learning_rate,
            "batch_size": b.spec.batch_size,
            "epochs": b.epochs,
            "reported_test_accuracy": b.reported_test_accuracy,
            "in_space": space.params_for_spec(b.spec) is not None,
        }
        for b in BASELINES
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.table import Table

    from nas_mnist.console import console

    inside = sum(r["in_space"] for r in rows)
    table = Table(
        title=f"{len(rows)} documented baselines; {inside} are points of {space.describe()}"
    )
    for column in (
        "name",
        "source",
        "params",
        "depth",
        "kernel sizes",
        "optimizer",
        "reported test_accuracy",
        "in space",
    ):
        table.add_column(column, justify="right" if column in ("params", "depth") else "left")
    for r in rows:
        table.add_row(
            r["name"],
            r["source"],
            f"{r['params']:,}",
            str(r["depth"]),
            ",".join(map(str, r["kernel_sizes"])) or "-",
            f"{r['optimizer']} {r['learning_rate']:g}",
            f"{r['reported_test_accuracy']:.4f}",
            "yes" if r["in_space"] else "no",
        )
    console.print(table)
    return EXIT_OK


def _baselines_train(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from nas_mnist.console import console
    from nas_mnist.searching.baseline_training import BASELINES_EXPERIMENT, train_baseline

    run = train_baseline(args.name, epochs=args.epochs, seed=args.seed, data=args.data,
                         max_train_samples=args.max_train_samples,
                         tracking_uri=args.tracking_uri, storage=args.storage,
                         study_name=args.study_name)
    baseline, attrs = run.baseline, run.trial.user_attrs
    if run.trial.state != TrialState.COMPLETE:
        console.print(f"[red]{baseline.name} failed: {attrs.get('reason')}[/]")
        return EXIT_FAILURE
    console.print(
        f"{baseline.name} ({baseline.source}), {run.epochs} epochs on {run.data}:\n"
        f"  val_accuracy  {attrs['val_accuracy']:.4f} (best epoch {attrs['best_epoch'] + 1})\n"
        f"  test_accuracy {attrs['test_accuracy']:.4f}   "
        f"reported {baseline.reported_test_accuracy:.4f}"
        f" ({baseline.epochs} epochs in the notebook)\n"
        f"  MLflow run {attrs['mlflow_run_id']} in experiment '{BASELINES_EXPERIMENT}' at "
        f"{redact_uri(run.tracking_uri)}"
    )
    return EXIT_OK
