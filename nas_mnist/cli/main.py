"""Command line: ``nas-mnist search`` and friends.

Each subcommand is a pair (add its arguments / run it) registered in ``COMMANDS``. Heavy modules
(TensorFlow, MLflow, Optuna) are imported inside the command that uses them, so ``--help`` is fast.
Bad input ends with a one-line error and exit status 2, before anything is created.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nas_mnist import __version__
from nas_mnist.cli import (
    baselines,
    completion,
    dashboard,
    doctor,
    export,
    predict,
    report,
    retrain,
    search,
    ui,
)
from nas_mnist.cli.arguments import EXIT_FAILURE, EXIT_USAGE
from nas_mnist.cli.config_file import CONFIG_COMMANDS, add_config_argument, expand_config
from nas_mnist.errors import InputError, RuntimeFailure
from nas_mnist.processes.signals import (
    Terminated,
    exit_status,
    handle_signals,
    quiet_expected_failures,
)

logger = logging.getLogger("nas_mnist")


@contextlib.contextmanager
def _command_logging(verbose: bool, tensorflow: bool = False) -> Iterator[None]:
    """While a command runs: nas-mnist's status lines on stdout, drawn by rich above the progress
    bars; warnings of every library on stderr; TensorFlow's C++ logs and library INFO lines
    hidden unless ``--verbose``. The loggers are restored afterwards (``main`` may run in-process,
    e.g. in tests or a notebook).

    Hidden unless ``--verbose``: TensorFlow's absl start-up lines (``tensorflow``: the command
    trains or loads models, so TensorFlow is imported here, quietly), MLflow's INFO lines
    ("Creating initial MLflow database tables...": ``MLFLOW_LOGGING_LEVEL``, read when MLflow is
    imported) and its tqdm "Downloading artifacts" bars, Optuna's INFO lines (Optuna sets its
    level when imported: it is imported here and set), TensorFlow's "tf.function retracing"
    warnings (``cli.quiet.hide_retracing_warnings``)."""
    from rich.logging import RichHandler

    from nas_mnist.cli.quiet import hide_retracing_warnings, import_tensorflow_quietly
    from nas_mnist.console import console

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        hide_retracing_warnings()
        if tensorflow:
            import_tensorflow_quietly()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    package = logging.getLogger("nas_mnist")
    names = ("mlflow", "optuna", "alembic", "absl", "tensorflow")
    saved = (list(package.handlers), package.level, package.propagate,
             [logging.getLogger(name).level for name in names])
    package.handlers[:] = [RichHandler(console=console, show_time=False, show_path=False,
                                       show_level=verbose, markup=False, rich_tracebacks=False)]
    package.setLevel(logging.DEBUG if verbose else logging.INFO)
    package.propagate = False
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    optuna_level = None
    if tensorflow or "optuna" in sys.modules:
        import optuna

        optuna_level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(logging.DEBUG if verbose else logging.WARNING)
    try:
        yield
    finally:
        hide_retracing_warnings(False)
        if optuna_level is not None:
            optuna.logging.set_verbosity(optuna_level)
        package.handlers[:], level, package.propagate, levels = saved
        package.setLevel(level)
        for name, previous in zip(names, levels, strict=True):
            logging.getLogger(name).setLevel(previous)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: list[Command] = [
    Command(
        "search", "run an architecture search (the main job)", search.add_arguments, search.run
    ),
    Command(
        "retrain",
        "retrain a study's best specs at full budget and register the champion",
        retrain.add_arguments,
        retrain.run,
    ),
    Command(
        "baselines",
        "list or train the documented hand-built models",
        baselines.add_arguments,
        baselines.run,
    ),
    Command("export", "export a trial as a verified SavedModel", export.add_arguments, export.run),
    Command(
        "report",
        "write a study's leaderboard, plots and best model's mistakes (or print JSON)",
        report.add_arguments,
        report.run,
    ),
    Command(
        "ui",
        "browse the MLflow runs in the MLflow UI, on 127.0.0.1",
        ui.add_arguments,
        ui.run,
    ),
    Command(
        "dashboard",
        "browse the study in optuna-dashboard, on 127.0.0.1",
        dashboard.add_arguments,
        dashboard.run,
    ),
    Command(
        "predict",
        "classify your own digit images (PNG, JPEG, .npy) with an exported model",
        predict.add_arguments,
        predict.run,
    ),
    Command(
        "completion",
        "print the shell completion script (bash, zsh or tcsh)",
        completion.add_arguments,
        completion.run,
    ),
    Command(
        "doctor",
        "check a study storage; repair a torn journal or a half-made SQLite file (after a backup)",
        doctor.add_arguments,
        doctor.run,
    ),
]


def _accept_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` also after a command and its subcommands (``nas-mnist baselines list -v``);
    ``SUPPRESS`` keeps a ``-v`` given before the command."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug logging (also accepted before the command)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                _accept_verbose(nested)


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
        if command.name in CONFIG_COMMANDS:
            add_config_argument(p)
        _accept_verbose(p)
        p.set_defaults(run=command.run)
    parser.set_defaults(root_parser=parser)  # for `completion`
    return parser


INTERRUPTED = {
    "search": "the running trial was marked failed and, unless it was a retry itself, queued "
    "for one retry. Run the same command again to resume.",
    "retrain": "the running final model was marked failed. Run the same command again to "
    "finish: it trains every final model still missing.",
}
"""What each command adds to its 'interrupted' line (the others write nothing half-made)."""

INTERRUPT_GRACE_SECONDS = {"search": 4.0, "retrain": 4.0}
"""Seconds from SIGINT/SIGTERM to a forced exit if the clean-up has not finished (the prompt
comes back within 5 s; the next run recovers the trial as after SIGKILL); other commands wait for
their clean-up (the UI stops its server)."""


def _uses_tensorflow(args: Any) -> bool:
    """Whether the command trains or loads models (``_command_logging`` imports TensorFlow
    quietly for those)."""
    return args.command in ("search", "retrain", "export", "report", "predict") or (
        args.command == "baselines" and getattr(args, "baselines_command", None) == "train")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    0 ok, 1 failure (including a tracking server that stopped answering), 2 bad input, 130
    interrupted by SIGINT (Ctrl-C), 143 by SIGTERM, 129 by SIGHUP (the terminal closed; 128
    plus the signal number, the shell convention).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(argv, parser)  # --config FILE: its flags, before the command line's
    except InputError as exc:
        command = next((a for a in argv if a in CONFIG_COMMANDS), "")
        print(f"nas-mnist {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad flags (2)
        return int(exc.code or 0)
    # SIGINT and SIGTERM raise in the main thread whatever the inherited disposition (a worker
    # started with '&' from a script inherits SIGINT as ignored); Optuna logs no traceback for
    # trials that end for a reason already recorded (interrupted, NaN loss, surplus).
    grace = INTERRUPT_GRACE_SECONDS.get(args.command)
    with _command_logging(args.verbose, _uses_tensorflow(args)), handle_signals(grace), \
            quiet_expected_failures():
        try:
            return args.run(args)
        except InputError as exc:
            print(f"nas-mnist {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except RuntimeFailure as exc:
            hint = f". {exc.hint}" if exc.hint else ""
            print(f"nas-mnist {args.command}: error: {exc}{hint}", file=sys.stderr)
            return EXIT_FAILURE
        except KeyboardInterrupt as exc:
            name = f"terminated ({exc.signal_name})" if isinstance(exc, Terminated) \
                else "interrupted"
            extra = INTERRUPTED.get(args.command)
            print(f"nas-mnist {args.command}: {name}" + (f"; {extra}" if extra else ""),
                  file=sys.stderr)
            return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
