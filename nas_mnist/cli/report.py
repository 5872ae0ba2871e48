"""``nas-mnist report``: a study's leaderboard, plots, best model's mistakes and final models
(with the champion), in one folder."""

from __future__ import annotations

import argparse
import json

from nas_mnist.cli.arguments import EXIT_OK, UsageError, add_study_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser, "the study, finished or still running")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write (must not exist or be empty, unless --force): "
        "leaderboard.csv/.md, the plots as PNG and HTML, confusion_matrix.png, "
        "misclassified.png, final_models.csv/.md (once 'nas-mnist retrain' made final models) "
        "and report.html",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it holds an earlier report (report.html and leaderboard.csv); "
        "any other non-empty folder is refused. The new report is written aside and renamed "
        "into place",
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
    from nas_mnist.console import console

    if args.format == "json":
        if args.out:
            raise UsageError(
                "--format json prints the leaderboard on stdout and writes no folder; "
                "leave out --out, or drop --format json to write the report folder"
            )
        from nas_mnist.study.leaderboard import leaderboard, leaderboard_records
        from nas_mnist.study.storage import load_existing_study

        study = load_existing_study(args.storage, args.study_name)
        print(json.dumps(leaderboard_records(leaderboard(study)), indent=2))
        return EXIT_OK
    if not args.out:
        raise UsageError("--out DIR is required: the folder to write the report into")
    from nas_mnist.reporting.report import report

    written = report(out=args.out, storage=args.storage, study_name=args.study_name,
                     tracking_uri=args.tracking_uri, data=args.data, force=args.force)
    frame = written.leaderboard
    num_baselines = int(frame["baseline"].ne("").sum())
    console.print(
        f"report of study {args.study_name!r}: {len(frame)} trials ({num_baselines} baselines)"
        + (f", best trial {written.best_trial}" if written.best_trial is not None else "")
    )
    if written.final_models:
        champion = written.final_models[0]
        console.print(
            f"  {len(written.final_models)} final model(s); champion: final model "
            f"{champion['final_trial']} ({champion['retrains']}), val_accuracy "
            f"{champion['val_accuracy']:.4f}"
            + (f", test_accuracy {champion['test_accuracy']:.4f}"
               if champion["test_accuracy"] is not None else ""),
            markup=False, highlight=False,
        )
    for part, why in written.skipped.items():
        console.print(f"  [yellow]not made[/]: {part}: {why}")
    console.print(f"{len(written.files)} files in {written.out_dir}; open "
                  f"{written.out_dir / 'report.html'}")
    return EXIT_OK
