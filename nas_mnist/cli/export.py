"""``nas-mnist export``: the best trial of a study as a verified TensorFlow SavedModel.

``nas-mnist export --out DIR`` writes DIR (layout in ``nas_mnist.exporting.savedmodel``) and logs the model to
the study's MLflow parent run; ``nas-mnist export --verify DIR`` re-checks DIR's manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas_mnist.cli.arguments import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_data_arguments,
    add_study_arguments,
    load_data,
    positive_int,
)

DEFAULT_RETRAIN_EPOCHS = 15


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
    parser.add_argument(
        "--trial",
        type=_trial_number,
        metavar="N",
        help="export completed trial N (default: the best completed trial by val_accuracy)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train the trial's spec afresh on the full training set instead of loading the "
        "model the search kept",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help=f"with --retrain: training epochs (default: {DEFAULT_RETRAIN_EPOCHS}); the "
        "validation split still selects the best epoch",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="with --retrain: trains with seed + trial number, as the search did (default: 0)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace DIR if it holds an earlier export"
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: the one the study logged to)",
    )
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.verify is not None:
        return _verify(args.verify)
    return _export(args)


def _verify(folder: str) -> int:
    from nas_mnist.console import console
    from nas_mnist.exporting.savedmodel import MANIFEST_NAME, verify_manifest

    problems = verify_manifest(folder)
    if problems:
        console.print(f"[red]{folder}: {len(problems)} problem(s) against {MANIFEST_NAME}:[/]")
        for problem in problems:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILURE
    console.print(f"{folder}: every file matches {MANIFEST_NAME}")
    return EXIT_OK


def _check_sqlite_file(url: str, what: str, flag: str) -> None:
    """Refuse a SQLite URL whose file does not exist: opening it would create an empty one."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # the caller's own validation reports unparsable URLs
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    path = Path(parsed.database).expanduser()
    if parsed.database != ":memory:" and not path.exists():
        raise UsageError(
            f"the {what} {url!r} does not exist ({path.resolve()}); run from the folder the "
            f"search ran in, or pass {flag} with the right path"
        )


