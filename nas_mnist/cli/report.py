"""``nas-mnist report``: a study's leaderboard, plots and best model's mistakes, in one folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas_mnist.cli.arguments import EXIT_OK, UsageError, add_study_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser, "the study, finished or still running")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write (must not exist or be empty): leaderboard.csv/.md, the plots as "
        "PNG and HTML, confusion_matrix.png, misclassified.png and report.html",
    )
    parser.add_argument(
        "--format",
        choices=("files", "json"),
        default="files",
        help="files: write the --out folder (default); json: print the leaderboard as JSON on "
        "stdout and write nothing",
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store holding the trials' models (default: the one the study logged to)",
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="MNIST for the best model's test-set figures, as for search (default: "
        "$NAS_MNIST_DATA, else Keras' download)",
    )


def run(args: argparse.Namespace) -> int:
    from nas_mnist.engine.study import load_existing_study

    # 1. Validate every input before anything is created.
    out = _check_out(args)
    study = load_existing_study(args.storage, args.study_name)  # StorageError: exit 2

    from nas_mnist.reporting.report import (
        best_complete_trial,
        leaderboard_records,
        report_leaderboard,
        write_report,
    )

    if args.format == "json":
        import json

        print(json.dumps(leaderboard_records(report_leaderboard(study)), indent=2))
        return EXIT_OK

    from nas_mnist.tracking.tracker import TRACKING_URI_ATTR

    tracking_uri = args.tracking_uri or study.user_attrs.get(TRACKING_URI_ATTR)
    test_data = None
    if best_complete_trial(study) is not None:
        from nas_mnist.data import load_mnist, make_splits

        try:
            splits = make_splits(load_mnist(args.data))
        except ValueError as exc:  # DataError is a ValueError too: both are bad input
            raise UsageError(str(exc)) from None
        test_data = (splits.x_test, splits.y_test)

    # 2. The report.
    from nas_mnist.console import console

    report = write_report(
        study,
        out,
        test_data=test_data,
        tracking_uri=tracking_uri,
        source=f"study {args.study_name!r} in {args.storage}",
    )
    frame = report.leaderboard
    num_baselines = int(frame["baseline"].ne("").sum())
    console.print(
        f"report of study {args.study_name!r}: {len(frame)} trials ({num_baselines} baselines)"
        + (f", best trial {report.best_trial}" if report.best_trial is not None else "")
    )
    for part, why in report.skipped.items():
        console.print(f"  [yellow]not made[/]: {part}: {why}")
    console.print(f"{len(report.files)} files in {out}; open {out / 'report.html'}")
    return EXIT_OK


def _check_out(args: argparse.Namespace) -> Path | None:
    if args.format == "json":
        if args.out:
            raise UsageError(
                "--format json prints the leaderboard on stdout and writes no folder; "
                "leave out --out, or drop --format json to write the report folder"
            )
        return None
    if not args.out:
        raise UsageError("--out DIR is required: the folder to write the report into")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(
            f"--out {out} is not empty; pass a new or empty folder (nothing is overwritten)"
        )
    if not out.parent.is_dir():
        raise UsageError(f"the parent folder {out.parent} of --out does not exist; create it")
    return out
