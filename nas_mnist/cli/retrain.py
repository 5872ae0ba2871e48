"""``nas-mnist retrain``: a study's best specs retrained at full budget, the champion registered.

Calls ``nas_mnist.retrain`` (``nas_mnist.searching.final.retrain``) and prints a table of the final
models, the spread per spec over seeds, the champion and the ensemble. Numbers are checked by
``RetrainSettings`` (one line, exit 2), not by argparse.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from nas_mnist.cli.arguments import EXIT_FAILURE, EXIT_OK, add_study_arguments
from nas_mnist.searching.final.recipe import DEFAULT_FINAL_EPOCHS
from nas_mnist.searching.final.settings import DEFAULT_TOP_K

TABLE_COLUMNS = ("key", "baseline", "state", "val_accuracy", "test_accuracy", "params",
                 "best_epoch", "epochs", "train_seconds")
"""Columns of the final models' table (``num_params`` shown as ``params``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``nas-mnist retrain``."""
    add_study_arguments(parser, "the searched study whose best specs to retrain")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, metavar="K",
                        help="retrain the K best distinct complete trials by val_accuracy "
                        f"(default: {DEFAULT_TOP_K})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_FINAL_EPOCHS, metavar="E",
                        help="training epochs per final model; the best epoch by val_accuracy "
                        f"is kept (default: {DEFAULT_FINAL_EPOCHS}; fewer on a CPU)")
    parser.add_argument("--seeds", type=int, default=1, metavar="S",
                        help="final models per spec, each with its own seed; mean and spread "
                        "are reported (default: 1)")
    parser.add_argument("--baselines", metavar="auto|none|NAME,NAME",
                        help="hand-built models retrained with the same recipe, for comparison: "
                        "auto (default): the study's best baseline trial; none; or catalog "
                        "names to add to it")
    parser.add_argument("--data", metavar="PATH",
                        help="MNIST as for search (default: the study's own file)")
    parser.add_argument("--max-train-samples", type=int, metavar="N",
                        help="train on a stratified subset of N training images (default: all "
                        "50,000; the validation split stays 10,000)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="final models trained at once; only 1 is supported (default: 1)")
    parser.add_argument("--no-augmentation", action="store_true",
                        help="do not add the recipe's augmentation (translation 0.1, rotation "
                        "0.05, zoom 0.1) to specs without one")
    parser.add_argument("--no-cosine", action="store_true",
                        help="keep the spec's constant learning_rate instead of a cosine "
                        "schedule")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed; a spec's s-th final model trains with seed + s "
                        "(default: 0)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default: the one the study logged to)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Retrain, print the final models and the champion; 1 if a final model is missing."""
    from nas_mnist.searching.final.retrain import retrain

    result = retrain(
        args.storage, args.study_name, top_k=args.top_k, epochs=args.epochs, seeds=args.seeds,
        baselines=args.baselines, data=args.data, max_train_samples=args.max_train_samples,
        jobs=args.jobs, augmentation=not args.no_augmentation, cosine=not args.no_cosine,
        tracking_uri=args.tracking_uri, progress=not args.no_progress, seed=args.seed)
    print_result(result)
    return EXIT_FAILURE if result.missing else EXIT_OK


def print_result(result: Any) -> None:
    """The final models' table, the spread per spec, the champion and ensemble lines."""
    from nas_mnist.console import console, table_from_frame

    frame = result.final_models.rename(columns={"num_params": "params"})
    console.print(table_from_frame(frame, TABLE_COLUMNS, title=(
        f"{len(frame)} final models of study {result.study.study_name!r} (by val_accuracy; "
        f"{result.trained} trained now)")))
    if (result.by_spec["runs"] > 1).any():
        for _, row in result.by_spec.iterrows():
            console.print(f"  {row['spec']}: {row['runs']} seeds, val_accuracy "
                          f"{_spread(row['val_mean'], row['val_std'])}, test_accuracy "
                          f"{_spread(row['test_mean'], row['test_std'])}", markup=False)
    for line in champion_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.missing:
        console.print(f"[red]missing final models: {', '.join(result.missing)}; run the same "
                      "command again to retry them[/]")


def _spread(mean: float, std: float) -> str:
    """``0.9951 ± 0.0003`` (mean and sample standard deviation; no ± for one run)."""
    return f"{mean:.4f}" + ("" if std is None or math.isnan(std) else f" ± {std:.4f}")


def champion_lines(result: Any) -> list[str]:
    """The champion line and, when there is one, the ensemble line (the tracking URI without
    its password)."""
    from nas_mnist.tracking.redaction import redact_uri

    champion = result.champion
    if champion is None:
        return ["no champion: no final model completed"]
    attrs = champion.user_attrs
    test = attrs.get("test_accuracy")
    lines = [f"champion: {result.champion_key} (final trial {champion.number}): val_accuracy "
             f"{champion.value:.4f}" + (f", test_accuracy {test:.4f}" if test is not None else "")
             + (f"; registered as {result.champion_uri} (version {result.champion_version}) "
                f"in {redact_uri(result.tracking_uri)}" if result.champion_uri else "")]
    if result.ensemble_version is not None:
        val, test = result.ensemble_val_accuracy, result.ensemble_test_accuracy
        lines.append(
            f"ensemble of {len(result.ensemble_members)} final models (mean softmax): "
            + (f"val_accuracy {val:.4f}, " if val is not None else "")
            + (f"test_accuracy {test:.4f}; " if test is not None else "")
            + f"registered as models:/{result.registered_model}@ensemble (version "
            f"{result.ensemble_version})")
    return lines
