"""nas-mnist: neural architecture search and hyperparameter sweeps for Keras CNNs on MNIST.

The flow, one module per step: ``data`` -> ``search_space`` -> ``spec`` -> ``builder`` ->
``training`` -> ``objective`` -> ``tracking`` (MLflow) / ``study`` (Optuna) -> ``cli``.
Importing the package is cheap: TensorFlow is imported only by the modules that build or train.
"""

import os

# JAX preallocates 75% of a GPU's memory at import unless told not to; several workers (or trials)
# sharing one GPU need it off (nas_mnist.model.devices).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ArchitectureSpec", "SpecError", "__version__"]
