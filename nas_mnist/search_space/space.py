"""Search spaces are data: load a YAML/JSON/TOML file and turn it into Optuna suggestions.

A space file (see ``search_spaces/default.yaml``) describes the choices; ``SearchSpace.suggest``
samples them through an ``optuna.Trial`` (or ``optuna.trial.FixedTrial``) and returns an
``ArchitectureSpec``. Conditional parameters are plain ``if``/loops on sampled values: per-layer
parameters exist only for the layers that the sampled depth creates.

Plain Python: no TensorFlow/Keras import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import yaml

from nas_mnist.architecture.spec import (
    ACTIVATIONS,
    NUM_CLASSES,
    OPTIMIZERS,
    PADDINGS,
    ArchitectureSpec,
    BatchNorm,
    Branches,
    Conv,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    OptimizerSpec,
    SpecError,
)
from nas_mnist.errors import InputError

logger = logging.getLogger(__name__)

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
"""The search spaces shipped with the package (``search_spaces/`` in a checkout links here)."""
DEFAULT_SPACE_PATH = SPACES_DIR / "default.yaml"
BATCH_NORM_PLACEMENTS = ("none", "after_conv", "after_pool_block", "dense_head")

# Top-level sections and their keys; used to reject typos with a clear message.
_SCHEMA: dict[str, set[str] | None] = {
    "name": None,
    "description": None,
    "conv": {
        "depth",
        "filters",
        "kernel_size",
        "padding",
        "kernel_initializer",
        "strides",
        "activation",
    },
    "pooling": {"every", "pool_size", "padding"},
    "batch_norm": None,
    "dropout": {"conv", "dense"},
    "dense": {
        "num_layers",
        "units",
        "activation",
        "kernel_initializer",
        "output_kernel_initializer",
    },
    "optimizer": {"name", "learning_rate", "momentum"},
    "batch_size": None,
}
_REQUIRED = ("conv", "pooling", "optimizer")


class SearchSpaceError(InputError):
    """A search-space file is missing or malformed; the message names the file and the key."""


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

    # --- sampling ------------------------------------------------------------------------------

    def suggest(self, trial: Any) -> ArchitectureSpec:
        """Sample one architecture through ``trial``'s ``suggest_*`` API.

        Args:
            trial: an ``optuna.Trial`` or ``optuna.trial.FixedTrial``.

        Returns:
            The sampled spec.

        Raises:
            SpecError: the sampled combination is impossible (e.g. valid convolutions and pools
                shrink the map to zero); a study prunes such a trial without training it.
        """
        c = self.config
        conv, pool = c["conv"], c["pooling"]
        depth = _sample(trial, "depth", conv["depth"])
        pool_every = _sample(trial, "pool_every", pool["every"])
        batch_norm = _sample(trial, "batch_norm", c.get("batch_norm", "none"))
        dropout = c.get("dropout", {})
        conv_dropout = _sample(trial, "conv_dropout", dropout.get("conv", 0.0))
        dense_dropout = _sample(trial, "dense_dropout", dropout.get("dense", 0.0))

        layers: list[Any] = []
        for i in range(1, depth + 1):
            layers.append(
                Conv(
                    filters=_sample(trial, f"conv{i}_filters", conv["filters"]),
                    kernel_size=_sample(trial, f"conv{i}_kernel_size", conv["kernel_size"]),
                    strides=_sample(trial, f"conv{i}_strides", conv.get("strides", 1)),
                    padding=_sample(trial, f"conv{i}_padding", conv.get("padding", "valid")),
                    activation=_sample(trial, "conv_activation", conv.get("activation", "relu")),
                    kernel_initializer=_sample(
                        trial,
                        f"conv{i}_kernel_initializer",
                        conv.get("kernel_initializer", "glorot_uniform"),
                    ),
                )
            )
            if batch_norm == "after_conv":
                layers.append(BatchNorm())
            if i % pool_every == 0:
                layers.append(
                    MaxPool(
                        pool_size=_sample(trial, "pool_size", pool.get("pool_size", 2)),
                        padding=_sample(trial, "pool_padding", pool.get("padding", "same")),
                    )
                )
                if batch_norm == "after_pool_block":
                    layers.append(BatchNorm())
                if conv_dropout > 0:
                    layers.append(Dropout(round(conv_dropout, 4)))
        layers.append(Flatten())

        dense = c.get("dense", {"num_layers": 1, "units": 128})
        for j in range(1, _sample(trial, "dense_num_layers", dense.get("num_layers", 1)) + 1):
            layers.append(
                Dense(
                    units=_sample(trial, f"dense{j}_units", dense["units"]),
                    activation=_sample(trial, "dense_activation", dense.get("activation", "relu")),
                    kernel_initializer=_sample(
                        trial,
                        f"dense{j}_kernel_initializer",
                        dense.get("kernel_initializer", "glorot_uniform"),
                    ),
                )
            )
            if batch_norm == "dense_head":
                layers.append(BatchNorm())
            if dense_dropout > 0:
                layers.append(Dropout(round(dense_dropout, 4)))

        opt = c["optimizer"]
        name = _sample(trial, "optimizer", opt["name"])
        optimizer = OptimizerSpec(
            name=name,
            learning_rate=_sample(
                trial, f"learning_rate_{name}", _per_optimizer(opt["learning_rate"], name)
            ),
            momentum=_optional(trial, f"momentum_{name}", opt.get("momentum"), name),
        )
        output = Dense(
            NUM_CLASSES,
            activation="softmax",
            kernel_initializer=_sample(
                trial,
                "output_kernel_initializer",
                dense.get("output_kernel_initializer", "glorot_uniform"),
            ),
        )
        return ArchitectureSpec(
            layers=tuple(layers),
            optimizer=optimizer,
            output=output,
            batch_size=_sample(trial, "batch_size", c.get("batch_size", 128)),
        )

    def params_for_spec(self, spec: ArchitectureSpec) -> dict[str, Any] | None:
        """The trial params that make ``suggest`` return exactly ``spec``, or None if outside.

        Used to enqueue baselines that lie inside the space, so that the sampler learns from
        them. The params are read off the spec's layer pattern and then checked both ways: every
        value must lie in the space (choices, ranges) and ``suggest`` on them must give back a spec
        equal to ``spec``.
        """
        params = _read_params(spec)
        if params is None:
            return None
        trial = _CheckingTrial(params)
        try:
            rebuilt = self.suggest(trial)
        except (SpecError, KeyError, TypeError, ValueError):
            return None
        if trial.outside or rebuilt != spec:
            return None
        return trial.used

    def describe(self) -> str:
        """One line: the space's name and source."""
        return f"search space {self.name!r} ({self.source})"


