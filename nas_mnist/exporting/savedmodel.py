"""Export the best trial of a study as a TensorFlow SavedModel, and prove it is the same model.

The export folder ``DIR`` is itself a SavedModel (written by Keras 3's ``model.export``), so TF
Serving, ``tf.saved_model.load(DIR)`` and ``tf.lite.TFLiteConverter.from_saved_model(DIR)`` read
it directly; SavedModel loaders ignore the extra files next to ``saved_model.pb``::

    DIR/
      saved_model.pb       the graph; endpoint ``serve`` and signature ``serving_default``
      variables/           the weights (variables.index, variables.data-00000-of-00001)
      assets/              empty for these models
      fingerprint.pb       TensorFlow's SavedModel fingerprint
      model.keras          the same model in Keras' own format (keras.saving.load_model)
      spec.json            the architecture spec (ArchitectureSpec.from_json)
      metrics.json         the trial's metrics and the export's own checks (see below)
      manifest.json        {relative path: SHA-256 hex digest} of every other file in DIR

The signature ``serving_default`` (endpoint ``serve``) takes one input ``image``: float32
(batch, 28, 28, 1), pixel values in [0, 1] (divide uint8 images by 255), and returns one output
``output_0``: float32 (batch, 10), softmax class probabilities whose rows sum to 1.

Atomicity: everything is written into a hidden sibling folder ``.DIR.partial-<pid>-<random>``,
checked there, and renamed to ``DIR`` at the end, so ``DIR`` is either complete or absent. An
export that dies in Python removes its partial folder; one killed outright (SIGKILL, power loss)
leaves it, and the next export to the same ``DIR`` removes partial folders whose process is gone.

Library code: it logs and raises, it never prints. TensorFlow, Keras and MLflow are imported inside
the functions that use them, so importing this module (for ``ExportError``) is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_mnist.architecture.spec import INPUT_SHAPE, NUM_CLASSES, ArchitectureSpec

if TYPE_CHECKING:
    import keras
    import numpy as np
    import optuna

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
KERAS_NAME = "model.keras"
SPEC_NAME = "spec.json"
METRICS_NAME = "metrics.json"
SAVED_MODEL_NAME = "saved_model.pb"
SERVING_SIGNATURE = "serving_default"
SERVING_ENDPOINT = "serve"
MLFLOW_MODEL_NAME = "best_model"
"""Name of the model logged to the study's MLflow parent run (``mlflow.keras`` flavour)."""
BEST_TRIAL_TAG = "best_trial"

PREDICTION_TOLERANCE = 1e-5
"""Largest allowed absolute difference between probabilities of the exported and in-memory model."""
ACCURACY_TOLERANCE = 1e-3
"""Largest allowed difference between the exported model's test_accuracy and the trial's."""
PREDICT_BATCH_SIZE = 1024
"""Images per batch when the checks predict the test set."""
_HASH_CHUNK_BYTES = 1 << 20


class ExportError(ValueError):
    """Bad input to an export (unknown or unfinished trial, unusable output folder).

    Raised before anything is written; the CLI turns it into exit status 2.
    """


class VerificationError(RuntimeError):
    """The exported model does not behave like the model it was exported from (exit status 1)."""


@dataclass(frozen=True)
class Verification:
    """What ``verify_export`` measured on the written folder.

    Attributes:
        num_images: test images predicted.
        test_accuracy: fraction of them the SavedModel classifies correctly, in [0, 1].
        max_abs_difference: largest |p_savedmodel - p_in_memory| over all probabilities.
        keras_max_abs_difference: largest |p_model.keras - p_in_memory| over all probabilities.
        expected_test_accuracy: the trial's recorded test_accuracy, if it was compared.
    """

    num_images: int
    test_accuracy: float
    max_abs_difference: float
    keras_max_abs_difference: float
    expected_test_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_test_images": self.num_images,
            "test_accuracy": self.test_accuracy,
            "max_abs_difference": self.max_abs_difference,
            "keras_max_abs_difference": self.keras_max_abs_difference,
            "expected_test_accuracy": self.expected_test_accuracy,
        }


