"""Checking a space file's content: its sections and keys per layout, every leaf's form and values,
and that at least one of its points is a valid architecture.

List and range leaves are checked by building the Optuna distribution they are sampled from
(``CategoricalDistribution``, ``IntDistribution``, ``FloatDistribution``); its complaints are
reworded to name the file and the key. Forms Optuna does not check (types, finite numbers, a log
range with a step) are checked here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nas_mnist.architecture.spec import (
    ACTIVATIONS,
    LR_SCHEDULES,
    MAX_AUGMENTATION,
    OPTIMIZERS,
    PADDINGS,
    ArchitectureSpec,
    Flatten,
    OptimizerSpec,
    SpecError,
)
from nas_mnist.errors import InputError
from nas_mnist.search_space.blocks import POOLS
from nas_mnist.search_space.initializers import parse_initializer
from nas_mnist.search_space.leaves import is_int, is_range, per_optimizer, range_kind
from nas_mnist.search_space.per_layer import BATCH_NORM_PLACEMENTS
from nas_mnist.search_space.sampling import layout_for, suggest_spec
from nas_mnist.search_space.shared_sections import (
    AUGMENTATION_KEYS,
    DEFAULT_BATCH_SIZE,
    VARIANT_ARGUMENTS,
)
from nas_mnist.search_space.trials import LeastShrinkingTrial


class SearchSpaceError(InputError):
    """A search-space file is missing or malformed; the message names the file and the key."""


MAX_WIDTH = 4096
"""The most filters of a conv layer, or units of a dense layer, a space may offer (a bound at
load: wider layers give parameter counts that overflow the leaderboards' arithmetic)."""
MAX_KERNEL_SIZE = 28
"""The largest kernel size, pool size or stride (pixels): the side of an MNIST image."""
MAX_LAYERS = 64
"""The most conv blocks, conv layers, dense layers (and the largest ``pooling.every``)."""
MAX_BATCH_SIZE = 60_000
"""The largest batch size: the size of MNIST's training set."""
MAX_QUOTED = 60
"""Characters of a quoted value in an error message (``_quote``); longer values are cut."""
MAX_MESSAGE = 500
"""Characters of an error message at most (``_Checker.fail``)."""

_RANGE_KEYS = {"low", "high", "log", "step", "type"}
# Optuna's complaint (a snippet of its ValueError) -> our wording, formatted with the key
# (``where``) and the leaf's own low, high and step.
_OPTUNA_COMPLAINTS = (
    ("`choices` must contain", "{where}: an empty list of choices"),
    ("`low <= high`", "{where}: low {low} is above high {high}"),
    ("`low > 0`", "{where}: a log range needs low > 0, got {low}"),
    ("`low >= 1`", "{where}: a log range needs low > 0, got {low}"),
    ("`step > 0`", "{where}.step: must be a positive number, got {step}"),
)


class _Checker:
    """Checks leaves of one space file; every error names the file (``source``) and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, msg: str) -> SearchSpaceError:
        """The error to raise: ``msg`` after the file's name, cut to ``MAX_MESSAGE`` characters
        (values quoted in it are already cut by ``_quote``; lists of keys are not)."""
        text = f"{self.source}: {msg}"
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        return SearchSpaceError(text)

    def leaf_values(self, where: str, leaf: Any) -> list[Any]:
        """Check a leaf's form; return its possible values (a range returns its low and high)."""
        if isinstance(leaf, list):
            for v in leaf:
                if not isinstance(v, (str, int, float, bool)) or v is None:
                    raise self.fail(f"{where}: choices must be strings or numbers, got {_quote(v)}")
                if isinstance(v, float) and not math.isfinite(v):
                    raise self.fail(f"{where}: choices must be finite numbers, got {_quote(v)}")
            self._distribution(where, leaf, CategoricalDistribution, choices=leaf)
            return list(leaf)
        if isinstance(leaf, Mapping):
            self._check_range_form(where, leaf)
            factory = IntDistribution if range_kind(leaf) == "int" else FloatDistribution
            arguments = {k: leaf[k] for k in ("low", "high", "log", "step") if k in leaf}
            self._distribution(where, leaf, factory, **arguments)
            return [leaf["low"], leaf["high"]]
        if leaf is None:
            raise self.fail(f"{where}: no value")
        if isinstance(leaf, float) and not math.isfinite(leaf):
            raise self.fail(f"{where}: {_quote(leaf)} is not a finite number")
        return [leaf]

    def _distribution(
        self, where: str, leaf: Any, factory: Callable[..., BaseDistribution], **arguments: Any
    ) -> BaseDistribution:
        """Optuna's distribution for the leaf; its ValueError becomes a SearchSpaceError."""
        try:
            with warnings.catch_warnings():  # e.g. a range not divisible by its step: Optuna
                warnings.simplefilter("ignore")  # warns when it samples, as it always did
                return factory(**arguments)
        except ValueError as exc:
            bounds = leaf if isinstance(leaf, Mapping) else {}
            for snippet, wording in _OPTUNA_COMPLAINTS:
                if snippet in str(exc):
                    raise self.fail(wording.format(
                        where=where, low=_quote(bounds.get("low")),
                        high=_quote(bounds.get("high")), step=_quote(bounds.get("step")),
                    )) from None
            raise self.fail(f"{where}: {exc}") from None

    def _check_range_form(self, where: str, leaf: Mapping[str, Any]) -> None:
        """What Optuna's distributions do not check: keys, types, finite numbers, no step in a
        log range (Optuna's ``IntDistribution`` would take step 1), integers for int ranges."""
        if not is_range(leaf):
            raise self.fail(f"{where}: a range needs 'low' and 'high', got {_quote(dict(leaf))}")
        extra = set(leaf) - _RANGE_KEYS
        if extra:
            raise self.fail(f"{where}: unknown range key(s) {sorted(extra)}")
        low, high = leaf["low"], leaf["high"]
        for key, v in (("low", low), ("high", high)):
            if not _is_number(v):
                raise self.fail(f"{where}: low and high must be numbers, got {_quote(low)}, "
                                f"{_quote(high)}")
            if not math.isfinite(v):
                raise self.fail(f"{where}.{key}: {_quote(v)} is not a finite number")
        kind = leaf.get("type", "int" if is_int(low) and is_int(high) else "float")
        if kind not in ("int", "float"):
            raise self.fail(f"{where}.type: must be 'int' or 'float', got {_quote(kind)}")
        log = leaf.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log: must be true or false, got {_quote(log)}")
        if "step" in leaf:
            step = leaf["step"]
            if log:
                raise self.fail(f"{where}.step: a log range takes no step (Optuna samples log "
                                "ranges continuously); drop 'step' or 'log'")
            if not _is_number(step) or not math.isfinite(step):
                raise self.fail(f"{where}.step: must be a positive number, got {_quote(step)}")
            if kind == "int" and not is_int(step):
                raise self.fail(f"{where}.step: an int range needs an integer step, got "
                                f"{_quote(step)}")
        if kind == "int" and not (is_int(low) and is_int(high)):
            raise self.fail(f"{where}: an int range needs integer low and high, got {_quote(low)}, "
                            f"{_quote(high)}")

    def check(self, where: str, leaf: Any, ok: Callable[[Any], bool], expected: Any) -> None:
        """Check the leaf's form and that ``ok`` holds for each of its values (range bounds)."""
        for v in self.leaf_values(where, leaf):
            if not ok(v):
                raise self.fail(f"{where}: {_quote(v)} is not valid; expected {expected}")

    def check_initializers(self, where: str, leaf: Any) -> None:
        """A leaf of initializers in their text form (``parse_initializer``)."""
        for v in self.leaf_values(where, leaf):
            try:
                parse_initializer(v)
            except SpecError as exc:
                raise self.fail(f"{where}: {exc}") from None

    def check_flags(self, where: str, leaf: Any) -> None:
        """A true/false leaf: a bool or a list of bools (not a range)."""
        if isinstance(leaf, Mapping):
            raise self.fail(f"{where}: a flag is true, false or [false, true], not a range")
        self.check(where, leaf, lambda v: isinstance(v, bool), "true or false")


def _quote(value: Any) -> str:
    """``repr(value)``, cut to ``MAX_QUOTED`` characters: a space file's values can be huge."""
    text = repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def _bounded(high: int, lowest: int = 1) -> tuple[Callable[[Any], bool], str]:
    """A check for integers from ``lowest`` to ``high``, and its wording for the message."""
    return (lambda v: is_int(v) and lowest <= v <= high,
            f"an integer from {lowest} to {high}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _rate(v: Any) -> bool:
    return _is_number(v) and 0 <= v < 1


# --- sections and keys, per layout -------------------------------------------------------------

# A section's keys, to reject typos with a clear message; ``None`` means a leaf (no sub-keys).
_SHARED_SECTIONS: dict[str, set[str] | None] = {
    "name": None,
    "description": None,
    "optimizer": {"name", "learning_rate", "momentum", "variants"},
    "batch_size": None,
    "training": {"augmentation", "lr_schedule", "label_smoothing"},
}
_PER_LAYER_SCHEMA: dict[str, set[str] | None] = {
    **_SHARED_SECTIONS,
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
}
_BLOCKS_SCHEMA: dict[str, set[str] | None] = {
    **_SHARED_SECTIONS,
    "blocks": {
        "num_blocks",
        "num_convs",
        "filters",
        "kernel_size",
        "padding",
        "strides",
        "activation",
        "pool",
        "pool_size",
        "pool_strides",
        "batch_norm",
        "dropout",
    },
    "initializers": {"kernel", "bias", "output_kernel"},
    "dense": {"num_layers", "units", "activation", "batch_norm", "dropout", "input_dropout"},
}


# The blocks layout's integer keys and their largest values.
_BLOCKS_BOUNDS = {"num_blocks": MAX_LAYERS, "filters": MAX_WIDTH, "kernel_size": MAX_KERNEL_SIZE,
                  "pool_size": MAX_KERNEL_SIZE, "pool_strides": MAX_KERNEL_SIZE,
                  "strides": MAX_KERNEL_SIZE}


def _check_blocks_layout(checker: _Checker, data: Mapping[str, Any]) -> None:
    """The ``blocks``, ``initializers`` and ``dense`` sections of the blocks layout."""
    blocks = data["blocks"]
    for key in ("num_blocks", "filters", "kernel_size"):
        if key not in blocks:
            raise checker.fail(f"missing blocks.{key}")
    for key, high in _BLOCKS_BOUNDS.items():
        if key in blocks:
            checker.check(f"blocks.{key}", blocks[key], *_bounded(high))
    checker.check("blocks.num_convs", blocks.get("num_convs", 1), lambda v: v in (1, 2)
                  and is_int(v), "1 or 2 (conv layers per block)")
    checker.check("blocks.padding", blocks.get("padding", "same"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("blocks.activation", blocks.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))
    checker.check("blocks.pool", blocks.get("pool", "none"), lambda v: v in POOLS, list(POOLS))
    checker.check_flags("blocks.batch_norm", blocks.get("batch_norm", False))
    checker.check("blocks.dropout", blocks.get("dropout", 0.0), _rate, "a rate in [0, 1)")
    initializers = data.get("initializers", {})
    for key in ("kernel", "bias", "output_kernel"):
        if key in initializers:
            checker.check_initializers(f"initializers.{key}", initializers[key])
    dense = data.get("dense", {})
    checker.check("dense.num_layers", dense.get("num_layers", 0), *_bounded(MAX_LAYERS, 0))
    if max(checker.leaf_values("dense.num_layers", dense.get("num_layers", 0))) > 0:
        if "units" not in dense:
            raise checker.fail("missing dense.units")
        checker.check("dense.units", dense["units"], *_bounded(MAX_WIDTH))
    checker.check("dense.activation", dense.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))
    checker.check_flags("dense.batch_norm", dense.get("batch_norm", False))
    for key in ("dropout", "input_dropout"):
        checker.check(f"dense.{key}", dense.get(key, 0.0), _rate, "a rate in [0, 1)")


def _check_per_layer_layout(checker: _Checker, data: Mapping[str, Any]) -> None:
    """The ``conv``, ``pooling``, ``batch_norm``, ``dropout`` and ``dense`` sections of the
    per-layer layout."""
    conv, pool = data["conv"], data["pooling"]
    for key, high in (("depth", MAX_LAYERS), ("filters", MAX_WIDTH),
                      ("kernel_size", MAX_KERNEL_SIZE)):
        if key not in conv:
            raise checker.fail(f"missing conv.{key}")
        checker.check(f"conv.{key}", conv[key], *_bounded(high))
    checker.check("conv.strides", conv.get("strides", 1), *_bounded(MAX_KERNEL_SIZE))
    checker.check("conv.padding", conv.get("padding", "valid"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("conv.activation", conv.get("activation", "relu"), lambda v: v in ACTIVATIONS,
                  list(ACTIVATIONS))
    checker.check("conv.kernel_initializer", conv.get("kernel_initializer", "glorot_uniform"),
                  lambda v: isinstance(v, str), "a Keras initializer name")
    if "every" not in pool:
        raise checker.fail("missing pooling.every (a pool after every k-th conv layer)")
    checker.check("pooling.every", pool["every"], *_bounded(MAX_LAYERS))
    checker.check("pooling.pool_size", pool.get("pool_size", 2), *_bounded(MAX_KERNEL_SIZE))
    checker.check("pooling.padding", pool.get("padding", "same"), lambda v: v in PADDINGS,
                  list(PADDINGS))
    checker.check("batch_norm", data.get("batch_norm", "none"),
                  lambda v: v in BATCH_NORM_PLACEMENTS, list(BATCH_NORM_PLACEMENTS))
    if not isinstance(data.get("dropout", {}), Mapping):
        raise checker.fail("section 'dropout' must be a mapping of ['conv', 'dense']")
    for key, leaf in data.get("dropout", {}).items():
        checker.check(f"dropout.{key}", leaf, _rate, "a rate in [0, 1)")
    dense = data.get("dense", {})
    if "dense" in data and "units" not in dense:
        raise checker.fail("missing dense.units")
    for key, high in (("num_layers", MAX_LAYERS), ("units", MAX_WIDTH)):
        if key in dense:
            checker.check(f"dense.{key}", dense[key], *_bounded(high))
    checker.check("dense.activation", dense.get("activation", "relu"),
                  lambda v: v in ACTIVATIONS, list(ACTIVATIONS))


@dataclass(frozen=True)
class _LayoutRules:
    """What a layout's file must look like: its sections and keys (``schema``), the sections it
    requires, its value checks, and a hint for the sections of another layout."""

    schema: dict[str, set[str] | None]
    required: tuple[str, ...]
    check: Callable[[_Checker, Mapping[str, Any]], None]
    foreign_hint: tuple[frozenset[str], str] = (frozenset(), "")


_LAYOUT_RULES: dict[str, _LayoutRules] = {
    "blocks": _LayoutRules(
        _BLOCKS_SCHEMA,
        ("blocks", "optimizer"),
        _check_blocks_layout,
        (frozenset(_PER_LAYER_SCHEMA), " (the blocks layout replaces conv/pooling/batch_norm/"
                                       "dropout)"),
    ),
    "per_layer": _LayoutRules(
        _PER_LAYER_SCHEMA, ("conv", "pooling", "optimizer"), _check_per_layer_layout
    ),
}


def _check_sections(checker: _Checker, data: Mapping[str, Any], rules: _LayoutRules) -> None:
    """Known sections, the required ones present, each a mapping of known keys."""
    schema = rules.schema
    unknown = set(data) - set(schema)
    if unknown:
        foreign, hint = rules.foreign_hint
        raise checker.fail(f"unknown section(s) {sorted(unknown)}; expected some of "
                           f"{sorted(schema)}{hint if unknown & foreign else ''}")
    for key in rules.required:
        if key not in data:
            raise checker.fail(f"missing section {_quote(key)}")
    for section, keys in schema.items():
        if keys is None or section not in data:
            continue
        if not isinstance(data[section], Mapping):
            raise checker.fail(f"section {_quote(section)} must be a mapping of {sorted(keys)}")
        bad = set(data[section]) - keys
        if bad:
            raise checker.fail(
                f"unknown key(s) {sorted(bad)} in {_quote(section)}; expected some of "
                f"{sorted(keys)}"
            )


# --- the shared sections -----------------------------------------------------------------------


def _check_optimizer(checker: _Checker, opt: Mapping[str, Any]) -> None:
    """The ``optimizer`` section: names, per-optimizer learning rates, momentum, variants."""
    if "name" not in opt or "learning_rate" not in opt:
        raise checker.fail("the optimizer section needs 'name' and 'learning_rate'")
    names = checker.leaf_values("optimizer.name", opt["name"])
    for name in names:
        if name not in OPTIMIZERS:
            raise checker.fail(f"optimizer.name: {_quote(name)} is not one of {list(OPTIMIZERS)}")
    lr = opt["learning_rate"]
    for name in names:
        if isinstance(lr, Mapping) and not is_range(lr) and name not in lr:
            raise checker.fail(f"optimizer.learning_rate has no entry for optimizer {_quote(name)}")
        checker.check(
            f"optimizer.learning_rate.{name}",
            per_optimizer(lr, name),
            lambda v: isinstance(v, (int, float)) and v > 0,
            "a positive number",
        )
    momentum = opt.get("momentum")
    if momentum is not None:
        if not (isinstance(momentum, Mapping) and not is_range(momentum)):
            raise checker.fail("optimizer.momentum is given per optimizer, e.g. {sgd: 0.9}")
        for name, leaf in momentum.items():
            if name not in ("sgd", "rmsprop"):
                raise checker.fail(
                    f"optimizer.momentum.{name}: only sgd and rmsprop take a momentum"
                )
            checker.check(f"optimizer.momentum.{name}", leaf, _rate, "a number in [0, 1)")
    _check_variants(checker, opt.get("variants", {}))


def _check_variants(checker: _Checker, variants: Any) -> None:
    """``optimizer.variants``: per optimizer, named sets of further Keras arguments."""
    if not isinstance(variants, Mapping):
        raise checker.fail("optimizer.variants is given per optimizer, e.g. "
                           "{adam: {keras: {}, tf1: {epsilon: 1.0e-8}}}")
    for name, named in variants.items():
        where = f"optimizer.variants.{name}"
        if name not in OPTIMIZERS:
            raise checker.fail(f"{where}: {_quote(name)} is not one of {list(OPTIMIZERS)}")
        if not isinstance(named, Mapping) or not named:
            raise checker.fail(f"{where}: a mapping of variant names to Keras arguments")
        for variant, arguments in named.items():
            arguments = arguments or {}
            bad = set(arguments) - set(VARIANT_ARGUMENTS) if isinstance(arguments, Mapping) \
                else {"(not a mapping)"}
            if bad:
                raise checker.fail(f"{where}.{variant}: unknown argument(s) {sorted(bad)}; "
                                   f"a variant fixes some of {list(VARIANT_ARGUMENTS)}")
            try:  # the spec's own checks: which optimizer takes which argument, and ranges
                ArchitectureSpec((Flatten(),), optimizer=OptimizerSpec(name, 1.0, **arguments))
            except (SpecError, TypeError) as exc:
                raise checker.fail(f"{where}.{variant}: {exc}") from None


def _check_training(checker: _Checker, training: Mapping[str, Any]) -> None:
    """The ``training`` section: augmentation factors, lr_schedule, label_smoothing."""
    augmentation = training.get("augmentation", {})
    if not isinstance(augmentation, Mapping):
        raise checker.fail(f"training.augmentation: a mapping of {list(AUGMENTATION_KEYS)}")
    bad = set(augmentation) - set(AUGMENTATION_KEYS)
    if bad:
        raise checker.fail(f"unknown key(s) {sorted(bad)} in 'training.augmentation'; "
                           f"expected some of {list(AUGMENTATION_KEYS)}")
    for key, leaf in augmentation.items():
        checker.check(
            f"training.augmentation.{key}", leaf,
            lambda v: isinstance(v, (int, float)) and 0 <= v <= MAX_AUGMENTATION,
            f"a factor in [0, {MAX_AUGMENTATION}]",
        )
    checker.check("training.lr_schedule", training.get("lr_schedule", "constant"),
                  lambda v: v in LR_SCHEDULES, list(LR_SCHEDULES))
    checker.check("training.label_smoothing", training.get("label_smoothing", 0.0),
                  lambda v: isinstance(v, (int, float)) and 0 <= v < 0.5, "a number in [0, 0.5)")


# --- a whole space -----------------------------------------------------------------------------


def check_space(data: Any, source: str) -> None:
    """Check parsed space content: sections, keys and values, and that the space holds at least
    one valid architecture (the point whose choices shrink the feature map least must build).

    Args:
        data: the parsed file (a mapping of sections).
        source: where it came from (a path, or "<dict>"), for the messages.

    Raises:
        SearchSpaceError: invalid content; the message names ``source`` and the key.
    """
    checker = _Checker(source)
    if not isinstance(data, Mapping):
        raise checker.fail("a search space is a mapping of sections (blocks or conv/pooling, "
                           "optimizer, ...)")
    rules = _LAYOUT_RULES[layout_for(data).name]
    _check_sections(checker, data, rules)
    rules.check(checker, data)
    checker.check("batch_size", data.get("batch_size", DEFAULT_BATCH_SIZE),
                  *_bounded(MAX_BATCH_SIZE))
    _check_optimizer(checker, data["optimizer"])
    _check_training(checker, data.get("training", {}))
    try:
        suggest_spec(LeastShrinkingTrial(), data)
    except SpecError as exc:
        raise checker.fail(
            "no choice of this space gives a valid architecture; even the choices that shrink "
            f"the feature map least (fewest blocks and pools, 'same' padding, smallest kernels "
            f"and strides) fail: {exc}"
        ) from None