# ---------------------------------------------------------------------------------------------
# Spec -> params (for enqueueing baselines)
# ---------------------------------------------------------------------------------------------


class _CheckingTrial:
    """Stands in for ``optuna.Trial``: answers from ``params``, notes out-of-space values."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.used: dict[str, Any] = {}
        self.outside = False

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(name)
        self.used[name] = self.params[name]
        return self.params[name]

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        value = self._get(name)
        self.outside |= value not in choices
        return value

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        value = self._get(name)
        self.outside |= not (isinstance(value, int) and low <= value <= high)
        return value

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        value = self._get(name)
        self.outside |= not (low <= value <= high)
        return value


def _read_params(spec: ArchitectureSpec) -> dict[str, Any] | None:
    """Read the space's params off a spec shaped like the ones ``suggest`` builds, else None."""
    layers = list(spec.layers)
    if any(isinstance(x, Branches) for x in layers) or Flatten() not in layers:
        return None
    cut = layers.index(Flatten())
    body, head = layers[:cut], layers[cut + 1 :]
    params: dict[str, Any] = {}
    convs = [x for x in body if isinstance(x, Conv)]
    if not convs or not isinstance(body[0], Conv):
        return None
    params["depth"] = len(convs)
    pooled = []  # 1-based conv indices followed (after an optional BatchNorm) by a pool
    conv_index = 0
    for layer in body:
        if isinstance(layer, Conv):
            conv_index += 1
            params.update(
                {
                    f"conv{conv_index}_filters": layer.filters,
                    f"conv{conv_index}_kernel_size": layer.kernel_size,
                    f"conv{conv_index}_strides": layer.strides,
                    f"conv{conv_index}_padding": layer.padding,
                    f"conv{conv_index}_kernel_initializer": layer.kernel_initializer.name,
                }
            )
            params["conv_activation"] = layer.activation
        elif isinstance(layer, MaxPool):
            pooled.append(conv_index)
            params["pool_size"], params["pool_padding"] = layer.pool_size, layer.padding
    params["pool_every"] = pooled[0] if pooled else len(convs) + 1
    dropouts = [x.rate for x in body if isinstance(x, Dropout)]
    params["conv_dropout"] = dropouts[0] if dropouts else 0.0
    dense = [x for x in head if isinstance(x, Dense)]
    head_dropouts = [x.rate for x in head if isinstance(x, Dropout)]
    params["dense_dropout"] = head_dropouts[0] if head_dropouts else 0.0
    params["dense_num_layers"] = len(dense)
    for j, layer in enumerate(dense, start=1):
        params[f"dense{j}_units"] = layer.units
        params[f"dense{j}_kernel_initializer"] = layer.kernel_initializer.name
        params["dense_activation"] = layer.activation
    if any(isinstance(x, BatchNorm) for x in head):
        params["batch_norm"] = "dense_head"
    elif any(isinstance(x, BatchNorm) for x in body):
        after = body[body.index(BatchNorm()) - 1]
        params["batch_norm"] = "after_conv" if isinstance(after, Conv) else "after_pool_block"
    else:
        params["batch_norm"] = "none"
    opt = spec.optimizer
    params["optimizer"] = opt.name
    params[f"learning_rate_{opt.name}"] = opt.learning_rate
    if opt.momentum is not None:
        params[f"momentum_{opt.name}"] = opt.momentum
    params["batch_size"] = spec.batch_size
    params["output_kernel_initializer"] = spec.output.kernel_initializer.name
    return params