def _export(args: argparse.Namespace) -> int:
    from nas_mnist.engine.study import load_existing_study, validate_storage_url
    from nas_mnist.exporting.savedmodel import ExportError, check_out_dir, pick_trial, trial_spec
    from nas_mnist.tracking.tracker import PARENT_RUN_ATTR, TRACKING_URI_ATTR, Tracker

    # 1. Validate every input before anything is written.
    if not args.retrain and args.epochs is not None:
        raise UsageError("--epochs applies only with --retrain")
    if not args.retrain and args.max_train_samples is not None:
        raise UsageError("--max-train-samples applies only with --retrain")
    validate_storage_url(args.storage)
    _check_sqlite_file(args.storage, "study storage", "--storage")
    study = load_existing_study(args.storage, args.study_name)
    trial = pick_trial(study, args.trial)
    spec = trial_spec(trial)
    out = check_out_dir(args.out, args.force)
    tracking_uri = args.tracking_uri or study.user_attrs.get(TRACKING_URI_ATTR)
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if not tracking_uri:
        raise ExportError(
            f"study {args.study_name!r} records no MLflow tracking URI; pass --tracking-uri"
        )
    _check_sqlite_file(tracking_uri, "MLflow tracking store", "--tracking-uri")
    tracker = Tracker(tracking_uri)
    tracker.check()
    data = load_data(args)

    # 2. The model: the one the search kept, or the spec trained afresh.
    from nas_mnist.console import console

    attrs = trial.user_attrs
    trial_metrics = {
        key: attrs.get(key)
        for key in ("val_accuracy", "test_accuracy", "best_epoch", "train_seconds", "params")
    }
    if args.retrain:
        model, metrics = _retrain(args, trial, spec, data)
        expected_test_accuracy = None
    else:
        from nas_mnist.exporting.savedmodel import load_trial_model

        model = load_trial_model(trial, tracker.tracking_uri)
        metrics = dict(trial_metrics)
        expected_test_accuracy = attrs.get("test_accuracy")
    if model.count_params() != spec.num_params:
        console.print(
            f"[red]the model of trial {trial.number} has {model.count_params():,} parameters "
            f"but its spec has {spec.num_params:,}: not the trial's model[/]"
        )
        return EXIT_FAILURE
    metrics = {
        "study_name": study.study_name,
        "trial_number": trial.number,
        "retrained": bool(args.retrain),
        "source_model_uri": None if args.retrain else attrs.get("model_uri"),
        **metrics,
        "trial": trial_metrics,
    }

    # 3. Write, verify in the partial folder, rename into place.
    from nas_mnist.exporting.savedmodel import VerificationError, export_savedmodel, verify_export

    def check(folder: Path) -> Any:
        return verify_export(
            folder, data.x_test, data.y_test, model, expected_test_accuracy=expected_test_accuracy
        )

    try:
        result = export_savedmodel(model, spec, metrics, out, force=args.force, check=check)
    except VerificationError as exc:
        console.print(f"[red]export failed its check, nothing written: {exc}[/]")
        return EXIT_FAILURE
    verification = result.verification
    console.print(
        f"exported trial {trial.number} of study {study.study_name!r} "
        f"({'retrained' if args.retrain else 'kept model'}, {spec.num_params:,} params) to "
        f"{result.path}\n"
        f"  reloaded with tf.saved_model.load: test_accuracy {verification.test_accuracy:.4f} on "
        f"{verification.num_images:,} test images"
        + (
            f" (trial recorded {expected_test_accuracy:.4f})"
            if expected_test_accuracy is not None
            else ""
        )
        + f", max abs difference from the in-memory model {verification.max_abs_difference:.2g}\n"
        f"  {len(result.manifest)} files listed in manifest.json; check later with "
        f"nas-mnist export --verify {result.path}"
    )

    # 4. MLflow: the study's parent run gets the model, so that the UI can register it.
    if not parent_run_id:
        console.print("MLflow: the study has no parent run; the model was not logged")
        return EXIT_OK
    from nas_mnist.exporting.savedmodel import log_to_mlflow

    try:
        model_uri = log_to_mlflow(
            model,
            tracker.tracking_uri,
            parent_run_id,
            trial.number,
            metadata={
                "study_name": study.study_name,
                "trial_number": trial.number,
                "spec_id": spec.spec_id,
                "retrained": bool(args.retrain),
            },
        )
    except Exception as exc:  # MLflow raises many types; the export itself is done
        console.print(
            f"[red]the export is complete, but logging it to MLflow run {parent_run_id} failed: "
            f"{exc}[/]"
        )
        return EXIT_FAILURE
    console.print(
        f"MLflow: logged as {model_uri} on parent run {parent_run_id} (tag best_trial="
        f"{trial.number}) in {tracker.tracking_uri}; register it from the MLflow UI"
    )
    return EXIT_OK


def _retrain(
    args: argparse.Namespace, trial: Any, spec: Any, data: Any
) -> tuple[Any, dict[str, Any]]:
    """Train ``spec`` afresh on ``data`` (seed + trial number, as the search seeds trials)."""
    import keras

    from nas_mnist.console import RichProgress
    from nas_mnist.model.training import train_spec

    epochs = args.epochs or DEFAULT_RETRAIN_EPOCHS
    seed = args.seed + trial.number
    with RichProgress(1) as progress:

        class EpochProgress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                progress.epoch_ended(trial.number, epoch, dict(logs or {}))

        progress.trial_started(trial.number, epochs, f"retrain trial {trial.number}")
        result = train_spec(spec, data, epochs, callbacks=[EpochProgress()], seed=seed)
        progress.trial_ended(trial.number, "complete", result.val_accuracy)
    return result.model, {
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "params": result.num_params,
        "epochs": epochs,
        "seed": seed,
        "num_train_images": len(data.y_train),
    }
