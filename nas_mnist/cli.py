"""Command line: ``nas-mnist search`` and friends.

Each subcommand is a pair (add its arguments / run it) registered in ``COMMANDS``. Heavy modules
(TensorFlow, MLflow, Optuna) are imported inside the command that uses them, so ``--help`` is fast.
Bad input ends with a one-line error and exit status 2, before anything is created.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nas_mnist import __version__

logger = logging.getLogger("nas_mnist")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
LEADERBOARD_COLUMNS = (
    "trial",
    "baseline",
    "state",
    "val_accuracy",
    "test_accuracy",
    "params",
    "depth",
    "kernel_sizes",
    "optimizer",
    "train_seconds",
    "note",
)


class UsageError(Exception):
    """Bad user input detected by a command; printed as 'error: ...' with exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _quiet_libraries() -> None:
    """Keep TensorFlow's C++ logs and library INFO lines out of the progress display."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("mlflow", "optuna", "alembic", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="MNIST as an .npz with Keras' keys, or a folder of the four IDX files "
        "(default: $NAS_MNIST_DATA, else Keras' download)",
    )
    parser.add_argument(
        "--max-train-samples",
        type=_positive_int,
        metavar="N",
        help="train on a stratified subset of N training images (the validation "
        "split stays 10,000)",
    )


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    from nas_mnist.study import DEFAULT_STORAGE, DEFAULT_STUDY_NAME

    parser.add_argument(
        "--trials",
        type=_positive_int,
        default=100,
        metavar="N",
        help="finished trials (complete or pruned) the study should hold in total; "
        "re-running resumes up to N (default: 100)",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=15, help="training epochs per trial (default: 15)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="images per training step for every trial (default: the spec's own, "
        "sampled from the search space)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler and training seed (default: 0)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop starting new trials after this many seconds",
    )
    parser.add_argument(
        "--space", metavar="FILE", help="search-space file (default: search_spaces/default.yaml)"
    )
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"Optuna storage URL (default: {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--study-name",
        default=DEFAULT_STUDY_NAME,
        metavar="NAME",
        help=f"study name; an existing study is resumed (default: {DEFAULT_STUDY_NAME})",
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--max-params",
        type=_positive_int,
        metavar="N",
        help="prune specs with more than N parameters before training",
    )
    parser.add_argument(
        "--baselines",
        default="all",
        metavar="all|none|NAME,NAME",
        help="documented baselines to seed as the study's first trials, once per "
        "study (default: all)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_arguments(parser)


def run_search(args: argparse.Namespace) -> int:
    from nas_mnist.baselines import select_baselines
    from nas_mnist.console import RichProgress, console
    from nas_mnist.search_space import load_search_space
    from nas_mnist.seeding import seed_baselines
    from nas_mnist.study import count_finished, open_study, run_trials, validate_storage_url
    from nas_mnist.tracking import EXPERIMENT_ATTR, Tracker

    # 1. Validate every input before anything is created.
    validate_storage_url(args.storage)
    try:
        baselines = select_baselines(args.baselines)
    except ValueError as exc:
        raise UsageError(f"--baselines: {exc}") from None
    space = load_search_space(args.space)
    data = _load_data(args)
    tracker = Tracker(args.tracking_uri)
    tracker.check()

    # 2. Study, baselines and parent run.
    study = open_study(args.storage, args.study_name, seed=args.seed)
    seed_baselines(study, space, baselines)
    parent_run_id = tracker.attach_parent_run(study)
    experiment_id = study.user_attrs[EXPERIMENT_ATTR]
    done = count_finished(study)
    console.print(
        f"[bold]study[/] {args.study_name!r} in {args.storage}: {done} of {args.trials} "
        f"trials finished; {space.describe()}; {data.describe()}"
    )

    # 3. Trials.
    from nas_mnist.objective import Objective, ObjectiveConfig

    config = ObjectiveConfig(
        epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, max_params=args.max_params
    )
    status = "FINISHED"
    with RichProgress(args.trials, done, disable=args.no_progress) as progress:
        objective = Objective(
            space, data, tracker, experiment_id, parent_run_id, config, listener=progress
        )
        try:
            outcome = run_trials(study, objective, args.trials, timeout=args.timeout)
        except BaseException:
            status = "KILLED"
            raise
        finally:
            tracker.finish_parent_run(parent_run_id, status)

    # 4. Where things are.
    _print_leaderboard(study)
    console.print(
        f"study:  {args.study_name!r} in {args.storage} ({count_finished(study)} finished trials)"
    )
    console.print(
        f"MLflow: experiment {args.study_name!r} (id {experiment_id}), parent run "
        f"{parent_run_id} in {tracker.tracking_uri}"
    )
    console.print(f"        browse with: mlflow ui --backend-store-uri {tracker.tracking_uri}")
    if outcome["stopped_for_failures"]:
        console.print("[red]stopped: too many trials failed in a row; see the note column[/]")
        return EXIT_FAILURE
    return EXIT_OK


def _load_data(args: argparse.Namespace) -> object:
    from nas_mnist.data import load_mnist, make_splits

    try:
        return make_splits(
            load_mnist(args.data), max_train_samples=args.max_train_samples, seed=args.seed
        )
    except ValueError as exc:  # DataError is a ValueError too: both are bad input
        raise UsageError(str(exc)) from None


def _print_leaderboard(study: object, limit: int = 10) -> None:
    from nas_mnist.console import console, table_from_frame
    from nas_mnist.leaderboard import baseline_comparison, leaderboard

    frame = leaderboard(study)
    if frame.empty:
        console.print("no trials yet")
        return
    title = f"top {min(limit, len(frame))} of {len(frame)} trials (by val_accuracy)"
    console.print(table_from_frame(frame, LEADERBOARD_COLUMNS, title=title, limit=limit))
    comparison = baseline_comparison(frame)
    if comparison is None:
        return
    test_gain = comparison["test_accuracy_gain"]
    console.print(
        f"best searched trial {comparison['searched_trial']} vs best baseline "
        f"{comparison['baseline']} (trial {comparison['baseline_trial']}): val_accuracy "
        f"{comparison['val_accuracy_gain']:+.4f}"
        + (f", test_accuracy {test_gain:+.4f}" if test_gain is not None else "")
    )


# ---------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------


def add_baselines_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="baselines_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list the documented baseline models")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    train = sub.add_parser("train", help="train one baseline with its recipe")
    train.add_argument("name", help="baseline name, e.g. s000_m1 (see 'baselines list')")
    train.add_argument("--epochs", type=_positive_int, help="default: the notebook's epochs")
    train.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    train.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    add_data_arguments(train)


def run_baselines(args: argparse.Namespace) -> int:
    if args.baselines_command == "list":
        return _baselines_list(args)
    return _baselines_train(args)


def _baselines_list(args: argparse.Namespace) -> int:
    import json

    from nas_mnist.baselines import BASELINES

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
        }
        for b in BASELINES
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.table import Table

    from nas_mnist.console import console

    table = Table(title=f"{len(rows)} documented baselines")
    for column in (
        "name",
        "source",
        "params",
        "depth",
        "kernel sizes",
        "optimizer",
        "reported test_accuracy",
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
        )
    console.print(table)
    return EXIT_OK


def _baselines_train(args: argparse.Namespace) -> int:
    from nas_mnist.baselines import get_baseline
    from nas_mnist.tracking import Tracker

    try:
        baseline = get_baseline(args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = _load_data(args)
    tracker = Tracker(args.tracking_uri)
    tracker.check()
    epochs = args.epochs or baseline.epochs

    import optuna

    from nas_mnist.console import RichProgress, console
    from nas_mnist.objective import Objective, ObjectiveConfig
    from nas_mnist.seeding import BASELINE_ATTR, IN_SPACE_ATTR

    # One trial of an in-memory study: the same objective, MLflow logging and model keeping as a
    # search trial, without pruning.
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.NopPruner(),
        study_name=f"baseline-{baseline.name}",
    )
    study.enqueue_trial({}, user_attrs={BASELINE_ATTR: baseline.name, IN_SPACE_ATTR: False})
    experiment_id = tracker.experiment_id("nas-mnist-baselines")
    with RichProgress(1) as progress:
        objective = Objective(
            None,
            data,
            tracker,
            experiment_id,
            None,
            ObjectiveConfig(epochs=epochs, seed=args.seed),
            listener=progress,
            spec_for_trial=lambda trial: baseline.spec,
        )
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        console.print(f"[red]{baseline.name} failed: {trial.user_attrs.get('reason')}[/]")
        return EXIT_FAILURE
    attrs = trial.user_attrs
    console.print(
        f"{baseline.name} ({baseline.source}), {epochs} epochs on {data.describe()}:\n"
        f"  val_accuracy  {attrs['val_accuracy']:.4f} (best epoch {attrs['best_epoch'] + 1})\n"
        f"  test_accuracy {attrs['test_accuracy']:.4f}   "
        f"reported {baseline.reported_test_accuracy:.4f}"
        f" ({baseline.epochs} epochs in the notebook)\n"
        f"  MLflow run {attrs['mlflow_run_id']} in experiment 'nas-mnist-baselines' at "
        f"{tracker.tracking_uri}"
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# registry and entry point
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: list[Command] = [
    Command(
        "search", "run an architecture search (the main job)", add_search_arguments, run_search
    ),
    Command(
        "baselines",
        "list or train the documented hand-built models",
        add_baselines_arguments,
        run_baselines,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas-mnist",
        description="Neural architecture search for Keras CNNs on MNIST (Optuna + MLflow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad user input (exit status 2)."""
    from nas_mnist.data import DataError
    from nas_mnist.search_space import SearchSpaceError
    from nas_mnist.spec import SpecError
    from nas_mnist.study import StorageError
    from nas_mnist.tracking import TrackingError

    return (UsageError, DataError, SearchSpaceError, SpecError, StorageError, TrackingError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad flags (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries()
    try:
        return args.run(args)
    except _usage_errors() as exc:
        print(f"nas-mnist {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            f"nas-mnist {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
