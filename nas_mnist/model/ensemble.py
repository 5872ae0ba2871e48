"""The mean-softmax ensemble: one Keras model that averages its members' class probabilities.

Unweighted averaging of the members' softmax outputs (Dietterich, "Ensemble methods in machine
learning", MCS 2000; Lakshminarayanan et al., "Simple and scalable predictive uncertainty
estimation using deep ensembles", NeurIPS 2017). The result is a plain functional model of
Keras' own layers (the members nested in it), so ``keras.saving.load_model`` and
``mlflow.pyfunc.load_model`` load it without nas-mnist, as long as the members are inference
models (``nas_mnist.model.builder.inference_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas_mnist.architecture.spec import INPUT_SHAPE

INPUT_NAME = "image"
"""The ensemble's input name (as every nas-mnist model's signature: ``tracking.models``)."""
OUTPUT_LAYER = "probabilities"
"""Name of the averaging layer, the ensemble's output."""


def mean_softmax_model(members: Sequence[Any], names: Sequence[str] | None = None) -> Any:
    """A functional ``keras.Model`` whose output is the mean of ``members``' outputs.

    Args:
        members: at least 2 Keras models, each float32 images (n, 28, 28, 1) in [0, 1] to
            (n, 10) softmax probabilities. They are renamed (Keras needs unique names).
        names: their new names (e.g. ``trial_12``); default ``member_0``, ``member_1``, ...

    Returns:
        A ``keras.Model`` with input ``image`` float32 (n, 28, 28, 1) and output float32
        (n, 10), the rows of which sum to 1; named ``ensemble_of_<n>``.

    Raises:
        ValueError: fewer than 2 members, or ``names`` not one per member or not unique.
    """
    import keras

    names = list(names) if names is not None else [f"member_{i}" for i in range(len(members))]
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    if len(names) != len(members) or len(set(names)) != len(names):
        raise ValueError(f"expected {len(members)} unique member names, got {names}")
    for model, name in zip(members, names, strict=True):
        model.name = name
    image = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME, dtype="float32")
    outputs = [model(image) for model in members]
    mean = keras.layers.Average(name=OUTPUT_LAYER)(outputs)
    return keras.Model(image, mean, name=f"ensemble_of_{len(members)}")
