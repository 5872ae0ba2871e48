"""Export the best trial of a study as a TensorFlow SavedModel, and prove it is the same model.

Layout of the folder: ``nas_mnist.exporting.layout``.
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

from nas_mnist.architecture.spec import ArchitectureSpec
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
    SPEC_NAME,
    ExportResult,
)
from nas_mnist.exporting.manifest import write_manifest
from nas_mnist.exporting.verification import Verification

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

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
        model.export(os.fspath(partial), format="tf_saved_model", verbose=False)
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
    logger.info("exported %d files to %s", len(manifest) + 1, path)
    return ExportResult(path, manifest, verification, removed)