@dataclass(frozen=True)
class ExportResult:
    """A finished export.

    Attributes:
        path: the export folder (absolute).
        manifest: {relative POSIX path: SHA-256 hex digest} of every file but ``manifest.json``.
        verification: what the ``check`` passed to ``export_savedmodel`` returned, if any.
        removed_partials: partial folders of killed earlier exports that were cleaned up.
    """

    path: Path
    manifest: dict[str, str]
    verification: Verification | None = None
    removed_partials: list[Path] = field(default_factory=list)


# --- choosing and loading the trial ------------------------------------------------------------


def pick_trial(study: optuna.Study, trial_number: int | None = None) -> optuna.trial.FrozenTrial:
    """The trial to export: ``trial_number``, or the completed trial with the best val_accuracy.

    Ties on val_accuracy go to the earliest trial.

    Args:
        study: a study written by ``nas-mnist search`` (objective value = val_accuracy).
        trial_number: the trial's number within the study (0-based), or None for the best.

    Returns:
        A completed trial.

    Raises:
        ExportError: the study has no completed trial, has no trial ``trial_number``, or that
            trial is not complete (running, pruned or failed).
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    numbers = ", ".join(str(t.number) for t in completed[:20]) + (
        ", ..." if len(completed) > 20 else ""
    )
    if trial_number is None:
        if not completed:
            raise ExportError(
                f"study {study.study_name!r} has {len(trials)} trial(s) but no trial has "
                "completed yet; run 'nas-mnist search' until one completes, then export"
            )
        return max(completed, key=lambda t: (_val_accuracy(t), -t.number))
    by_number = {t.number: t for t in trials}
    if trial_number not in by_number:
        raise ExportError(
            f"study {study.study_name!r} has no trial {trial_number} (its trials are numbered "
            f"0..{len(trials) - 1}); completed trials: {numbers or 'none'}"
        )
    trial = by_number[trial_number]
    if trial.state != TrialState.COMPLETE:
        reason = trial.user_attrs.get("reason")
        raise ExportError(
            f"trial {trial_number} of study {study.study_name!r} is "
            f"{trial.state.name.lower()}, not complete"
            + (f" ({reason})" if reason else "")
            + f"; export a completed trial instead: {numbers or 'no trial has completed yet'}"
        )
    return trial


def _val_accuracy(trial: optuna.trial.FrozenTrial) -> float:
    from nas_mnist.engine.study import val_accuracy_of

    value = val_accuracy_of(trial)
    return float("-inf") if value is None else value


def trial_spec(trial: optuna.trial.FrozenTrial) -> ArchitectureSpec:
    """The spec the objective stored on ``trial``.

    Raises:
        ExportError: the trial has no spec (it was not written by ``nas-mnist search``).
        SpecError: the stored spec is malformed.
    """
    data = trial.user_attrs.get("spec")
    if data is None:
        raise ExportError(
            f"trial {trial.number} has no 'spec' user attribute; only trials run by "
            "'nas-mnist search' can be exported"
        )
    return ArchitectureSpec.from_dict(data)


def load_trial_model(trial: optuna.trial.FrozenTrial, tracking_uri: str) -> keras.Model:
    """Download the trained model the search kept for ``trial`` and load it.

    Args:
        trial: a completed trial with the ``model_uri`` user attribute
            (``runs:/<run_id>/model/model.keras``).
        tracking_uri: the MLflow tracking URI the study logged to.

    Returns:
        The trained ``keras.Model`` (best epoch by val_accuracy), compiled as it was saved.

    Raises:
        ExportError: the trial kept no model, or the artifact cannot be downloaded or loaded;
            ``--retrain`` trains the spec afresh instead.
    """
    model_uri = trial.user_attrs.get("model_uri")
    if not model_uri:
        raise ExportError(
            f"trial {trial.number} kept no trained model (no 'model_uri' user attribute); "
            "pass --retrain to train its spec afresh"
        )
    import keras
    import mlflow

    with tempfile.TemporaryDirectory(prefix="nas_mnist_export_") as tmp:
        try:
            with _no_progress_bar():
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri
                )
        except Exception as exc:  # MlflowException, OSError, ...: all mean "not there"
            raise ExportError(
                f"cannot download {model_uri} of trial {trial.number} from {tracking_uri}: "
                f"{_first_line(exc)}; check --tracking-uri, or pass --retrain to train the "
                "spec afresh"
            ) from None
        try:
            model = keras.saving.load_model(local)
        except Exception as exc:
            raise ExportError(
                f"{model_uri} of trial {trial.number} is not a loadable Keras model: "
                f"{_first_line(exc)}; pass --retrain to train the spec afresh"
            ) from None
    logger.info("loaded trial %d's model from %s", trial.number, model_uri)
    return model


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Keep MLflow's artifact download bar (tqdm on stderr) out of the CLI's output."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the output folder -------------------------------------------------------------------------


def check_out_dir(out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Check that an export can be written to ``out_dir``, without writing anything.

    Args:
        out_dir: the export folder to create.
        force: allow replacing an existing folder, if it is empty or a previous export (holds
            ``manifest.json`` or ``saved_model.pb``); anything else is never replaced.

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        ExportError: ``out_dir`` exists (without ``force``, or is not a previous export), its
            parent folder does not exist or is not a folder, or the parent is not writable.
    """
    path = Path(out_dir).expanduser().absolute()
    if path.name in ("", ".", ".."):
        raise ExportError(f"--out {os.fspath(out_dir)!r} names no new folder; pass e.g. --out best")
    if path.exists() or path.is_symlink():
        if not force:
            raise ExportError(
                f"{path} already exists; pass --force to replace it, or choose another --out"
            )
        if path.is_symlink() or not path.is_dir():
            raise ExportError(f"{path} exists and is not a folder; refusing to replace it")
        if any(path.iterdir()) and not (
            (path / MANIFEST_NAME).is_file() or (path / SAVED_MODEL_NAME).is_file()
        ):
            raise ExportError(
                f"refusing to replace {path}: it is not empty and is not a nas-mnist export "
                f"(no {MANIFEST_NAME}); choose another --out"
            )
    parent = path.parent
    if not parent.exists():
        raise ExportError(f"the parent folder {parent} of --out does not exist; create it first")
    if not parent.is_dir():
        raise ExportError(f"{parent} is not a folder, so --out {path} cannot be created in it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(
            f"cannot write to {parent} (permission denied); choose --out in a writable folder"
        )
    return path


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def _replaced_prefix(path: Path) -> str:
    return f".{path.name}.replaced-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or we cannot tell: keep its folder
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove leftovers of killed exports to ``path``: ``.NAME.partial-<pid>-*`` folders.

    Only folders whose process ``<pid>`` no longer runs are removed, so a concurrent export to the
    same folder is left alone. ``.NAME.replaced-<pid>-*`` (the previous export, moved aside
    during ``--force``) is removed only once ``path`` exists again.

    Returns:
        The folders removed.
    """
    removed = []
    for prefix in (_partial_prefix(path), _replaced_prefix(path)):
        if prefix == _replaced_prefix(path) and not path.is_dir():
            continue
        pattern = re.compile(re.escape(prefix) + r"(\d+)-")
        for candidate in path.parent.glob(prefix + "*"):
            match = pattern.match(candidate.name)
            if match is None or not candidate.is_dir() or _pid_alive(int(match.group(1))):
                continue
            shutil.rmtree(candidate, ignore_errors=True)
            logger.info("removed %s, left by an export that was killed", candidate)
            removed.append(candidate)
    return removed


# --- writing -----------------------------------------------------------------------------------


def export_savedmodel(
    model: keras.Model,
    spec: ArchitectureSpec,
    metrics: Mapping[str, Any],
    out_dir: str | os.PathLike,
    force: bool = False,
    check: Callable[[Path], Verification] | None = None,
) -> ExportResult:
    """Write ``model`` as a SavedModel folder with its ``.keras`` file, spec, metrics and manifest.

    The folder is written as ``.NAME.partial-<pid>-<random>`` next to ``out_dir``, checked there by
    ``check`` (before ``metrics.json`` and ``manifest.json`` are written, so its results are in
    both), then renamed to ``out_dir``. If anything fails, the partial folder is removed and
    ``out_dir`` is left as it was. See the module docstring for the layout.

    Args:
        model: a ``keras.Model`` taking float32 (batch, 28, 28, 1) images in [0, 1] and returning
            (batch, 10) class probabilities.
        spec: its architecture spec (written as ``spec.json``).
        metrics: JSON-serialisable metrics of the model (written as ``metrics.json``).
        out_dir: the folder to create.
        force: replace an existing export at ``out_dir`` (see ``check_out_dir``).
        check: called with the partial folder once the model files are written; returns what it
            measured (stored under ``"export"`` in ``metrics.json``) or raises to abort.

    Returns:
        The finished export.

    Raises:
        ExportError: ``out_dir`` cannot be written (see ``check_out_dir``).
        VerificationError: from ``check``; nothing is left behind.
    """
    path = check_out_dir(out_dir, force)
    removed = remove_stale_partials(path)
    partial = Path(
        tempfile.mkdtemp(prefix=f"{_partial_prefix(path)}{os.getpid()}-", dir=path.parent)
    )
    try:
        os.chmod(partial, 0o777 & ~_umask())  # mkdtemp makes it private (0o700)
        model.export(os.fspath(partial), format="tf_saved_model", verbose=False)
        model.save(partial / KERAS_NAME)
        (partial / SPEC_NAME).write_text(spec.to_json(indent=2) + "\n")
        verification = check(partial) if check is not None else None
        all_metrics = dict(metrics)
        if verification is not None:
            all_metrics["export"] = verification.to_dict()
        (partial / METRICS_NAME).write_text(json.dumps(all_metrics, indent=2) + "\n")
        manifest = write_manifest(partial)
        _move_into_place(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info("exported %d files to %s", len(manifest) + 1, path)
    return ExportResult(path, manifest, verification, removed)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _move_into_place(partial: Path, path: Path) -> None:
    """Rename ``partial`` to ``path``; an existing ``path`` (``--force``) is moved aside first."""
    if not (path.exists() or path.is_symlink()):
        os.rename(partial, path)
        return
    aside = path.parent / f"{_replaced_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(path, aside)
    try:
        os.rename(partial, path)
    except BaseException:
        os.rename(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Relative POSIX paths of every file under ``folder`` except the manifest, sorted."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if not p.is_dir() and p.relative_to(folder).as_posix() != MANIFEST_NAME
    )


def write_manifest(folder: Path) -> dict[str, str]:
    """Write ``manifest.json``: {relative POSIX path: SHA-256 hex digest} of every other file.

    Returns:
        The manifest written.
    """
    manifest = {name: sha256_file(folder / name) for name in _files(folder)}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Re-check an export folder against its ``manifest.json``.

    Args:
        folder: an export folder.

    Returns:
        One line per problem, empty if every file matches: ``"changed: PATH (...)"`` for a file
        whose SHA-256 differs, ``"missing: PATH"`` for a listed file that is gone, ``"extra:
        PATH"`` for a file the manifest does not list, ``"unreadable: PATH (...)"`` for a file
        that cannot be read, or a line saying the manifest itself is missing or unreadable.

    Raises:
        ExportError: ``folder`` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder; pass the folder that 'nas-mnist export' wrote")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"missing: {MANIFEST_NAME} (not an export folder, or the manifest was deleted)"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"changed: {MANIFEST_NAME} is not readable JSON ({exc})"]
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        return [f"changed: {MANIFEST_NAME} is not a {{path: sha256}} object"]
    problems = []
    resolved_root = root.resolve()
    for name, expected in sorted(manifest.items()):
        target = root / name
        try:
            if Path(name).is_absolute() or not target.resolve().is_relative_to(resolved_root):
                problems.append(f"changed: {MANIFEST_NAME} lists {name!r}, outside the folder")
            elif not target.is_file():
                problems.append(f"missing: {name}")
            else:
                found = sha256_file(target)
                if found != expected:
                    problems.append(f"changed: {name} (sha256 {found}, manifest says {expected})")
        except (OSError, RuntimeError) as exc:  # no permission, a symlink loop (RuntimeError)
            problems.append(f"unreadable: {name} ({exc})")
    problems.extend(f"extra: {name}" for name in _files(root) if name not in manifest)
    return problems


# --- checking the written model ----------------------------------------------------------------


def predict_savedmodel(
    signature: Any, x: np.ndarray, batch_size: int = PREDICT_BATCH_SIZE
) -> np.ndarray:
    """Run a ``serving_default`` signature over ``x`` in batches.

    Args:
        signature: ``tf.saved_model.load(DIR).signatures["serving_default"]``.
        x: float32 array (n, 28, 28, 1), values in [0, 1].
        batch_size: images per call.

    Returns:
        float32 array (n, 10): class probabilities.
    """
    import numpy as np
    import tensorflow as tf

    (input_name,) = signature.structured_input_signature[1]
    outputs = []
    for start in range(0, len(x), batch_size):
        result = signature(**{input_name: tf.constant(x[start : start + batch_size])})
        (probabilities,) = result.values()
        outputs.append(probabilities.numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), np.float32)


def _check_signature(loaded: Any, folder: Path) -> Any:
    """The ``serving_default`` signature of ``loaded``, checked against the documented contract."""
    import tensorflow as tf

    if SERVING_SIGNATURE not in loaded.signatures or not hasattr(loaded, SERVING_ENDPOINT):
        raise VerificationError(
            f"{folder} has signatures {sorted(loaded.signatures)}; expected endpoint "
            f"{SERVING_ENDPOINT!r} and signature {SERVING_SIGNATURE!r}"
        )
    signature = loaded.signatures[SERVING_SIGNATURE]
    inputs = list(signature.structured_input_signature[1].values())
    outputs = list(signature.structured_outputs.values())
    expected_input = [None, *INPUT_SHAPE]
    if (
        len(inputs) != 1
        or inputs[0].dtype != tf.float32
        or inputs[0].shape.as_list() != expected_input
    ):
        raise VerificationError(
            f"{SERVING_SIGNATURE} of {folder} takes {inputs}; expected one float32 input of "
            f"shape {tuple(expected_input)}"
        )
    if len(outputs) != 1 or outputs[0].shape.as_list() != [None, NUM_CLASSES]:
        raise VerificationError(
            f"{SERVING_SIGNATURE} of {folder} returns {outputs}; expected one output of shape "
            f"(None, {NUM_CLASSES})"
        )
    return signature


def verify_export(
    folder: str | os.PathLike,
    x_test: np.ndarray,
    y_test: np.ndarray,
    model: keras.Model,
    expected_test_accuracy: float | None = None,
    tolerance: float = PREDICTION_TOLERANCE,
    accuracy_tolerance: float = ACCURACY_TOLERANCE,
) -> Verification:
    """Prove that the files in ``folder`` are ``model``.

    Reloads the SavedModel with ``tf.saved_model.load`` and ``model.keras`` with
    ``keras.saving.load_model``, predicts ``x_test`` with both and with ``model``, and compares.

    Args:
        folder: an export folder (complete but for ``metrics.json`` and ``manifest.json``).
        x_test: float32 array (n, 28, 28, 1), values in [0, 1].
        y_test: int array (n,), labels 0..9.
        model: the in-memory model that was exported.
        expected_test_accuracy: the trial's recorded test_accuracy (fraction in [0, 1]) on the
            same images, or None to skip that comparison (e.g. after ``--retrain``).
        tolerance: largest allowed absolute difference between probabilities.
        accuracy_tolerance: largest allowed |test_accuracy - expected_test_accuracy|.

    Returns:
        What was measured.

    Raises:
        VerificationError: the signature differs from the documented one, rows do not sum to 1,
            predictions differ by ``tolerance`` or more, or the test accuracy differs from
            ``expected_test_accuracy`` by more than ``accuracy_tolerance`` (a different model).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    root = Path(folder)
    signature = _check_signature(tf.saved_model.load(os.fspath(root)), root)
    exported = predict_savedmodel(signature, x_test)
    in_memory = np.asarray(model.predict(x_test, batch_size=PREDICT_BATCH_SIZE, verbose=0))
    from_keras_file = np.asarray(
        keras.saving.load_model(root / KERAS_NAME).predict(
            x_test, batch_size=PREDICT_BATCH_SIZE, verbose=0
        )
    )
    if exported.shape != (len(x_test), NUM_CLASSES):
        raise VerificationError(
            f"the SavedModel returned shape {exported.shape} for {len(x_test)} images; "
            f"expected ({len(x_test)}, {NUM_CLASSES})"
        )
    row_sums = exported.sum(axis=1)
    worst_sum = float(np.abs(row_sums - 1.0).max()) if len(row_sums) else 0.0
    if worst_sum > 1e-4:
        raise VerificationError(
            f"the SavedModel's outputs are not probabilities: a row sums to 1 +/- {worst_sum:.2g}"
        )
    difference = float(np.abs(exported - in_memory).max()) if len(x_test) else 0.0
    keras_difference = float(np.abs(from_keras_file - in_memory).max()) if len(x_test) else 0.0
    for what, value in (("SavedModel", difference), (KERAS_NAME, keras_difference)):
        if not value < tolerance:
            raise VerificationError(
                f"the exported {what} predicts differently from the in-memory model: max abs "
                f"difference {value:.3g} >= {tolerance:g}"
            )
    accuracy = float((exported.argmax(axis=1) == np.asarray(y_test)).mean()) if len(x_test) else 0.0
    if expected_test_accuracy is not None and abs(accuracy - expected_test_accuracy) > (
        accuracy_tolerance
    ):
        raise VerificationError(
            f"the exported model's test_accuracy is {accuracy:.4f} but the trial recorded "
            f"{expected_test_accuracy:.4f} (tolerance {accuracy_tolerance:g}): this is a "
            "different model, or a different test set (check --data)"
        )
    logger.info(
        "verified %s: test_accuracy %.4f on %d images, max abs difference %.2g",
        root,
        accuracy,
        len(x_test),
        difference,
    )
    return Verification(len(x_test), accuracy, difference, keras_difference, expected_test_accuracy)


