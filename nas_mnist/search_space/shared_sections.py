"""The sections both layouts share: ``optimizer``, ``batch_size`` and ``training`` (augmentation,
learning-rate schedule, label smoothing); sampling them and reading their params off a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, Augmentation, OptimizerSpec
from nas_mnist.search_space.leaves import (
    ROUND_DIGITS,
    per_optimizer,
    sample,
    sample_optional,
)
from nas_mnist.search_space.trials import SuggestingTrial

AUGMENTATION_KEYS = ("translation", "rotation", "zoom")
"""Keys of ``training.augmentation``: ``Augmentation``'s factors."""
VARIANT_ARGUMENTS = ("rho", "beta_1", "beta_2", "epsilon")
"""Optimizer arguments a variant may fix (momentum has its own leaf)."""
DEFAULT_BATCH_SIZE = 128
"""The batch size of a space without a ``batch_size`` leaf."""


def suggest_shared(trial: SuggestingTrial, config: Mapping[str, Any]) -> dict[str, Any]:
    """Sample the shared sections, in this order: optimizer, batch size, training levers.

    Returns:
        ``ArchitectureSpec`` keyword arguments: optimizer, batch_size, augmentation,
        lr_schedule, label_smoothing.
    """
    return {
        "optimizer": suggest_optimizer(trial, config["optimizer"]),
        "batch_size": sample(trial, "batch_size", config.get("batch_size", DEFAULT_BATCH_SIZE)),
        **suggest_training(trial, config.get("training", {})),
    }


def suggest_optimizer(trial: SuggestingTrial, opt: Mapping[str, Any]) -> OptimizerSpec:
    """Optimizer name, its learning_rate (one param per optimizer), momentum and variant.

    Params: ``optimizer``, ``{name}_variant`` (with variants), ``learning_rate_{name}``,
    ``momentum_{name}`` (with a momentum leaf for it).
    """
    name = sample(trial, "optimizer", opt["name"])
    arguments: dict[str, float] = {}
    variants = opt.get("variants", {}).get(name)
    if variants:
        variant = sample(trial, f"{name}_variant", list(variants))
        arguments.update(variants[variant] or {})
    return OptimizerSpec(
        name=name,
        learning_rate=sample(
            trial, f"learning_rate_{name}", per_optimizer(opt["learning_rate"], name)
        ),
        momentum=sample_optional(trial, f"momentum_{name}", opt.get("momentum"), name),
        **arguments,
    )


def suggest_training(trial: SuggestingTrial, training: Mapping[str, Any]) -> dict[str, Any]:
    """The training levers: augmentation factors, lr_schedule, label_smoothing.

    Returns:
        ``ArchitectureSpec`` keyword arguments: augmentation, lr_schedule, label_smoothing.
    """
    augmentation = training.get("augmentation", {})
    factors = {
        key: round(sample(trial, f"augmentation_{key}", augmentation.get(key, 0.0)), ROUND_DIGITS)
        for key in AUGMENTATION_KEYS
    }
    return {
        "augmentation": Augmentation(**factors),
        "lr_schedule": sample(trial, "lr_schedule", training.get("lr_schedule", "constant")),
        "label_smoothing": round(
            sample(trial, "label_smoothing", training.get("label_smoothing", 0.0)), ROUND_DIGITS
        ),
    }


def read_shared_params(spec: ArchitectureSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer, batch-size and training-lever params of a spec (both layouts).

    May hold params that ``suggest_shared`` does not ask for (e.g. a fixed batch size); the
    caller keeps only those asked for.
    """
    opt = spec.optimizer
    params: dict[str, Any] = {
        "optimizer": opt.name,
        f"learning_rate_{opt.name}": opt.learning_rate,
        "batch_size": spec.batch_size,
        "lr_schedule": spec.lr_schedule,
        "label_smoothing": spec.label_smoothing,
        **{
            f"augmentation_{key}": getattr(spec.augmentation, key)
            for key in AUGMENTATION_KEYS
        },
    }
    if opt.momentum is not None:
        params[f"momentum_{opt.name}"] = opt.momentum
    fixed = {k: getattr(opt, k) for k in VARIANT_ARGUMENTS if getattr(opt, k) is not None}
    for variant, arguments in config["optimizer"].get("variants", {}).get(opt.name, {}).items():
        if dict(arguments or {}) == fixed:
            params[f"{opt.name}_variant"] = variant
    return params
