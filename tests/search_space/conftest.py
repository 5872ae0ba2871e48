"""Fixtures of the search-space tests: the shipped default space and a per-layer space."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_mnist.search_space.space import SearchSpace, load_search_space

PER_LAYER_SPACE_PATH = Path(__file__).with_name("per_layer.yaml")


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return load_search_space()


@pytest.fixture(scope="module")
def per_layer_space() -> SearchSpace:
    """The per-layer layout (conv/pooling sections): the default space before the blocks layout."""
    return load_search_space(PER_LAYER_SPACE_PATH)
