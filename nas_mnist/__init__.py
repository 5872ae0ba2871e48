"""nas-mnist: neural architecture search and hyperparameter sweeps for Keras CNNs on MNIST.

The flow, one module per step: ``data`` -> ``search_space`` -> ``spec`` -> ``builder`` ->
``training`` -> ``objective`` -> ``tracking`` (MLflow) / ``study`` (Optuna) -> ``cli``.
Importing the package is cheap: TensorFlow is imported only by the modules that build or train.
"""

from nas_mnist.spec import ArchitectureSpec, SpecError

__version__ = "0.1.0"

__all__ = ["ArchitectureSpec", "SpecError", "__version__"]
