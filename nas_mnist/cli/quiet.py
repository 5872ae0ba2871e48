"""Quiet output for the CLI: TensorFlow imported with its C++ start-up lines dropped (the same
rules as a ``--jobs`` worker's start, ``nas_mnist.processes.quiet_start``)."""

from nas_mnist.processes.quiet_start import TENSORFLOW_STARTUP_NOISE, import_tensorflow_quietly

__all__ = ["TENSORFLOW_STARTUP_NOISE", "import_tensorflow_quietly"]
