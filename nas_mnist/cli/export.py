"""``nas-mnist export``: a study's champion (the best final model of ``nas-mnist retrain``),
else its best trial, as a verified TensorFlow SavedModel.

``nas-mnist export --out DIR`` writes DIR (layout in ``nas_mnist.exporting``) and logs the model
to the study's MLflow parent run; ``nas-mnist export --verify DIR`` re-checks DIR's manifest.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nas_mnist.cli.arguments import (
    EXIT_FAILURE,
    EXIT_OK,
    add_data_arguments,
    add_study_arguments,
    positive_int,
)
from nas_mnist.tracking.redaction import redact_uri

if TYPE_CHECKING:
    from nas_mnist.exporting.layout import ExportResult


def _trial_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a trial number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"trial numbers start at 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--out",
        metavar="DIR",
        help="export folder to create: a SavedModel plus model.keras, spec.json, metrics.json "
        "and manifest.json",
    )
    action.add_argument(
        "--verify",
        metavar="DIR",
        help="re-check an export folder against its manifest.json (exit 1 if a file differs, "
        "is missing or is extra)",
    )
    add_study_arguments(parser, "study to export from")
    _add_selection_arguments(parser)
    parser.add_argument(
        "--force", action="store_true", help="replace DIR if it holds an earlier export"
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: the one the study logged to)",
    )
    add_data_arguments(parser)


def _add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """What to export: the champion, a search trial, a retrained spec or an ensemble."""
    parser.add_argument(
        "--trial",
        type=_trial_number,
        metavar="N",
        help="export completed search trial N (default: the champion, the final model of "
        "'nas-mnist retrain' with the best val_accuracy, when the study has one; else the best "
        "completed trial by val_accuracy)",
    )
    parser.add_argument(
        "--from-search",
        action="store_true",
        help="take search trials even when the study has final models: the best trial (or, "
        "with --ensemble K, the K best trials) as before 'nas-mnist retrain'",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train a search trial's spec afresh (--trial N, else the best search trial; never "
        "the champion) on the full training set instead of loading the model the search kept",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help="with --retrain: training epochs (default: 15); the "
        "validation split still selects the best epoch",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="with --retrain: trains with seed + trial number, as the search did (default: 0)",
    )
    parser.add_argument(
        "--ensemble",
        type=positive_int,
        metavar="K",
        help="export one model that averages the softmax outputs of the K best final models by "
        "val_accuracy when the study has K of them, else of the K best complete trials (K >= 2; "
        "not with --trial or --retrain)",
    )
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress: one line per step as it starts")


def run(args: argparse.Namespace) -> int:
    if args.verify is not None:
        return _verify(args.verify)
    return _export(args)


def _verify(folder: str) -> int:
    from nas_mnist.console import console
    from nas_mnist.exporting.manifest import MANIFEST_NAME, verify_manifest

    problems = verify_manifest(folder)
    if problems:
        console.print(f"[red]{folder}: {len(problems)} problem(s) against {MANIFEST_NAME}:[/]")
        for problem in problems:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILURE
    console.print(f"{folder}: every file matches {MANIFEST_NAME}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from nas_mnist.console import console
    from nas_mnist.exporting.export import export
    from nas_mnist.exporting.verification import VerificationError

    try:
        result = export(
            out=args.out, storage=args.storage, study_name=args.study_name, trial=args.trial,
            retrain=args.retrain, epochs=args.epochs, seed=args.seed, force=args.force,
            tracking_uri=args.tracking_uri, data=args.data,
            max_train_samples=args.max_train_samples, ensemble=args.ensemble,
            from_search=args.from_search, progress=not args.no_progress,
        )
    except VerificationError as exc:
        console.print(f"[red]export failed its check, nothing written: {exc}[/]")
        return EXIT_FAILURE
    if result.members:
        return _print_ensemble(result, args.study_name)
    verification = result.verification
    expected = result.expected_test_accuracy
    console.print(
        f"exported {_what(result, args.retrain)} of study {args.study_name!r} to "
        f"{result.path}\n"
        + (f"  {_recipe_line(result.final)}\n" if result.final else "")
        + f"  reloaded with tf.saved_model.load: test_accuracy {verification.test_accuracy:.4f} "
        f"on {verification.num_images:,} test images"
        + (f" (trial recorded {expected:.4f})" if expected is not None else "")
        + f", max abs difference from the in-memory model {verification.max_abs_difference:.2g}\n"
        f"  {len(result.manifest)} files listed in manifest.json; check later with "
        f"nas-mnist export --verify {result.path}"
    )
    if result.mlflow_model_uri is None:
        if result.parent_run_id is None:
            console.print("MLflow: the study has no parent run; the model was not logged")
            return EXIT_OK
        console.print(f"[red]the export is complete, but logging it to MLflow run "
                      f"{result.parent_run_id} failed: {result.mlflow_error}[/]")
        return EXIT_FAILURE
    tag = f"final:{result.final['trial_number']}" if result.final else result.trial_number
    console.print(
        f"MLflow: logged as {result.mlflow_model_uri} on parent run {result.parent_run_id} (tag "
        f"best_trial={tag}) in {redact_uri(result.tracking_uri)}; register it from the MLflow UI"
    )
    return EXIT_OK


def _what(result: ExportResult, retrained: bool) -> str:
    """``the champion (final model 1: search trial 3, seed 0)`` or ``trial 3 (kept model)``."""
    final = result.final
    if final is None:
        return f"trial {result.trial_number} ({'retrained' if retrained else 'kept model'})"
    source = (f"baseline {final['baseline']}" if final["baseline"]
              else f"search trial {final['source_trial']}")
    seed = f", seed {final['seed']}" if final["seed"] is not None else ""
    return f"the champion (final model {final['trial_number']}: {source}{seed})"


def _recipe_line(final: dict) -> str:
    """The champion's recipe in one line: epochs, training images, augmentation, schedule,
    training seed."""
    augmentation = ", ".join(f"{k} {v:g}" for k, v in final["augmentation"].items()) or "none"
    parts = [f"{final['epochs']} epochs" if final["epochs"] is not None else None,
             f"{final['num_train_images']:,} training images"
             if final["num_train_images"] is not None else None,
             f"augmentation {augmentation}", f"learning-rate schedule {final['lr_schedule']}",
             f"training seed {final['training_seed']}"
             if final["training_seed"] is not None else None]
    return "final recipe: " + ", ".join(p for p in parts if p) + (
        "; use --from-search for the best search trial instead")


def _print_ensemble(result: ExportResult, study_name: str) -> int:
    from nas_mnist.console import console

    verification = result.verification
    members = result.members
    finals = bool(members) and bool(members[0].get("final_model"))
    kind = "final models" if finals else "trials"
    lines = [
        f"exported an ensemble of {len(members)} {kind} of study {study_name!r} (mean of their "
        f"softmax outputs) to {result.path}",
        f"  reloaded with tf.saved_model.load: test_accuracy {verification.test_accuracy:.4f} on "
        f"{verification.num_images:,} test images; max abs difference from the mean of the "
        f"members' predictions {verification.reference_max_abs_difference:.2g}",
    ]
    lines += [
        f"  member {'final model' if finals else 'trial'} {m['trial_number']}"
        + (f" ({_member_source(m)})" if finals else "")
        + f": val_accuracy {m['val_accuracy']:.4f}, "
        f"test_accuracy {m['test_accuracy_recomputed']:.4f}"
        for m in members
    ]
    lines.append(f"  not logged to MLflow; check later with nas-mnist export --verify "
                 f"{result.path}")
    console.print("\n".join(lines), markup=False, highlight=False)
    return EXIT_OK


def _member_source(member: dict) -> str:
    """A final member's source: ``search trial 3, seed 0`` or ``baseline s002_m9, seed 1``."""
    source = (f"baseline {member['baseline']}" if member.get("baseline")
              else f"search trial {member.get('source_trial')}")
    return source + (f", seed {member['seed']}" if member.get("seed") is not None else "")