# --- MLflow ------------------------------------------------------------------------------------


def log_to_mlflow(
    model: keras.Model,
    tracking_uri: str,
    parent_run_id: str,
    trial_number: int,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log ``model`` to the study's parent run as an ``mlflow.keras`` model named ``best_model``.

    The parent run keeps its status (a finished search stays FINISHED) and gets the tag
    ``best_trial=<trial_number>``. ``mlflow.keras.load_model(uri)`` loads the model back; the
    MLflow UI can register it.

    Args:
        model: the exported model.
        tracking_uri: the study's MLflow tracking URI.
        parent_run_id: the study's parent run.
        trial_number: the exported trial's number.
        metadata: extra JSON-serialisable facts stored in the MLmodel file.

    Returns:
        The logged model's URI (``models:/<model_id>``).

    Raises:
        mlflow.exceptions.MlflowException: the run cannot be written.
    """
    import keras
    import mlflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    before = client.get_run(parent_run_id).info
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *INPUT_SHAPE), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), "probabilities")]),
    )
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=parent_run_id):
            info = mlflow.keras.log_model(
                model,
                name=MLFLOW_MODEL_NAME,
                signature=signature,
                # Explicit requirements: MLflow would otherwise spend seconds inferring them.
                pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
                metadata=dict(metadata or {}),
            )
            mlflow.set_tag(BEST_TRIAL_TAG, str(trial_number))
    finally:
        mlflow.set_tracking_uri(previous_uri)
        # start_run(run_id=...) reopened the run and its end marked it FINISHED: restore it.
        if before.status == "RUNNING":
            client.update_run(parent_run_id, status="RUNNING")
        else:
            client.set_terminated(parent_run_id, status=before.status, end_time=before.end_time)
    logger.info(
        "logged %s to MLflow run %s as %s", MLFLOW_MODEL_NAME, parent_run_id, info.model_uri
    )
    return info.model_uri
