"""Search spaces are data: load a YAML/JSON/TOML file and turn it into Optuna suggestions.

A space file (see ``search_spaces/default.yaml``) describes the choices; ``SearchSpace.suggest``
samples them through an ``optuna.Trial`` (or ``optuna.trial.FixedTrial``) and returns an
``ArchitectureSpec``. Conditional parameters are plain ``if``/loops on sampled values: per-block
and per-layer parameters exist only for the blocks and layers that the sampled depth creates.

Two layouts of the architecture part are understood:

- **blocks** (``blocks:`` section; the shipped default; ``blocks.py``): a stack of conv blocks,
  each of 1-2 conv layers, an optional max pool, an optional BatchNorm and a dropout, then a
  dense head. Every documented CNN of the seed notebooks except ``s002_m10`` (parallel branches)
  is a point of the default space, so baselines are enqueued with params the sampler learns from.
- **per-layer** (``conv:`` and ``pooling:`` sections; ``small_cnn.yaml`` and older files;
  ``per_layer.py``): a depth of conv layers with a pool after every k-th one and one BatchNorm
  placement for the whole model.

Both share the ``optimizer``, ``batch_size`` and ``training`` (augmentation, learning-rate
schedule, label smoothing) sections (``shared_sections.py``). Files are found and parsed by
``loading.py`` and checked by ``checks.py``. This module is the package's public face: the
names other code imports live here or are re-exported from here. Plain Python: no
TensorFlow/Keras import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.search_space.blocks import POOLS
from nas_mnist.search_space.checks import SearchSpaceError, check_space
from nas_mnist.search_space.initializers import parse_initializer
from nas_mnist.search_space.leaves import ROUND_DIGITS, round_to_step
from nas_mnist.search_space.loading import (
    DEFAULT_SPACE_PATH,
    SPACES_DIR,
    read_space_file,
    resolve_space_path,
    shipped_spaces,
)
from nas_mnist.search_space.per_layer import BATCH_NORM_PLACEMENTS
from nas_mnist.search_space.sampling import (
    layout_for,
    params_for_spec,
    record_shared_params,
    shared_params_for_spec,
    suggest_spec,
)
from nas_mnist.search_space.trials import SuggestingTrial

__all__ = [
    "BATCH_NORM_PLACEMENTS",
    "DEFAULT_SPACE_PATH",
    "POOLS",
    "ROUND_DIGITS",
    "SPACES_DIR",
    "SearchSpace",
    "SearchSpaceError",
    "SuggestingTrial",
    "load_search_space",
    "parse_initializer",
    "resolve_space_path",
    "round_to_step",
    "search_space_from_dict",
    "shipped_spaces",
]


@dataclass(frozen=True)
class SearchSpace:
    """A loaded search space.

    Args:
        name: the space's ``name`` (defaults to the file stem).
        source: where it was loaded from (a path, or "<dict>").
        config: the parsed, validated file content.
    """

    name: str
    source: str
    config: Mapping[str, Any]

    @property
    def layout(self) -> str:
        """"blocks" (a ``blocks`` section) or "per_layer" (``conv`` and ``pooling`` sections)."""
        return layout_for(self.config).name

    def suggest(self, trial: SuggestingTrial) -> ArchitectureSpec:
        """Sample one architecture through ``trial``'s ``suggest_*`` API.

        Args:
            trial: an ``optuna.Trial``, ``optuna.trial.FixedTrial`` or any other
                ``SuggestingTrial``.

        Returns:
            The sampled spec.

        Raises:
            SpecError: the sampled combination is impossible (e.g. valid convolutions and pools
                shrink the map to zero); a study prunes such a trial without training it.
        """
        return suggest_spec(trial, self.config)

    def params_for_spec(self, spec: ArchitectureSpec) -> dict[str, Any] | None:
        """The trial params that make ``suggest`` return exactly ``spec``, or None if outside.

        Used to enqueue baselines that lie inside the space, so that the sampler learns from
        them. The params are read off the spec's layer pattern and then checked both ways: every
        value must lie in the space (choices, ranges and their steps) and ``suggest`` on them must
        give back a spec equal to ``spec``.

        Args:
            spec: any spec, e.g. a baseline's.

        Returns:
            {param name: value} with exactly the params ``suggest`` asks for, or None.
        """
        return params_for_spec(spec, self.config)

    def shared_params_for_spec(self, spec: ArchitectureSpec) -> dict[str, Any]:
        """For a spec outside the space: its optimizer, learning_rate, batch-size and training
        params that lie in the space (``sampling.shared_params_for_spec``); a baseline outside
        the space is enqueued with them, so that parameter plots can place it."""
        return shared_params_for_spec(spec, self.config)

    def record_shared_params(self, trial: SuggestingTrial, spec: ArchitectureSpec,
                             params: dict[str, Any]) -> None:
        """Record ``params`` (``shared_params_for_spec(spec)``) on ``trial`` as Optuna params
        (``sampling.record_shared_params``)."""
        record_shared_params(trial, spec, self.config, params)

    def describe(self) -> str:
        """One line: the space's name and source."""
        return f"search space {self.name!r} ({self.source})"


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    """Load and validate a search-space file.

    Args:
        path: a .yaml/.yml, .json or .toml file, or the name of a shipped space (see
            ``shipped_spaces``); ``None`` means the shipped ``default``.

    Returns:
        The validated ``SearchSpace``.

    Raises:
        SearchSpaceError: the file is missing, unparsable, has unknown/invalid keys or values,
            or no choice of it gives a valid architecture; the message names the file and the
            key (or the reason).
    """
    path = resolve_space_path(path)
    data = read_space_file(path)
    return search_space_from_dict(data, source=str(path), default_name=path.stem)


def search_space_from_dict(
    data: Any, source: str = "<dict>", default_name: str = "custom"
) -> SearchSpace:
    """Validate parsed space content (see ``load_search_space``) and wrap it.

    Besides each key and value, checks that the space holds at least one valid architecture:
    the point whose choices shrink the feature map least must build.

    Raises:
        SearchSpaceError: invalid content; the message names ``source`` and the key.
    """
    check_space(data, source)
    return SearchSpace(name=str(data.get("name", default_name)), source=source, config=data)
