"""The requirements written with every logged model name the backend that trained it."""

from __future__ import annotations

from importlib.metadata import version

import keras

from nas_mnist.tracking.models import pip_requirements


def test_pip_requirements_name_keras_and_the_backend_in_use():
    backend = keras.backend.backend()
    assert pip_requirements() == [f"keras=={keras.__version__}", f"{backend}=={version(backend)}"]
