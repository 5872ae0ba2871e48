"""A whole space's sampling: pick the layout, sample its layers and the shared sections into an
``ArchitectureSpec``, and the reverse (the params that give a spec back)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.search_space.blocks import BLOCKS
from nas_mnist.search_space.layout import Layout
from nas_mnist.search_space.per_layer import PER_LAYER
from nas_mnist.search_space.shared_sections import read_shared_params, suggest_shared
from nas_mnist.search_space.trials import CheckingTrial, SpecValuesTrial, SuggestingTrial


def layout_for(config: Mapping[str, Any]) -> Layout:
    """The blocks layout for a space with a ``blocks`` section, else the per-layer layout."""
    return BLOCKS if "blocks" in config else PER_LAYER


def suggest_spec(trial: SuggestingTrial, config: Mapping[str, Any]) -> ArchitectureSpec:
    """Sample one architecture of the space ``config`` through ``trial``.

    The layout's params are asked first, then the shared sections' (optimizer, batch size,
    training levers): samplers see the same order of ``suggest_*`` calls on every trial.

    Raises:
        SpecError: the sampled combination is impossible (e.g. valid convolutions and pools
            shrink the map to zero).
    """
    layers, output = layout_for(config).suggest(trial, config)
    return ArchitectureSpec(layers=tuple(layers), output=output, **suggest_shared(trial, config))


def params_for_spec(spec: ArchitectureSpec, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The params that make ``suggest_spec`` on ``config`` return exactly ``spec``, or None.

    The params are read off the spec's layer pattern and then checked both ways: every value
    must lie in the space (choices, ranges and their steps) and sampling them must give back a
    spec equal to ``spec``.

    Returns:
        {param name: value} with exactly the params ``suggest_spec`` asks for, in the order it
        asks for them; None if ``spec`` lies outside the space.
    """
    params = layout_for(config).read_params(spec, config)
    if params is None:
        return None
    params.update(read_shared_params(spec, config))
    trial = CheckingTrial(params)
    try:
        rebuilt = suggest_spec(trial, config)
    except (SpecError, KeyError, TypeError, ValueError):
        return None
    if trial.outside or rebuilt != spec:
        return None
    return trial.used


def shared_params_for_spec(spec: ArchitectureSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The shared params (optimizer, learning_rate, batch size, training levers) that ``spec``
    has and that lie in the space ``config``, for a spec outside it (a baseline): the searched
    params that honestly apply to it. Empty when none does (e.g. its optimizer is not one of
    the space's)."""
    asker = SpecValuesTrial(read_shared_params(spec, config))
    try:
        suggest_shared(asker, config)
    except (SpecError, KeyError, TypeError, ValueError):
        return {}
    return {name: asker.values[name] for name, inside in asker.inside.items() if inside}


def record_shared_params(trial: SuggestingTrial, spec: ArchitectureSpec,
                         config: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Ask ``trial`` (whose enqueued params are ``params``, from ``shared_params_for_spec``)
    for ``params`` with the space's distributions, in ``suggest_shared``'s order, so that Optuna
    records them; the other answers come from ``spec`` and are not recorded."""
    suggest_shared(SpecValuesTrial(read_shared_params(spec, config), trial, list(params)),
                   config)
