"""The quiet start imports TensorFlow only for the TensorFlow backend."""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = ("import sys; from nas_mnist.processes.quiet_start import import_tensorflow_quietly; "
         "import_tensorflow_quietly(); print('tensorflow' in sys.modules)")


def test_quiet_start_leaves_tensorflow_alone_on_another_backend():
    # A GPU host with JAX and no TensorFlow (scripts/gpu_check.sh) must not import it.
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False"
