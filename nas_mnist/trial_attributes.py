"""Names of the Optuna user attributes that nas-mnist writes, in one place.

Trial attributes are written by the objective, seeding and recovery (``nas_mnist.engine``) and
read by the leaderboard, the report and the export; study attributes link a study to its MLflow
experiment and parent run (``nas_mnist.tracking``). Plain strings, so that Optuna's CLI, the
dashboard and other tools see the same names.
"""

from __future__ import annotations

from typing import Any

# --- trial attributes -------------------------------------------------------------------------
BASELINE_ATTR = "baseline"
"""Name of the documented baseline a trial trains (absent for sampled trials)."""
IN_SPACE_ATTR = "in_space"
"""Whether a baseline trial is a point of the active search space (its params rebuild it)."""
WORKER_ATTR = "worker"
"""The process running the trial (``host:pid``; see ``nas_mnist.study.recovery``)."""
RETRY_OF_ATTR = "retry_of"
"""Number of the dead or interrupted trial whose configuration this trial retries."""
REASON_ATTR = "reason"
"""Why a trial was pruned or failed (``invalid_architecture: ...``, ``nan_loss: ...``, ...)."""
TOO_LARGE_REASON = "too_large"
"""The reason prefix of a spec pruned before training as over ``--max-params``."""
TOO_COSTLY_REASON = "too_costly"
"""The reason prefix of a spec pruned before training as over ``--max-mflops``."""
SPEC_ATTR = "spec"
"""The trained spec, as ``ArchitectureSpec.to_dict()``, as a user attribute: in final models
(``<study>/final``) and in search trials of studies made before ``SPEC_SYSTEM_ATTR``."""
SPEC_SYSTEM_ATTR = "nas_mnist:spec"
"""A search trial's trained spec (``ArchitectureSpec.to_dict()``, about 1,000 characters) as a
system attribute of the trial: nas-mnist reads it (``trial_spec_data``); optuna-dashboard's
trial table and ``optuna trials`` do not show it (as a user attribute it made the dashboard's
rows about 1,200 px tall). The same spec is the trial run's MLflow artifact ``spec.json``
(``SPEC_URI_ATTR``); the trial's user attributes keep its summary (``SUMMARY_ATTRS``)."""
SPEC_URI_ATTR = "spec_uri"
"""Where a person finds a search trial's spec: its MLflow artifact, ``runs:/<run id>/spec.json``."""
MODEL_URI_ATTR = "model_uri"
"""MLflow URI of the trained model kept by a complete trial."""
RUN_ATTR = "mlflow_run_id"
"""The trial's MLflow run."""
PHASE_SECONDS_ATTR = "phase_seconds"
"""Wall-clock seconds per phase of the trial (fit, test_eval, artifacts, overhead, total)."""
VAL_ACCURACY_ATTR = "val_accuracy"
TEST_ACCURACY_ATTR = "test_accuracy"
TRAIN_SECONDS_ATTR = "train_seconds"
BEST_EPOCH_ATTR = "best_epoch"
LATENCY_ATTR = "latency_ms"
NUM_PARAMS_ATTR = "num_params"
"""The spec's parameter count (trainable plus non-trainable)."""
LEGACY_NUM_PARAMS_ATTR = "params"
"""``NUM_PARAMS_ATTR``'s name in studies made before it was renamed (it clashed with Optuna's
own ``params`` in tools that show both); ``user_attr`` reads it as a fallback."""
SUMMARY_ATTRS = ("depth", "kernel_sizes", "num_pools", "num_batch_norm", "optimizer")
"""Keys of ``ArchitectureSpec.summary()`` copied to each trial for the leaderboard (its
``params`` is stored as ``NUM_PARAMS_ATTR``)."""
RESULT_ATTRS = (VAL_ACCURACY_ATTR, TEST_ACCURACY_ATTR, BEST_EPOCH_ATTR, TRAIN_SECONDS_ATTR,
                NUM_PARAMS_ATTR)
"""The metrics of a complete trial that an export records."""

_LEGACY_NAMES = {NUM_PARAMS_ATTR: LEGACY_NUM_PARAMS_ATTR}


def trial_spec_data(trial: Any) -> dict | None:
    """The spec stored on ``trial`` (an Optuna ``FrozenTrial``): its ``SPEC_SYSTEM_ATTR``, else
    the ``SPEC_ATTR`` user attribute (final models, older studies), else None."""
    return trial.system_attrs.get(SPEC_SYSTEM_ATTR) or trial.user_attrs.get(SPEC_ATTR)


def record_trial_spec(trial: Any, data: dict) -> None:
    """Store ``data`` (``ArchitectureSpec.to_dict()``) as the running ``trial``'s
    ``SPEC_SYSTEM_ATTR`` (``SPEC_ATTR``, a user attribute, on a trial without a storage: Optuna's
    ``FixedTrial``)."""
    storage = getattr(trial, "storage", None)
    if storage is None:
        trial.set_user_attr(SPEC_ATTR, data)
        return
    # Optuna 5 has no public setter of a trial's system attributes; Optuna's own artifacts
    # module and optuna-dashboard write theirs through the trial's storage like this.
    storage.set_trial_system_attr(trial._trial_id, SPEC_SYSTEM_ATTR, data)


def user_attr(attrs: dict, key: str, default: object = None) -> object:
    """``attrs[key]``, falling back to the attribute's former name in older studies
    (``num_params``: ``params``), else ``default``."""
    if key in attrs:
        return attrs[key]
    legacy = _LEGACY_NAMES.get(key)
    return attrs.get(legacy, default) if legacy else default


# --- study attributes -------------------------------------------------------------------------
OBJECTIVE_ATTR = "objective"
"""The objective names the study was created with (``["val_accuracy", "params"]``, ...)."""
EXPERIMENT_ATTR = "mlflow_experiment_id"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
TRACKING_URI_ATTR = "mlflow_tracking_uri"
DATA_SOURCE_ATTR = "data_source"
"""The MNIST a study's search trained on: an absolute path, or ``"keras.datasets.mnist"``."""
DATA_SHA256_ATTR = "data_sha256"
"""Hex SHA-256 of that file (``nas_mnist.data.data_fingerprint``); absent for Keras' download."""
SPACE_SHA256_ATTR = "space_sha256"
"""Hex SHA-256 of the search space the study's latest search sampled from: of its parsed
content, name and description left out (``nas_mnist.study.memory.space_sha256``); absent in
studies made before it was recorded."""
SETTINGS_ATTR = "search_settings"
"""The settings of the study's latest search (``SearchSettings``'s fields, JSON values)."""

# --- final models (``nas-mnist retrain``: trials of the study ``<study>/final``) ----------------
SOURCE_TRIAL_ATTR = "source_trial"
"""Number of the search trial whose spec a final model retrains (absent for a baseline)."""
FINAL_KEY_ATTR = "final_key"
"""What a final model is, unique in its final study (``trial:12/seed:0``,
``baseline:s002_m9/seed:1``)."""
FINAL_SEED_ATTR = "final_seed"
"""Which of the ``--seeds`` runs of one spec a final model is (0, 1, ...)."""
RECIPE_ATTR = "recipe"
"""The final recipe a final model was trained with (``FinalRecipe``'s fields, JSON values)."""
REGISTERED_ATTR = "registered_model"
"""Study attribute of a final study: the MLflow registered model's name (``<study name>``)."""
