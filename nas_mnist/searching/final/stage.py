"""A search's final stage: once its trials are done, ``nas-mnist search`` retrains the best specs
at full budget (``nas_mnist.retrain`` with the search's settings), so the main job ends with a
champion; a quick look (``--max-train-samples``) skips it and says which command does it."""

from __future__ import annotations

import logging
from typing import Any

from nas_mnist.searching.final.recipe import DEFAULT_FINAL_EPOCHS

logger = logging.getLogger(__name__)


def final_stage_models(settings: Any) -> int:
    """Final models the search's final stage trains (its top-k specs plus the best baseline);
    0 when it has none. For the projection before the first trial."""
    top_k = settings.resolved_final_top_k
    return top_k + 1 if top_k else 0


def final_stage_epochs(settings: Any) -> int:
    """Epochs per final model: ``settings.final_epochs`` or the recipe's default."""
    return settings.final_epochs or DEFAULT_FINAL_EPOCHS


def run_final_stage(settings: Any, study: Any, stopped: bool) -> Any | None:
    """Retrain the search's best specs when its trials are done (the caller holds the storage's
    search lock).

    Args:
        settings: the search's ``SearchSettings``.
        study: the search's study.
        stopped: the search stopped early (failures in a row, tracking server gone): no final
            stage then.

    Returns:
        The ``RetrainResult``, or None when there is no final stage (``final_top_k`` 0, trials
        still missing, no complete trial, or an early stop).
    """
    from optuna.trial import TrialState

    from nas_mnist.searching.final.retrain import run_retrain
    from nas_mnist.searching.final.settings import RetrainSettings
    from nas_mnist.study.storage_url import StorageURL
    from nas_mnist.study.trial_counts import count_finished

    top_k = settings.resolved_final_top_k
    if stopped or count_finished(study) < settings.trials:
        return None
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    if top_k == 0:
        if settings.final_top_k is None and settings.max_train_samples is not None:
            logger.info("no final stage for a quick look (--max-train-samples); to retrain the "
                        "best specs at full budget and register a champion, run: nas-mnist "
                        "retrain --storage %s --study-name %s --top-k 3",
                        StorageURL.parse(settings.storage), settings.study_name)
        return None
    epochs = final_stage_epochs(settings)
    logger.info("final stage: the %s and the best baseline retrained for %d epoch%s",
                "best spec" if top_k == 1 else f"{top_k} best specs", epochs,
                "" if epochs == 1 else "s")
    return run_retrain(RetrainSettings(
        storage=settings.storage, study_name=settings.study_name, top_k=top_k,
        epochs=epochs, data=settings.data,
        max_train_samples=settings.max_train_samples, tracking_uri=settings.tracking_uri,
        progress=settings.progress, seed=settings.seed), take_lock=False)
