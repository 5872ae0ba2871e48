"""Classify a few MNIST test images with a model written by ``nas-mnist export``.

Uses only TensorFlow and NumPy (no nas-mnist, no Keras model code), as a serving client would:

    python scripts/classify_with_savedmodel.py best --data ../shared/data/mnist.npz --count 8

The export folder is a SavedModel whose ``serving_default`` signature takes ``image``: float32
(batch, 28, 28, 1) in [0, 1], and returns ``output_0``: float32 (batch, 10) class probabilities.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def load_test_images(path: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` test images of an MNIST ``.npz`` (Keras' keys), ready for the model.

    Returns:
        float32 array (count, 28, 28, 1) in [0, 1], and int array (count,) of labels 0..9.
    """
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x_test"][:count], data["y_test"][:count]
    x = x.astype(np.float32)
    if x.max() > 1.0:  # uint8 pixels 0..255
        x /= 255.0
    return x.reshape(len(x), 28, 28, 1), y.astype(np.int64)


def main() -> None:
    """Classify ``--count`` test images with the exported model; print each and the total."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", metavar="DIR", help="folder written by 'nas-mnist export --out'")
    parser.add_argument(
        "--data",
        metavar="PATH",
        default=os.environ.get("NAS_MNIST_DATA", "../shared/data/mnist.npz"),
        help="MNIST .npz with Keras' keys (default: $NAS_MNIST_DATA, else "
        "../shared/data/mnist.npz)",
    )
    parser.add_argument("--count", type=int, default=8, help="test images to classify (default 8)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported
    import tensorflow as tf  # here, so that --help answers at once

    serve = tf.saved_model.load(args.dir).signatures["serving_default"]
    x, y = load_test_images(args.data, args.count)
    outputs = serve(image=tf.constant(x))  # {"output_0": (count, 10) probabilities}
    probabilities = next(iter(outputs.values())).numpy()
    predicted = probabilities.argmax(axis=1)

    print(f"{'image':>5}  {'true':>4}  {'predicted':>9}  {'probability':>11}")
    for i, (true, guess) in enumerate(zip(y, predicted, strict=True)):
        mark = "" if true == guess else "  <- wrong"
        print(f"{i:>5}  {true:>4}  {guess:>9}  {probabilities[i, guess]:>11.3f}{mark}")
    print(f"{int((predicted == y).sum())} of {len(y)} correct")


if __name__ == "__main__":
    main()