# ---------------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------------


def _is_range(value: Any) -> bool:
    return isinstance(value, Mapping) and "low" in value and "high" in value


def _sample(trial: Any, name: str, leaf: Any) -> Any:
    """Sample one leaf: fixed scalar, categorical list, or int/float range."""
    if isinstance(leaf, list):
        return leaf[0] if len(leaf) == 1 else trial.suggest_categorical(name, leaf)
    if _is_range(leaf):
        kind = leaf.get("type") or (
            "int" if all(isinstance(leaf[k], int) for k in ("low", "high")) else "float"
        )
        kwargs = {k: leaf[k] for k in ("step", "log") if k in leaf}
        if kind == "int":
            return trial.suggest_int(name, int(leaf["low"]), int(leaf["high"]), **kwargs)
        return trial.suggest_float(name, float(leaf["low"]), float(leaf["high"]), **kwargs)
    return leaf


def _per_optimizer(leaf: Any, optimizer: str) -> Any:
    """A leaf that may be given per optimizer name ({adam: ..., sgd: ...})."""
    if isinstance(leaf, Mapping) and not _is_range(leaf):
        return leaf[optimizer]
    return leaf


def _optional(trial: Any, name: str, leaf: Any, optimizer: str) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, Mapping) and not _is_range(leaf):
        if optimizer not in leaf:
            return None
        leaf = leaf[optimizer]
    return _sample(trial, name, leaf)


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def _parse_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    raise SearchSpaceError(
        f"{path}: unknown search-space format {suffix!r}; use .yaml, .json or .toml"
    )


