"""Export the best trial of a study as a TensorFlow SavedModel, and prove it is the same model.

Layout of the folder: ``nas_mnist.exporting.layout``. The SavedModel has three endpoints, each
also a signature of the same name (Keras 3 ``keras.export.ExportArchive``):

- ``serve``, also ``serving_default`` (the first endpoint, what TF Serving and
  ``nas_mnist.predict`` use), exactly what ``model.export`` writes: input ``image`` float32
  (N, 28, 28, 1) in [0, 1] -> ``output_0`` float32 (N, 10) softmax probabilities. Unchecked:
  wrongly scaled input gives a wrong answer, silently.
- ``serve_pixels``: input ``pixels`` uint8 (N, 28, 28), MNIST bytes 0-255, scaled by 1/255 and
  reshaped inside -> ``{"label": int64 (N,), "probabilities": float32 (N, 10)}``.
- ``serve_flat``: input ``image`` float32 (N, 784) in [0, 1], checked inside the graph (finite,
  0 <= x <= 1; else ``tf.errors.InvalidArgumentError`` whose message holds ``FLAT_RANGE_HINT``)
  -> the same dict.

The last two call ``serve``'s function on the scaled, reshaped images, so they give its
probabilities (to float32 rounding, < 1e-6) and ``label`` is their argmax. With them the
SavedModel accepts what the logged MLflow models accept (``nas_mnist.tracking.served_model``:
uint8 0-255 or float 0-1 images, answered with label and probabilities); the (N, 28, 28, 1)
input, unchecked, stays on ``serve`` alone, so that ``serving_default`` is unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_mnist.architecture.spec import INPUT_SHAPE, ArchitectureSpec
from nas_mnist.atomic_folders import (
    current_umask,
    move_into_place,
    partial_prefix,
    remove_stale_partials,
)
from nas_mnist.exporting.atomic import check_out_dir
from nas_mnist.exporting.layout import (
    KERAS_NAME,
    METRICS_NAME,
    SERVING_ENDPOINT,
    SPEC_NAME,
    ExportResult,
)
from nas_mnist.exporting.manifest import write_manifest
from nas_mnist.exporting.verification import Verification

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

PIXELS_ENDPOINT = "serve_pixels"
"""Endpoint and signature for uint8 (N, 28, 28) pixels 0-255."""
FLAT_ENDPOINT = "serve_flat"
"""Endpoint and signature for float32 (N, 784) pixels in [0, 1], range-checked."""
FLAT_RANGE_HINT = f"send floats in [0, 1] or use {PIXELS_ENDPOINT} for 0-255 bytes"
"""What ``serve_flat``'s InvalidArgumentError says (NaN, infinity, or values outside [0, 1])."""
PIXEL_SCALE = 255.0
"""uint8 pixels are divided by this, as the models' training data were (``nas_mnist.data``)."""


