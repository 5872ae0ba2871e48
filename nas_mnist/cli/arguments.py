"""Pieces shared by the subcommands: exit codes, argument types, data loading."""

from __future__ import annotations

import argparse

from nas_mnist.errors import InputError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


UsageError = InputError
"""Bad user input detected by a command; printed as 'error: ...' with exit status 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 from a flag's text (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_study_arguments(parser: argparse.ArgumentParser, study_help: str) -> None:
    """``--storage URL`` and ``--study-name NAME``, with the defaults every command shares."""
    from nas_mnist.study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME

    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"Optuna storage URL of the study (default: {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--study-name",
        default=DEFAULT_STUDY_NAME,
        metavar="NAME",
        help=f"{study_help} (default: {DEFAULT_STUDY_NAME})",
    )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="MNIST as an .npz with Keras' keys, or a folder of the four IDX files "
        "(default: $NAS_MNIST_DATA, else Keras' download)",
    )
    parser.add_argument(
        "--max-train-samples",
        type=positive_int,
        metavar="N",
        help="train on a stratified subset of N training images (the validation "
        "split stays 10,000)",
    )
