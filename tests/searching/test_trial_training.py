"""Tests for nas_mnist.searching.trial_training: the trial body that the Optuna objective and the
KerasTuner adapter share (train, keep the best epoch, log the run)."""

from __future__ import annotations

import pytest
from support import random_splits

from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
from nas_mnist.searching.trial_training import TrialPlan, TrialRun, train_trial

SPEC = ArchitectureSpec(layers=(Flatten(), Dense(8)))


class RecordingTracker:
    """The part of ``Tracker`` that ``train_trial`` uses, recording what it is given."""

    tracking_uri = "memory://"

    def __init__(self) -> None:
        self.metrics: list[tuple[dict, int, str | None]] = []
        self.texts: list[str] = []
        self.artifacts: list[str] = []

    def log_metrics(self, run_id, metrics, step=0, model_id=None):
        self.metrics.append((dict(metrics), step, model_id))

    def log_text(self, run_id, text, artifact_file):
        self.texts.append(artifact_file)

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self.artifacts.append(local_path.rsplit("/", 1)[-1])

    def check_unreachable(self, exc):
        pass

    def steps_of(self, name: str) -> list[int]:
        return [step for metrics, step, _ in self.metrics if name in metrics]

    def logged(self) -> set[str]:
        return {name for metrics, _, _ in self.metrics for name in metrics}


def test_train_trial_trains_the_spec_and_logs_epochs_summary_artifacts_and_phases():
    tracker = RecordingTracker()
    plan = TrialPlan(epochs=2, seed=0, log_model=False, title="trial-0000")
    outcome = train_trial(SPEC, random_splits(), plan, TrialRun(tracker, "run"))
    assert outcome.epochs_trained == 2 and outcome.initial_epoch == 0
    assert 0 <= outcome.val_accuracy <= 1 and outcome.test_accuracy is not None
    assert outcome.model_uri is None and outcome.latency_ms is None
    assert tracker.steps_of("val_accuracy") == [0, 1]
    assert {"best_val_accuracy", "test_accuracy", "test_loss", "train_seconds", "best_epoch",
            "num.depth"} <= tracker.logged()
    assert {f"seconds.{k}" for k in ("build", "fit", "test_eval", "artifacts", "total",
                                     "overhead")} <= tracker.logged()
    assert "seconds.mlflow_model" not in tracker.logged()
    assert tracker.texts == ["model_summary.txt"]
    assert tracker.artifacts == ["learning_curves.png"]
    assert outcome.phase_seconds["total"] >= outcome.phase_seconds["fit"] > 0


def test_a_given_model_continues_from_initial_epoch_and_logs_only_its_own_epochs():
    from nas_mnist.model.builder import build_model, compile_model

    model = compile_model(build_model(SPEC), SPEC)
    tracker = RecordingTracker()
    plan = TrialPlan(epochs=3, initial_epoch=1, seed=0, log_model=False, measure_latency=True)
    outcome = train_trial(SPEC, random_splits(), plan, TrialRun(tracker, "run"), model=model)
    assert outcome.model is model and outcome.epochs_trained == 2
    assert outcome.best_epoch in (1, 2) and outcome.initial_epoch == 1
    assert tracker.steps_of("val_accuracy") == [1, 2]
    assert outcome.latency_ms > 0 and "latency_ms" in tracker.logged()
    assert "build" not in outcome.phase_seconds


def test_train_trial_without_a_run_logs_nothing_and_refuses_initial_epoch_without_a_model():
    outcome = train_trial(SPEC, random_splits(), TrialPlan(epochs=1, seed=0))
    assert outcome.epochs_trained == 1 and "total" in outcome.phase_seconds
    with pytest.raises(ValueError, match="initial_epoch"):
        train_trial(SPEC, random_splits(), TrialPlan(epochs=2, initial_epoch=1))
