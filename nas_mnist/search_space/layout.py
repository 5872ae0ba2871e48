"""What a layout of the architecture part of a space is: the ``Layout`` protocol that the blocks
and per-layer layouts implement, and reading a spec's layers around its ``Flatten``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from nas_mnist.architecture.spec import ArchitectureSpec, Branches, Dense, Flatten, Layer
from nas_mnist.search_space.trials import SuggestingTrial


class Layout(Protocol):
    """One layout of a space's architecture sections (``blocks.py``, ``per_layer.py``)."""

    name: str
    """How ``SearchSpace.layout`` names it: "blocks" or "per_layer"."""

    def suggest(
        self, trial: SuggestingTrial, config: Mapping[str, Any]
    ) -> tuple[list[Layer], Dense]:
        """Sample the layers (up to the last hidden layer) and the output layer.

        Raises:
            SpecError: a sampled value makes an invalid layer (e.g. an impossible initializer).
        """
        ...

    def read_params(
        self, spec: ArchitectureSpec, config: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The layout's params that would make ``suggest`` give ``spec``'s layers and output
        layer, or None if ``spec`` has no such shape. Unchecked: values may lie outside the
        space, which ``sampling.params_for_spec`` finds out."""
        ...


def split_at_flatten(spec: ArchitectureSpec) -> tuple[list[Layer], list[Layer]] | None:
    """The layers before and after the spec's first ``Flatten``; None without a ``Flatten`` or
    with parallel ``Branches`` (neither layout has them)."""
    layers = list(spec.layers)
    if any(isinstance(x, Branches) for x in layers) or Flatten() not in layers:
        return None
    cut = layers.index(Flatten())
    return layers[:cut], layers[cut + 1 :]
