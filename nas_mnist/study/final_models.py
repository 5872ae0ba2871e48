"""A study's final models: the best specs retrained at full budget (``nas-mnist retrain``).

They are the trials of a second Optuna study in the same storage, named ``<study>/final``
(``final_study_name``), so that they are durable and resumable the way trials are. Each final
trial records what it retrains (``trial_attributes.SOURCE_TRIAL_ATTR`` or ``BASELINE_ATTR``, its
``FINAL_KEY_ATTR`` and ``FINAL_SEED_ATTR``), the recipe (``RECIPE_ATTR``), its spec, metrics and
MLflow model like a search trial. The champion is the complete final model with the highest
val_accuracy (ties: fewer parameters, then the lower trial number), never chosen on test. This
module only reads: export and report use it; ``nas_mnist.searching.final.retrain`` writes.
"""

from __future__ import annotations

from typing import Any

FINAL_SUFFIX = "/final"


def final_study_name(study_name: str) -> str:
    """The name of a study's final study: ``<study_name>/final``."""
    return f"{study_name}{FINAL_SUFFIX}"


def load_final_study(storage: Any, study_name: str) -> Any | None:
    """The final study of ``study_name`` in ``storage`` (a URL, ``StorageURL`` or Optuna storage),
    or None when no final model was ever started. Creates nothing."""
    import optuna

    from nas_mnist.study.storage import make_storage

    if isinstance(storage, str) or not isinstance(storage, optuna.storages.BaseStorage):
        storage = make_storage(storage)
    name = final_study_name(study_name)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage,
                                                                  include_best_trial=False)}
    if name not in names:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def final_models(final_study: Any | None) -> list[Any]:
    """The complete final trials (``FrozenTrial``), best first (val_accuracy, then fewer
    parameters, then the lower number); ``[]`` for ``None``."""
    if final_study is None:
        return []
    from optuna.trial import TrialState

    from nas_mnist.trial_attributes import NUM_PARAMS_ATTR, user_attr

    done = [t for t in final_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    return sorted(done, key=lambda t: (-t.value, user_attr(t.user_attrs, NUM_PARAMS_ATTR) or 0,
                                       t.number))


def champion(final_study: Any | None) -> Any | None:
    """The champion: the best complete final model (``final_models``' first), or None."""
    models = final_models(final_study)
    return models[0] if models else None