def shipped_spaces() -> tuple[str, ...]:
    """Names of the search spaces shipped with the package (``default``, ``small_cnn``, ...)."""
    return tuple(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))


def resolve_space_path(path: str | Path | None) -> Path:
    """The file behind ``--space``: a path, else the name of a shipped space, else the default.

    Raises:
        SearchSpaceError: neither an existing file nor a shipped space's name.
    """
    if path is None:
        return DEFAULT_SPACE_PATH
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    if str(path) in shipped_spaces():
        return SPACES_DIR / f"{path}.yaml"
    raise SearchSpaceError(
        f"{path}: search-space file not found; pass --space FILE or the name of a shipped "
        f"space ({', '.join(shipped_spaces())}; see search_spaces/default.yaml for the format)"
    )


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    """Load and validate a search-space file.

    Args:
        path: a .yaml/.yml, .json or .toml file, or the name of a shipped space (see
            ``shipped_spaces``); ``None`` means the shipped ``default``.

    Returns:
        The validated ``SearchSpace``.

    Raises:
        SearchSpaceError: the file is missing, unparsable, or has unknown/invalid keys; the
            message names the file and the key.
    """
    path = resolve_space_path(path)
    try:
        data = _parse_file(path)
    except SearchSpaceError:
        raise
    except (
        yaml.YAMLError,
        json.JSONDecodeError,
        tomllib.TOMLDecodeError,
        UnicodeDecodeError,
    ) as exc:
        raise SearchSpaceError(f"{path}: cannot parse the search-space file: {exc}") from None
    return search_space_from_dict(data, source=str(path), default_name=path.stem)


