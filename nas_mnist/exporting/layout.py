"""Export a study's champion or best trial as a TensorFlow SavedModel, and prove it is the same
model.

The export folder ``DIR`` is itself a SavedModel (written by Keras 3's ``model.export``), so TF
Serving, ``tf.saved_model.load(DIR)`` and ``tf.lite.TFLiteConverter.from_saved_model(DIR)`` read
it directly; SavedModel loaders ignore the extra files next to ``saved_model.pb``::

    DIR/
      saved_model.pb       the graph; endpoint ``serve`` and signature ``serving_default``
      variables/           the weights (variables.index, variables.data-00000-of-00001)
      assets/              empty for these models
      fingerprint.pb       TensorFlow's SavedModel fingerprint
      model.keras          the same model in Keras' own format (keras.saving.load_model)
      spec.json            the architecture spec (ArchitectureSpec.from_json); an ensemble
                           (export --ensemble K) has ensemble.json instead: its member trials
      metrics.json         the trial's metrics and the export's own checks; "final_model"
                           says whether it is a final model (the champion of ``nas-mnist
                           retrain``), and then "final" holds its recipe (epochs, training
                           images, augmentation, lr_schedule, seed) and its source trial or
                           baseline (``nas_mnist.exporting.final``)
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_mnist.errors import InputError

if TYPE_CHECKING:
    pass


KERAS_NAME = "model.keras"
SPEC_NAME = "spec.json"
METRICS_NAME = "metrics.json"
SAVED_MODEL_NAME = "saved_model.pb"
SERVING_SIGNATURE = "serving_default"
SERVING_ENDPOINT = "serve"


class ExportError(InputError):
    """Bad input to an export (unknown or unfinished trial, unusable output folder).

    Raised before anything is written; the CLI turns it into exit status 2.
    """


@dataclass(frozen=True)
class ExportResult:
    """A finished export.

    Attributes:
        path: the export folder (absolute).
        manifest: {relative POSIX path: SHA-256 hex digest} of every file but ``manifest.json``.
        verification: what the ``check`` passed to ``export_savedmodel`` returned, if any.
        removed_partials: partial folders of killed earlier exports that were cleaned up.
        trial_number: the exported search trial (``nas_mnist.export``), or the one the
            exported final model retrains (None when it retrains a baseline).
        expected_test_accuracy: the trial's recorded test_accuracy that the export reproduced
            (``None`` for a retrained model).
        parent_run_id, tracking_uri: the MLflow run the model was logged to.
        mlflow_model_uri: the logged model (``runs:/<parent run>/best_model``), if logged.
        mlflow_error: why the model could not be logged to MLflow (the export itself is done).
        members: for an ensemble (``nas_mnist.export(ensemble=K)``): one dict per member trial,
            best first (trial_number, val_accuracy, test_accuracy, model_uri, ...); else empty.
        final: for a final model (the champion): what ``metrics.json`` says of it under
            ``"final"`` (``nas_mnist.exporting.final.final_facts``: its number in
            ``<study>/final``, source trial or baseline, seed, recipe); None for a search trial.
    """

    path: Path
    manifest: dict[str, str]
    verification: Any = None
    removed_partials: list[Path] = field(default_factory=list)
    trial_number: int | None = None
    expected_test_accuracy: float | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    mlflow_model_uri: str | None = None
    mlflow_error: str | None = None
    members: tuple[dict[str, Any], ...] = ()
    final: dict[str, Any] | None = None
