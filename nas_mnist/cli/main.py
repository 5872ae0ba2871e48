"""Command line: ``nas-mnist search`` and friends.

Each subcommand is a pair (add its arguments / run it) registered in ``COMMANDS``. Heavy modules
(TensorFlow, MLflow, Optuna) are imported inside the command that uses them, so ``--help`` is fast.
Bad input ends with a one-line error and exit status 2, before anything is created.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nas_mnist import __version__
from nas_mnist.cli import baselines, export, report, search, ui
from nas_mnist.cli.arguments import EXIT_USAGE
from nas_mnist.errors import InputError

logger = logging.getLogger("nas_mnist")


def _configure_logging(verbose: bool) -> None:
    """nas-mnist's status lines on stdout, drawn by rich above the progress bars; warnings of
    every library on stderr; TensorFlow's C++ logs and library INFO lines hidden unless
    ``--verbose``."""
    from rich.logging import RichHandler

    from nas_mnist.console import console

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    level = logging.DEBUG if verbose else logging.INFO
    package = logging.getLogger("nas_mnist")
    package.handlers[:] = [RichHandler(console=console, show_time=False, show_path=False,
                                       show_level=verbose, markup=False, rich_tracebacks=False)]
    package.setLevel(level)
    package.propagate = False
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "optuna", "alembic", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the running trial ends as on Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    0 ok, 1 failure, 2 bad input, 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (128 plus
    the signal number, the shell convention).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad flags (2)
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return args.run(args)
    except InputError as exc:
        print(f"nas-mnist {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        name = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"nas-mnist {args.command}: {name}; the running trial was marked failed. Run the "
              "same command again to resume.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