def search_space_from_dict(
    data: Any, source: str = "<dict>", default_name: str = "custom"
) -> SearchSpace:
    """Validate parsed space content (see ``load_search_space``) and wrap it.

    Raises:
        SearchSpaceError: invalid content; the message names ``source`` and the key.
    """

    def fail(msg: str) -> SearchSpaceError:
        return SearchSpaceError(f"{source}: {msg}")

    if not isinstance(data, Mapping):
        raise fail("a search space is a mapping of sections (conv, pooling, optimizer, ...)")
    unknown = set(data) - set(_SCHEMA)
    if unknown:
        raise fail(f"unknown section(s) {sorted(unknown)}; expected some of {sorted(_SCHEMA)}")
    for key in _REQUIRED:
        if key not in data:
            raise fail(f"missing section {key!r}")
    for section, keys in _SCHEMA.items():
        if keys is None or section not in data:
            continue
        if not isinstance(data[section], Mapping):
            raise fail(f"section {section!r} must be a mapping of {sorted(keys)}")
        bad = set(data[section]) - keys
        if bad:
            raise fail(
                f"unknown key(s) {sorted(bad)} in {section!r}; expected some of {sorted(keys)}"
            )

    def leaf_values(where: str, leaf: Any) -> list[Any]:
        """Check a leaf's form; return its possible values (ranges return their bounds)."""
        if isinstance(leaf, list):
            if not leaf:
                raise fail(f"{where}: an empty list of choices")
            for v in leaf:
                if not isinstance(v, (str, int, float, bool)) or v is None:
                    raise fail(f"{where}: choices must be strings or numbers, got {v!r}")
            return list(leaf)
        if isinstance(leaf, Mapping):
            if not _is_range(leaf):
                raise fail(f"{where}: a range needs 'low' and 'high', got {dict(leaf)!r}")
            extra = set(leaf) - {"low", "high", "log", "step", "type"}
            if extra:
                raise fail(f"{where}: unknown range key(s) {sorted(extra)}")
            low, high = leaf["low"], leaf["high"]
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)
            ):
                raise fail(f"{where}: low and high must be numbers, got {low!r}, {high!r}")
            if low > high:
                raise fail(f"{where}: low {low} is above high {high}")
            if leaf.get("log") and low <= 0:
                raise fail(f"{where}: a log range needs low > 0, got {low}")
            if leaf.get("type", "int") not in ("int", "float"):
                raise fail(f"{where}: type must be 'int' or 'float'")
            return [low, high]
        if leaf is None:
            raise fail(f"{where}: no value")
        return [leaf]

    def check(where: str, leaf: Any, ok: Any, expected: str) -> None:
        for v in leaf_values(where, leaf):
            if not ok(v):
                raise fail(f"{where}: {v!r} is not valid; expected {expected}")

    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    conv, pool = data["conv"], data["pooling"]
    for key in ("depth", "filters", "kernel_size"):
        if key not in conv:
            raise fail(f"missing conv.{key}")
        check(f"conv.{key}", conv[key], positive_int, "a positive integer")
    check("conv.strides", conv.get("strides", 1), positive_int, "a positive integer")
    check("conv.padding", conv.get("padding", "valid"), lambda v: v in PADDINGS, list(PADDINGS))
    check(
        "conv.activation",
        conv.get("activation", "relu"),
        lambda v: v in ACTIVATIONS,
        list(ACTIVATIONS),
    )
    check(
        "conv.kernel_initializer",
        conv.get("kernel_initializer", "glorot_uniform"),
        lambda v: isinstance(v, str),
        "a Keras initializer name",
    )
    if "every" not in pool:
        raise fail("missing pooling.every (a pool after every k-th conv layer)")
    check("pooling.every", pool["every"], positive_int, "a positive integer")
    check("pooling.pool_size", pool.get("pool_size", 2), positive_int, "a positive integer")
    check("pooling.padding", pool.get("padding", "same"), lambda v: v in PADDINGS, list(PADDINGS))
    check(
        "batch_norm",
        data.get("batch_norm", "none"),
        lambda v: v in BATCH_NORM_PLACEMENTS,
        list(BATCH_NORM_PLACEMENTS),
    )
    for key, leaf in data.get("dropout", {}).items():
        check(
            f"dropout.{key}",
            leaf,
            lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
            "a rate in [0, 1)",
        )
    dense = data.get("dense", {})
    if "dense" in data and "units" not in dense:
        raise fail("missing dense.units")
    for key in ("num_layers", "units"):
        if key in dense:
            check(f"dense.{key}", dense[key], positive_int, "a positive integer")
    check(
        "dense.activation",
        dense.get("activation", "relu"),
        lambda v: v in ACTIVATIONS,
        list(ACTIVATIONS),
    )
    check("batch_size", data.get("batch_size", 128), positive_int, "a positive integer")

    opt = data["optimizer"]
    if "name" not in opt or "learning_rate" not in opt:
        raise fail("the optimizer section needs 'name' and 'learning_rate'")
    names = leaf_values("optimizer.name", opt["name"])
    for name in names:
        if name not in OPTIMIZERS:
            raise fail(f"optimizer.name: {name!r} is not one of {list(OPTIMIZERS)}")
    lr = opt["learning_rate"]
    for name in names:
        if isinstance(lr, Mapping) and not _is_range(lr) and name not in lr:
            raise fail(f"optimizer.learning_rate has no entry for optimizer {name!r}")
        leaf = _per_optimizer(lr, name)
        check(
            f"optimizer.learning_rate.{name}",
            leaf,
            lambda v: isinstance(v, (int, float)) and v > 0,
            "a positive number",
        )
    momentum = opt.get("momentum")
    if momentum is not None:
        if not (isinstance(momentum, Mapping) and not _is_range(momentum)):
            raise fail("optimizer.momentum is given per optimizer, e.g. {sgd: 0.9}")
        for name, leaf in momentum.items():
            if name not in ("sgd", "rmsprop"):
                raise fail(f"optimizer.momentum.{name}: only sgd and rmsprop take a momentum")
            check(
                f"optimizer.momentum.{name}",
                leaf,
                lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
                "a number in [0, 1)",
            )
    return SearchSpace(name=str(data.get("name", default_name)), source=source, config=data)
