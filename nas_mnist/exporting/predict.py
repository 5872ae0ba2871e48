"""``nas_mnist.predict(...)`` and ``nas-mnist predict``: classify your own digit images with an
exported model.

The model is an export folder (``nas_mnist.exporting.layout``: a SavedModel whose
``serving_default`` signature takes ``image`` float32 (n, 28, 28, 1) in [0, 1]); each file is
prepared as MNIST was (``nas_mnist.exporting.images``: grayscale, dark-on-light inverted,
size-normalised into 20x20 and centred by its centre of mass in 28x28).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_mnist.errors import InputError
from nas_mnist.exporting.images import ImageError, prepare_file
from nas_mnist.exporting.layout import SAVED_MODEL_NAME
from nas_mnist.exporting.manifest import MANIFEST_NAME, verify_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The class of one image file, or why it could not be read.

    Attributes:
        file: the file as given.
        label: the predicted digit 0..9 (``None`` if the file is not an image).
        probability: the model's softmax probability of ``label``, in [0, 1].
        probabilities: all ten class probabilities (sum 1), index = digit.
        inverted: the image was dark-on-light and was inverted before classifying.
        width, height: the file's size in pixels.
        error: why the file could not be classified (``label`` is then ``None``).
    """

    file: str
    label: int | None
    probability: float | None
    probabilities: tuple[float, ...] = ()
    inverted: bool = False
    width: int | None = None
    height: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "label", "probability"}``, the form ``nas-mnist predict --format json``
        prints."""
        return {"file": self.file, "label": self.label, "probability": self.probability}


def predict(
    model_dir: str | os.PathLike, files: Sequence[str | os.PathLike], *, skip_bad: bool = False
) -> list[Prediction]:
    """Classify image files with an exported model.

    Args:
        model_dir: a folder written by ``nas_mnist.export`` (any SavedModel with the same
            ``serving_default`` signature works).
        files: PNG, JPEG or ``.npy`` images of any size; see ``nas_mnist.exporting.images`` for
            how they are prepared (including the rule that inverts dark-on-light images).
        skip_bad: a file that is not an image gives a ``Prediction`` with ``error`` set instead
            of raising, and the others are still classified.

    Returns:
        One ``Prediction`` per file, in the order given.

    Raises:
        InputError: ``model_dir`` is not a SavedModel folder with the expected signature, its
            files differ from its ``manifest.json`` (checked before TensorFlow loads it), the
            SavedModel cannot be loaded, or ``files`` is empty.
        ImageError: a file is missing or not an image (unless ``skip_bad``); raised before the
            model is loaded.
    """
    import numpy as np

    if not files:
        raise InputError("no image files given; pass one or more PNG, JPEG or .npy files")
    _check_model_dir(model_dir)
    images, results = [], []
    for file in files:
        try:
            image, info = prepare_file(file)
        except ImageError as exc:
            if not skip_bad:
                raise
            results.append(Prediction(os.fspath(file), None, None, error=str(exc)))
            continue
        images.append(image)
        results.append(Prediction(os.fspath(file), None, None, inverted=info["inverted"],
                                  width=info["width"], height=info["height"]))
    signature = _load_signature(model_dir)
    probabilities = _run(signature, np.stack(images) if images else None)
    return _fill(results, probabilities)


def _fill(results: list[Prediction], probabilities: Any) -> list[Prediction]:
    import dataclasses

    rows = iter(probabilities if probabilities is not None else ())
    filled = []
    for result in results:
        if result.error is None:
            row = next(rows)
            label = int(row.argmax())
            result = dataclasses.replace(result, label=label, probability=float(row[label]),
                                         probabilities=tuple(float(p) for p in row))
        filled.append(result)
    return filled


def _check_model_dir(model_dir: str | os.PathLike) -> None:
    """Refuse a folder without a SavedModel, or an export whose files differ from its
    ``manifest.json`` (as ``nas-mnist export --verify`` checks): TensorFlow would fail on a
    changed variables file with a ``DataLossError``, or load a model that is not the one
    exported. A SavedModel without a manifest (not written by ``nas_mnist.export``) is loaded
    as it is.

    Raises:
        InputError: no ``saved_model.pb``, or files that differ from the manifest (the first
            problem named, with their number).
    """
    folder = Path(model_dir)
    if not (folder / SAVED_MODEL_NAME).is_file():
        raise InputError(f"{folder} is not an export folder (no {SAVED_MODEL_NAME}); pass the "
                         "folder that 'nas-mnist export --out DIR' wrote")
    if not (folder / MANIFEST_NAME).exists():
        logger.warning("%s has no %s: its files are not checked", folder, MANIFEST_NAME)
        return
    problems = verify_manifest(folder)
    if problems:
        raise InputError(
            f"{folder}: {len(problems)} problem(s) against {MANIFEST_NAME}: {problems[0]}"
            f"{'; ...' if len(problems) > 1 else ''}; the export was changed or damaged: run "
            f"'nas-mnist export --verify {folder}' to list them, and export again"
        )


def _load_signature(model_dir: str | os.PathLike) -> Any:
    """The checked ``serving_default`` signature of the SavedModel in ``model_dir``."""
    import tensorflow as tf

    folder = Path(model_dir)

    from nas_mnist.exporting.verification import VerificationError, check_signature

    try:
        return check_signature(tf.saved_model.load(os.fspath(folder)), folder)
    except VerificationError as exc:
        raise InputError(f"{folder}: {exc}") from None
    except (tf.errors.OpError, ValueError, OSError) as exc:  # e.g. DataLossError
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(f"{folder}: TensorFlow cannot load the SavedModel "
                         f"({type(exc).__name__}: {reason})") from None


def _run(signature: Any, images: Any) -> Any:
    from nas_mnist.exporting.verification import predict_savedmodel

    if images is None:
        return None
    logger.debug("classifying %d images", len(images))
    return predict_savedmodel(signature, images)