def export_savedmodel(
    model: keras.Model,
    spec: ArchitectureSpec | None,
    metrics: Mapping[str, Any],
    out_dir: str | os.PathLike,
    force: bool = False,
    check: Callable[[Path], Verification] | None = None,
    extra_json: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Write ``model`` as a SavedModel folder with its ``.keras`` file, spec, metrics and manifest.

    The SavedModel has the endpoints ``serve`` (= ``serving_default``), ``serve_pixels`` and
    ``serve_flat`` (``write_savedmodel``, module docstring).

    The folder is written as ``.NAME.partial-<pid>-<random>`` next to ``out_dir``, checked there by
    ``check`` (before ``metrics.json`` and ``manifest.json`` are written, so its results are in
    both), then renamed to ``out_dir``. If anything fails, the partial folder is removed and
    ``out_dir`` is left as it was. See the module docstring for the layout.

    Args:
        model: a ``keras.Model`` taking float32 (batch, 28, 28, 1) images in [0, 1] and returning
            (batch, 10) class probabilities.
        spec: its architecture spec (written as ``spec.json``), or None for a model that has no
            single spec (an ensemble: its members' specs go in ``extra_json``).
        metrics: JSON-serialisable metrics of the model (written as ``metrics.json``).
        out_dir: the folder to create.
        force: replace an existing export at ``out_dir`` (see ``check_out_dir``).
        check: called with the partial folder once the model files are written; returns what it
            measured (stored under ``"export"`` in ``metrics.json``) or raises to abort.
        extra_json: {file name: JSON-serialisable object} of further files to write (listed in
            the manifest like the others), e.g. ``{"ensemble.json": {...}}``.

    Returns:
        The finished export.

    Raises:
        ExportError: ``out_dir`` cannot be written (see ``check_out_dir``).
        VerificationError: from ``check``; nothing is left behind.
    """
    path = check_out_dir(out_dir, force)
    removed = remove_stale_partials(path)
    partial = Path(
        tempfile.mkdtemp(prefix=f"{partial_prefix(path)}{os.getpid()}-", dir=path.parent)
    )
    try:
        os.chmod(partial, 0o777 & ~current_umask())  # mkdtemp makes it private (0o700)
        write_savedmodel(model, partial)
        model.save(partial / KERAS_NAME)
        if spec is not None:
            (partial / SPEC_NAME).write_text(spec.to_json(indent=2) + "\n")
        for name, content in (extra_json or {}).items():
            (partial / name).write_text(json.dumps(content, indent=2) + "\n")
        verification = check(partial) if check is not None else None
        all_metrics = dict(metrics)
        if verification is not None:
            all_metrics["export"] = verification.to_dict()
        (partial / METRICS_NAME).write_text(json.dumps(all_metrics, indent=2) + "\n")
        manifest = write_manifest(partial)
        move_into_place(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.debug("exported %d files to %s", len(manifest) + 1, path)
    return ExportResult(path, manifest, verification, removed)


def write_savedmodel(model: keras.Model, folder: str | os.PathLike) -> None:
    """Write ``model`` as a SavedModel in ``folder`` with the three endpoints of the module
    docstring: ``serve`` (first, so also ``serving_default``), ``serve_pixels``, ``serve_flat``.

    ``serve`` is what ``model.export(folder, format="tf_saved_model")`` writes: its input spec is
    made from ``model.inputs`` as Keras' ``model.export`` makes it (name, dtype, (None, ...)
    shape). The other two are ``tf.function``s around ``serve``'s function, so they work with
    any Keras backend that can export (TensorFlow must be installed).

    Args:
        model: a built single-input ``keras.Model`` taking float32 (batch, 28, 28, 1) images in
            [0, 1] and returning (batch, 10) class probabilities.
        folder: where ``tf.saved_model.save`` writes (an existing empty folder is fine).

    Raises:
        ValueError: ``model`` does not have exactly one input.
    """
    import keras
    import tensorflow as tf

    (image,) = model.inputs
    archive = keras.export.ExportArchive()
    serve = archive.track_and_add_endpoint(
        SERVING_ENDPOINT, model,
        [keras.InputSpec(shape=(None, *image.shape[1:]), dtype=image.dtype, name=image.name)],
    )
    side, _, channels = INPUT_SHAPE

    def answer(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.cast(serve(tf.reshape(images, (-1, *INPUT_SHAPE))), tf.float32)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"label": label, "probabilities": probabilities}

    @tf.function(input_signature=[tf.TensorSpec((None, side, side), tf.uint8, name="pixels")],
                 autograph=False)
    def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return answer(tf.cast(pixels, tf.float32) / PIXEL_SCALE)

    flat_spec = tf.TensorSpec((None, side * side * channels), tf.float32, name="image")

    @tf.function(input_signature=[flat_spec], autograph=False)
    def serve_flat(flat: tf.Tensor) -> dict[str, tf.Tensor]:
        message = f"{FLAT_ENDPOINT}: {FLAT_RANGE_HINT}"
        flat = tf.debugging.assert_all_finite(flat, message)
        checks = [tf.debugging.assert_greater_equal(flat, 0.0, message=message),
                  tf.debugging.assert_less_equal(flat, 1.0, message=message)]
        with tf.control_dependencies(checks):
            return answer(tf.identity(flat))

    for name, function in ((PIXELS_ENDPOINT, serve_pixels), (FLAT_ENDPOINT, serve_flat)):
        function.get_concrete_function()  # ExportArchive takes a tf.function once traced
        archive.add_endpoint(name, function)
    archive.write_out(os.fspath(folder), verbose=False)
