"""nas-mnist: neural architecture search and hyperparameter sweeps for Keras CNNs on MNIST.

The Python API is the product; ``nas-mnist search|export|report|predict|dashboard`` call
exactly these:

- ``nas_mnist.search(**settings) -> SearchResult``: run (or resume) a search;
- ``nas_mnist.retrain(storage, study_name, ...) -> RetrainResult``: the best specs retrained at
  full budget as final models, the champion registered in MLflow's Model Registry;
- ``nas_mnist.export(out=..., ...) -> ExportResult``: the champion (else the best trial) as a
  verified SavedModel;
- ``nas_mnist.report(out=..., ...) -> Report``: leaderboard, plots and the best model's mistakes;
- ``nas_mnist.predict(model_dir, files) -> list[Prediction]``: classify your own digit images;
- ``nas_mnist.dashboard(storage) -> DashboardServer``: optuna-dashboard on a study's storage.

Bad input raises ``nas_mnist.InputError`` (the message the CLI prints before exiting with 2);
a failure while running raises ``nas_mnist.RuntimeFailure`` (exit 1); both are
``nas_mnist.NasMnistError``.
Importing the package is cheap: TensorFlow, Optuna and MLflow are imported when a function that
needs them runs (``nas_mnist.search`` and friends load on first use).
"""

import os
from typing import Any

# JAX preallocates 75% of a GPU's memory at import unless told not to; several workers (or trials)
# sharing one GPU need it off (nas_mnist.model.devices).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.errors import InputError, NasMnistError, RuntimeFailure
from nas_mnist.searching.settings import SearchSettings

__version__ = "0.1.0"

_LAZY = {
    "search": ("nas_mnist.searching.runner", "search"),
    "SearchResult": ("nas_mnist.searching.result", "SearchResult"),
    "retrain": ("nas_mnist.searching.final.retrain", "retrain"),
    "RetrainResult": ("nas_mnist.searching.final.result", "RetrainResult"),
    "export": ("nas_mnist.exporting.export", "export"),
    "ExportResult": ("nas_mnist.exporting.layout", "ExportResult"),
    "report": ("nas_mnist.reporting.report", "report"),
    "Report": ("nas_mnist.reporting.report", "Report"),
    "predict": ("nas_mnist.exporting.predict", "predict"),
    "Prediction": ("nas_mnist.exporting.predict", "Prediction"),
    "dashboard": ("nas_mnist.reporting.dashboard", "dashboard"),
}

__all__ = ["ArchitectureSpec", "InputError", "NasMnistError", "RuntimeFailure", "SearchSettings",
           "SpecError", "__version__",
           *_LAZY]


def __getattr__(name: str) -> Any:
    """Load the API functions on first use (PEP 562), keeping ``import nas_mnist`` cheap."""
    if name not in _LAZY:
        raise AttributeError(f"module 'nas_mnist' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
