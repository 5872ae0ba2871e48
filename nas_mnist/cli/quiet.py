"""Quiet output for the CLI: TensorFlow imported with its C++ start-up lines dropped and its
tf.function retracing warnings hidden (the same rules as a ``--jobs`` worker's start,
``nas_mnist.processes.quiet_start``)."""

from nas_mnist.processes.quiet_start import (
    TENSORFLOW_STARTUP_NOISE,
    hide_retracing_warnings,
    import_tensorflow_quietly,
)

__all__ = ["TENSORFLOW_STARTUP_NOISE", "hide_retracing_warnings", "import_tensorflow_quietly"]
