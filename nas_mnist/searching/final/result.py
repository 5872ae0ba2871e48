"""What ``retrain`` returns: ``RetrainResult``, its final models' table, the spread per spec."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nas_mnist.searching.final.recipe import FinalRecipe
from nas_mnist.timing import format_duration
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    BEST_EPOCH_ATTR,
    FINAL_KEY_ATTR,
    FINAL_SEED_ATTR,
    MODEL_URI_ATTR,
    NUM_PARAMS_ATTR,
    REASON_ATTR,
    RECIPE_ATTR,
    RUN_ATTR,
    SOURCE_TRIAL_ATTR,
    TEST_ACCURACY_ATTR,
    TRAIN_SECONDS_ATTR,
)

FINAL_COLUMNS = ("key", "trial", "source_trial", "baseline", "seed", "state", "val_accuracy",
                 "test_accuracy", "num_params", "best_epoch", "epochs", "train_seconds",
                 "model_uri", "mlflow_run_id")
"""Columns of ``RetrainResult.final_models``."""

SPREAD_COLUMNS = ("spec", "source_trial", "baseline", "runs", "val_mean", "val_std", "test_mean",
                  "test_std", "search_val_accuracy")
"""Columns of ``RetrainResult.by_spec``."""


@dataclass
class RetrainResult:
    """What ``retrain`` left behind.

    Attributes:
        final_models: a ``pandas.DataFrame`` with one row per final model asked for
            (``FINAL_COLUMNS``), complete ones first by val_accuracy: ``key``
            (``trial:12/seed:0``), ``trial`` (its number in the final study), ``source_trial``
            (the search trial, or <NA> for a catalog baseline), ``baseline`` (name or ""),
            ``seed`` (which of the ``--seeds`` runs), ``state``, ``val_accuracy`` (best epoch),
            ``test_accuracy`` (reporting only), ``num_params``, ``best_epoch`` (0-based),
            ``epochs``, ``train_seconds``, ``model_uri``, ``mlflow_run_id``.
        by_spec: per retrained spec (``SPREAD_COLUMNS``): runs, mean and sample standard
            deviation of val_accuracy and test_accuracy over its seeds (std NaN for one run),
            and the spec's val_accuracy in the search.
        champion: the champion, a ``FrozenTrial`` of the final study (``study.final_models``),
            or None.
        recipe: the ``FinalRecipe`` the final models trained with.
        trained: final models this call trained (0 when everything was done before).
        missing: keys asked for that have no complete final model (failed twice, or stopped).
        registered_model: the MLflow registered model's name (the study's), or None.
        champion_version, ensemble_version: the versions the ``champion`` and ``ensemble``
            aliases point at, or None.
        ensemble_members: the ensemble's final keys.
        ensemble_val_accuracy, ensemble_test_accuracy: the ensemble's accuracies, or None.
        study, final_study: the searched ``optuna.Study`` and its final study.
        parent_run_id, experiment_id, tracking_uri: where the MLflow runs are.
    """

    final_models: pd.DataFrame
    by_spec: pd.DataFrame
    champion: Any
    recipe: FinalRecipe
    trained: int = 0
    missing: tuple[str, ...] = ()
    registered_model: str | None = None
    champion_version: str | None = None
    ensemble_version: str | None = None
    ensemble_members: tuple[str, ...] = ()
    ensemble_val_accuracy: float | None = None
    ensemble_test_accuracy: float | None = None
    study: Any = None
    final_study: Any = None
    parent_run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None

    @property
    def champion_key(self) -> str | None:
        """The champion's final key, or None."""
        return None if self.champion is None else self.champion.user_attrs.get(FINAL_KEY_ATTR)

    @property
    def champion_uri(self) -> str | None:
        """``models:/<study name>@champion`` once registered, else None."""
        if self.registered_model is None or self.champion_version is None:
            return None
        return f"models:/{self.registered_model}@champion"


