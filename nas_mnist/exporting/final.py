"""Final models in an export: the champion (``nas-mnist export``'s default when the study has
one) and the K best final models of ``export --ensemble K``.

A study's final models are the trials of its final study ``<study>/final``, written by
``nas-mnist retrain`` and read through ``nas_mnist.study.final_models``: each retrains a search
trial's spec (or a baseline) at full budget with a final recipe. The champion is the final model
with the highest val_accuracy (never chosen on test). This module picks them for an export and
says, in ``metrics.json``, what the exported final model is.
"""

from __future__ import annotations

import logging
from typing import Any

from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_KEY_ATTR,
    FINAL_SEED_ATTR,
    MODEL_URI_ATTR,
    RECIPE_ATTR,
    SOURCE_TRIAL_ATTR,
)

logger = logging.getLogger(__name__)

FINAL_FACTS_KEY = "final"
"""The key of ``metrics.json`` that describes an exported final model (absent for a search
trial, whose ``metrics.json`` has ``"final_model": false``)."""


def final_models_with_model(study: Any) -> list[Any]:
    """The complete final models of ``study`` that kept an MLflow model, best first.

    Args:
        study: the search study (``optuna.Study``); its final study is ``<name>/final`` in the
            same storage.

    Returns:
        ``FrozenTrial``s of the final study in ``final_models``' order (val_accuracy, then fewer
        parameters, then the lower number); ``[]`` when the study has no final study. A final
        model that kept no model is left out with a warning (as search trials without one are).
    """
    from nas_mnist.study.final_models import final_models, load_final_study

    final_study = load_final_study(study._storage, study.study_name)
    kept = []
    for trial in final_models(final_study):
        if trial.user_attrs.get(MODEL_URI_ATTR):
            kept.append(trial)
        else:
            logger.warning("final model %d (%s) kept no MLflow model; it cannot be exported",
                           trial.number, final_label(trial))
    return kept


def pick_champion(study: Any) -> Any | None:
    """The champion to export: the best final model with a kept model, or None (no final model,
    so the export takes the best search trial)."""
    models = final_models_with_model(study)
    return models[0] if models else None


def final_label(final_trial: Any) -> str:
    """What a final model retrains, for messages: ``"search trial 12, seed 0"`` or
    ``"baseline s002_m9, seed 1"``."""
    attrs = final_trial.user_attrs
    seed = attrs.get(FINAL_SEED_ATTR)
    what = (f"baseline {attrs[BASELINE_ATTR]}" if attrs.get(BASELINE_ATTR)
            else f"search trial {attrs.get(SOURCE_TRIAL_ATTR)}")
    return what + (f", seed {seed}" if seed is not None else "")


def final_facts(final_trial: Any, spec: Any, final_study_name: str) -> dict[str, Any]:
    """What ``metrics.json`` says about an exported final model (under ``FINAL_FACTS_KEY``).

    Args:
        final_trial: a complete trial of the final study.
        spec: its ``ArchitectureSpec`` (the final spec: augmentation and lr_schedule included).
        final_study_name: ``<study>/final``.

    Returns:
        {"study_name", "trial_number" (in the final study), "final_key", "source_trial" (search
        trial number, None for a baseline), "baseline" (name or None), "seed" (which of the
        ``--seeds`` runs), "training_seed" (the recipe's base seed plus ``seed``), "epochs" and
        "num_train_images" (the recipe's; None where it does not say), "augmentation"
        ({factor: value} of the final spec, empty for none), "lr_schedule" (the final spec's),
        "recipe" (the recorded recipe, ``FinalRecipe.record``, verbatim)}.
    """
    attrs = final_trial.user_attrs
    recipe = dict(attrs.get(RECIPE_ATTR) or {})
    return {
        "study_name": final_study_name,
        "trial_number": final_trial.number,
        "final_key": attrs.get(FINAL_KEY_ATTR),
        "source_trial": attrs.get(SOURCE_TRIAL_ATTR),
        "baseline": attrs.get(BASELINE_ATTR) or None,
        "seed": attrs.get(FINAL_SEED_ATTR),
        "training_seed": _training_seed(recipe, attrs.get(FINAL_SEED_ATTR)),
        "epochs": recipe.get("epochs"),
        "num_train_images": recipe.get("num_train_images"),
        "augmentation": spec.augmentation.to_dict() if spec.augmentation.enabled else {},
        "lr_schedule": spec.lr_schedule,
        "recipe": recipe,
    }


def _training_seed(recipe: dict[str, Any], final_seed: int | None) -> int | None:
    """The seed a final model trained with: the recipe's base ``seed`` plus its final seed
    (``nas-mnist retrain``'s rule), or None when either is unknown."""
    base = recipe.get("seed")
    return None if base is None or final_seed is None else int(base) + int(final_seed)
