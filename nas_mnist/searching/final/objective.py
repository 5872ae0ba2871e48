"""The objective of the final study: train one enqueued final model as a search trial trains.

``FinalObjective`` is the search's ``Objective`` (one MLflow run per trial, the spec recorded,
``train_trial``'s training and logging, the same handling of NaN losses, Ctrl-C and a lost
tracking server, retries through ``study.recovery``) with three differences: the spec is the
final spec the trial was enqueued with (``queue``), the trial's run is tagged
``phase=final`` with what it retrains, and it trains with the final model's own seed (the
recipe's seed plus its ``final_seed``). The final study has no pruner: every final model trains
all its epochs and keeps the best by val_accuracy.
"""

from __future__ import annotations

import time
from typing import Any

import optuna

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.errors import TrialFailure
from nas_mnist.searching.final.queue import final_attrs
from nas_mnist.searching.objective import Objective, _TrialReporter
from nas_mnist.searching.trial_training import TrialOutcome, TrialPlan, TrialRun, train_trial
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_KEY_ATTR,
    FINAL_SEED_ATTR,
    RUN_ATTR,
    SOURCE_TRIAL_ATTR,
    SPEC_ATTR,
)

PHASE_TAG = "phase"
"""MLflow run tag of a final model's run (``phase=final``)."""


class NotAFinalModelError(TrialFailure):
    """A trial of the final study that ``retrain`` did not enqueue (no final key)."""

    reason = "not_a_final_model"


def run_name(attrs: dict[str, Any]) -> str:
    """A final model's MLflow run name: ``final-trial-12-seed-0``, ``final-s002_m9-seed-1``."""
    what = attrs.get(BASELINE_ATTR) or f"trial-{attrs.get(SOURCE_TRIAL_ATTR)}"
    return f"final-{what}-seed-{attrs.get(FINAL_SEED_ATTR, 0)}"


def run_tags(attrs: dict[str, Any]) -> dict[str, str]:
    """A final model's run tags: ``phase=final``, ``final_key``, ``final_seed`` and
    ``source_trial`` (the search trial's number) or ``baseline``."""
    tags = {PHASE_TAG: "final", FINAL_KEY_ATTR: str(attrs[FINAL_KEY_ATTR]),
            FINAL_SEED_ATTR: str(attrs.get(FINAL_SEED_ATTR, 0))}
    for name in (SOURCE_TRIAL_ATTR, BASELINE_ATTR):
        if attrs.get(name) is not None:
            tags[name] = str(attrs[name])
    return tags


class FinalObjective(Objective):
    """``Objective`` for the final study's enqueued trials.

    Args:
        data: the splits (the recipe's training images, the validation and test splits).
        runs: the search study's MLflow runs (final runs nest under its parent run).
        config: ``ObjectiveConfig`` with the recipe's epochs and ``seed`` (no pruning, no
            parameter limit, no trial budget).
        listener: progress hooks.
    """

    def __init__(self, data: Any, runs: Any, config: Any, listener: Any = None) -> None:
        super().__init__(space=None, data=data, runs=runs, config=config, listener=listener,
                         spec_for_trial=self._final_spec)

    @staticmethod
    def _final_spec(trial: optuna.Trial) -> ArchitectureSpec:
        """The final spec the trial was enqueued with."""
        return ArchitectureSpec.from_dict(trial.user_attrs[SPEC_ATTR])

    def _adopt_final_attrs(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's final attributes, copied from the trial it retries when it has none.

        Raises:
            NotAFinalModelError: neither it nor a trial it retries was enqueued by ``retrain``.
        """
        by_number = {t.number: t for t in trial.study.get_trials(deepcopy=False)}
        attrs = final_attrs(trial, by_number)
        if not attrs:
            raise NotAFinalModelError(f"trial {trial.number} of {trial.study.study_name!r} "
                                      "was not enqueued by retrain")
        for name, value in attrs.items():
            if name not in trial.user_attrs:
                trial.set_user_attr(name, value)
        return attrs

    def _start_run(self, trial: optuna.Trial) -> str:
        """The final model's MLflow run under the study's parent run, tagged ``phase=final``."""
        attrs = self._adopt_final_attrs(trial)
        run_id = self.runs.start_trial_run(trial.number, trial.study.study_name,
                                           tags=run_tags(attrs), run_name=run_name(attrs))
        trial.set_user_attr(RUN_ATTR, run_id)
        self.listener.trial_started(trial.number, self.config.epochs, attrs[FINAL_KEY_ATTR])
        return run_id

    def _train(self, trial: optuna.Trial, spec: ArchitectureSpec, run_id: str,
               trial_start: float | None = None) -> TrialOutcome:
        """Train the final spec with the final model's seed and log it (``train_trial``)."""
        attrs = trial.user_attrs
        plan = TrialPlan(
            epochs=self.config.epochs,
            seed=self.config.seed + int(attrs.get(FINAL_SEED_ATTR, 0)),
            options=self.config.training, title=run_name(attrs),
            model_metadata={"study_name": trial.study.study_name, "trial_number": trial.number,
                            "final_key": attrs.get(FINAL_KEY_ATTR), "phase": "final"},
        )
        reporter = _TrialReporter(trial, self.listener, prune=False)
        return train_trial(spec, self.data, plan, TrialRun(self.tracker, run_id),
                           callbacks=[reporter],
                           started=time.perf_counter() if trial_start is None else trial_start)