def _row(trial: Any, key: str) -> dict[str, Any]:
    """One final model's row of ``final_models``."""
    attrs = trial.user_attrs
    complete = trial.state.name == "COMPLETE"
    return {
        "key": key, "trial": trial.number, "source_trial": attrs.get(SOURCE_TRIAL_ATTR),
        "baseline": attrs.get(BASELINE_ATTR) or "", "seed": attrs.get(FINAL_SEED_ATTR),
        "state": trial.state.name.lower(), "val_accuracy": trial.value if complete else None,
        "test_accuracy": attrs.get(TEST_ACCURACY_ATTR), "num_params": attrs.get(NUM_PARAMS_ATTR),
        "best_epoch": attrs.get(BEST_EPOCH_ATTR),
        "epochs": (attrs.get(RECIPE_ATTR) or {}).get("epochs"),
        "train_seconds": attrs.get(TRAIN_SECONDS_ATTR), "model_uri": attrs.get(MODEL_URI_ATTR),
        "mlflow_run_id": attrs.get(RUN_ATTR),
    }


def final_model_line(trial: Any, complete: int, total: int) -> str:
    """One line on a finished final model, for logs where no progress bar is drawn, e.g.
    ``final model trial:46/seed:1 complete: val_accuracy 0.9955, test_accuracy 0.9944, best epoch
    23 of 0-29, 10 min; 3 of 4 final models complete`` (epochs numbered from 0); a failed one
    gives its reason instead.

    Args:
        trial: a finished ``optuna.trial.FrozenTrial`` of the final study.
        complete: the final models asked for that are complete now; ``total``: those asked for.
    """
    attrs = trial.user_attrs
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    took = "" if seconds is None else f", {format_duration(seconds)}"
    head = f"final model {attrs.get(FINAL_KEY_ATTR, f'trial {trial.number}')}"
    if trial.state.name == "COMPLETE":
        facts = [f"val_accuracy {trial.value:.4f}"]
        if attrs.get(TEST_ACCURACY_ATTR) is not None:
            facts.append(f"test_accuracy {float(attrs[TEST_ACCURACY_ATTR]):.4f}")
        epochs = (attrs.get(RECIPE_ATTR) or {}).get("epochs")
        if attrs.get(BEST_EPOCH_ATTR) is not None and epochs and int(epochs) > 1:
            facts.append(f"best epoch {attrs[BEST_EPOCH_ATTR]} of 0-{int(epochs) - 1}")
        head += f" complete: {', '.join(facts)}{took}"
    else:
        state = {"FAIL": "failed"}.get(trial.state.name, trial.state.name.lower())
        head += f" {state}{took}: {attrs.get(REASON_ATTR) or 'no reason recorded'}"
    return f"{head}; {complete} of {total} final models complete"


def final_models_frame(grouped: dict[str, list[Any]], keys: Sequence[str]) -> pd.DataFrame:
    """The table of the final models ``keys`` (``queue.trials_by_key``'s groups): each
    key's complete trial, else its latest attempt; complete ones first, by val_accuracy."""
    rows = []
    for key in keys:
        trials = grouped.get(key, [])
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        chosen = complete[-1] if complete else (trials[-1] if trials else None)
        if chosen is not None:
            rows.append(_row(chosen, key))
    frame = pd.DataFrame(rows, columns=list(FINAL_COLUMNS))
    frame = frame.assign(_rank=frame["state"].ne("complete").astype(int)).sort_values(
        ["_rank", "val_accuracy", "trial"], ascending=[True, False, True], na_position="last")
    frame = frame.drop(columns="_rank").reset_index(drop=True)
    for column in ("trial", "source_trial", "seed", "num_params", "best_epoch", "epochs"):
        frame[column] = frame[column].astype("Int64")
    return frame


def spread_by_spec(frame: pd.DataFrame, search_values: dict[str, float | None]) -> pd.DataFrame:
    """Mean and sample standard deviation of val_accuracy and test_accuracy per spec over its
    complete final models; ``search_values``: each spec's (``trial:12``) search val_accuracy."""
    done = frame[frame["state"].eq("complete")].copy()
    done["spec"] = done["key"].str.rsplit("/", n=1).str[0]
    rows = []
    for spec, group in done.groupby("spec", sort=False):
        rows.append({
            "spec": spec, "source_trial": group["source_trial"].iloc[0],
            "baseline": group["baseline"].iloc[0], "runs": len(group),
            "val_mean": group["val_accuracy"].mean(), "val_std": group["val_accuracy"].std(),
            "test_mean": group["test_accuracy"].astype(float).mean(),
            "test_std": group["test_accuracy"].astype(float).std(),
            "search_val_accuracy": search_values.get(spec),
        })
    spread = pd.DataFrame(rows, columns=list(SPREAD_COLUMNS))
    return spread.sort_values("val_mean", ascending=False).reset_index(drop=True)
