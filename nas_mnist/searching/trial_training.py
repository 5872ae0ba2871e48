"""One trial's training, as every engine runs it: train a spec, keep its best epoch, log its run.

``train_trial`` is the trial body that the Optuna objective (``nas_mnist.searching.objective``) and
the KerasTuner adapter (``nas_mnist.searching.keras_tuner``) share: it takes a spec and plain
settings (a ``TrialPlan``), not an engine's trial, so any stage that trains a spec into an MLflow
run can call it. Engine-specific steps (reporting to Optuna, pruning, KerasTuner's checkpoints)
come in as Keras callbacks; the run's start and end stay with the engine, which knows how a trial
ended.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from nas_mnist.architecture.spec import ArchitectureSpec
from nas_mnist.data import DataSplits
from nas_mnist.disk_space import check_free_space
from nas_mnist.model.training import TrainingOptions, TrainingResult
from nas_mnist.tracking.models import log_trial_model, model_id_of
from nas_mnist.tracking.tracker import Tracker
from nas_mnist.tracking.trial_artifacts import log_trial_artifacts

LATENCY_BATCH = 256
LATENCY_REPEATS = 5


@dataclass(frozen=True)
class TrialPlan:
    """How one trial trains and what its run keeps.

    Attributes:
        epochs: train up to this epoch (exclusive, as Keras' ``epochs``), >= 1.
        seed: the trial's seed (shuffling, precise-BN images; initial weights when
            ``train_trial`` builds the model); None for unseeded.
        batch_size: overrides the spec's batch size (images per step).
        initial_epoch: the first epoch to train (> 0 continues a model trained that far, as
            KerasTuner's Hyperband does); only with a given model.
        options: input pipeline settings.
        measure_latency: measure inference milliseconds per image (``measure_latency_ms``) and
            log it as ``latency_ms``.
        log_model: log the trained inference model as the run's MLflow model.
        model_metadata: extra facts stored with the MLflow model (JSON-serialisable).
        title: the learning curves' title (the run name).
        free_space_at: local places the run writes to (storage and tracking URLs, artifact
            locations), whose free space is checked before the model is logged
            (``disk_space.check_free_space``); empty: no check.
    """

    epochs: int
    seed: int | None = None
    batch_size: int | None = None
    initial_epoch: int = 0
    options: TrainingOptions = field(default_factory=TrainingOptions)
    measure_latency: bool = False
    log_model: bool = True
    model_metadata: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    free_space_at: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrialRun:
    """The MLflow run a trial logs to: its ``Tracker`` and run id."""

    tracker: Tracker
    run_id: str


@dataclass
class TrialOutcome:
    """What one trial produced.

    Attributes:
        model: the trained ``keras.Model`` holding the best epoch's weights.
        history: one dict per trained epoch (loss, accuracy, val_loss, val_accuracy, seconds).
        best_epoch: Keras' 0-based index of the epoch with the highest val_accuracy (counted from
            epoch 0, also for a model continued from ``initial_epoch``).
        val_accuracy: val_accuracy of the best epoch, fraction in [0, 1].
        test_accuracy, test_loss: the best-epoch model on the test split (reporting only).
        num_params: the model's parameter count.
        train_seconds: wall-clock seconds in ``fit`` (all epochs, validation included).
        initial_epoch: the first epoch this trial trained.
        latency_ms: inference milliseconds per image, or None when not measured.
        model_uri: the run's MLflow model (``models:/<id>``), or None when not logged.
        phase_seconds: wall-clock seconds per phase: those of training ("build" when the model
            was built here, "fit", "test_eval", "precise_bn"), then "mlflow_model", "artifacts"
            (both counted from the start of the logging), "total" (since the trial started) and
            "overhead" (total less fit and test_eval).
    """

    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float | None
    test_loss: float | None
    num_params: int
    train_seconds: float
    initial_epoch: int = 0
    latency_ms: float | None = None
    model_uri: str | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def epochs_trained(self) -> int:
        """Epochs this trial trained itself (a continued model counts only its own)."""
        return len(self.history)

    def summary_metrics(self) -> dict[str, float | None]:
        """The run's summary metrics: best_val_accuracy, test_accuracy, test_loss,
        train_seconds (seconds in ``fit``) and best_epoch."""
        return {"best_val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "test_loss": self.test_loss, "train_seconds": self.train_seconds,
                "best_epoch": self.best_epoch}


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics (Keras' logs as floats) to a trial's run, at step = epoch."""

    def __init__(self, run: TrialRun) -> None:
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Log ``logs`` at step ``epoch``."""
        self.run.tracker.log_metrics(
            self.run.run_id, {k: float(v) for k, v in (logs or {}).items()}, step=epoch)


def measure_latency_ms(model: Any, images: Any) -> float:
    """Milliseconds per image for inference on this machine.

    Predicts batches of ``LATENCY_BATCH`` images with ``model.predict_on_batch`` (compiled, no
    callbacks) ``LATENCY_REPEATS`` times after one warm-up call and returns the median time
    divided by the batch size.

    Args:
        model: a trained ``keras.Model``.
        images: float32 array (n, 28, 28, 1); the first ``LATENCY_BATCH`` are used.
    """
    batch = images[:LATENCY_BATCH]
    model.predict_on_batch(batch)
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(batch)


def train_trial(
    spec: ArchitectureSpec,
    data: DataSplits,
    plan: TrialPlan,
    run: TrialRun | None = None,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    model: keras.Model | None = None,
    started: float | None = None,
) -> TrialOutcome:
    """Train ``spec`` as a trial and log it to ``run``: the one trial body of every engine.

    Trains with the spec's recipe, precise BN and best-epoch selection (``train_spec``, or
    ``fit_compiled_model`` for a given model), evaluates the best-epoch model on the test split,
    optionally measures its latency, then logs to ``run``: each epoch's metrics, the MLflow model
    (``plan.log_model``), the model summary, learning curves and numeric encodings, the summary
    metrics (``TrialOutcome.summary_metrics``, attached to the MLflow model) and the phase
    timings as ``seconds.<phase>``. The run's params (``Tracker.log_trial_spec``), start and end
    are the caller's.

    Args:
        spec: the architecture and recipe.
        data: the splits.
        plan: epochs, seed and what to log.
        run: the trial's MLflow run; None logs nothing.
        callbacks: extra Keras callbacks, called after the epoch logger; one may raise (e.g.
            ``optuna.TrialPruned``) to end the trial.
        model: a compiled model of ``spec`` to train (KerasTuner builds its own); None builds it
            with ``plan.seed``.
        started: ``time.perf_counter()`` when the trial started (for the "total" phase);
            default now.

    Returns:
        The ``TrialOutcome``.

    Raises:
        NanLossError: the training loss became NaN or infinite.
        DiskSpaceError: a folder of ``plan.free_space_at`` has less free space than the floor
            (checked before the model is logged).
        TrackingUnavailableError: the tracking server stopped answering.
        mlflow.exceptions.MlflowException: the MLflow model cannot be written.
    """
    started = time.perf_counter() if started is None else started
    epoch_logger = [EpochLogger(run)] if run is not None else []
    result = _train(spec, data, plan, [*epoch_logger, *callbacks], model)
    outcome = _outcome(result, plan.initial_epoch)
    if plan.measure_latency:
        outcome.latency_ms = measure_latency_ms(outcome.model, data.x_val)
        if run is not None:
            run.tracker.log_metrics(run.run_id, {"latency_ms": outcome.latency_ms})
    if run is not None:
        _log_outcome(run, spec, plan, outcome)
    phases = outcome.phase_seconds
    # Everything that is not training or the test evaluation: spec to model, compile, MLflow
    # writes, artifacts (scripts/bench_training.py reports its share).
    phases["total"] = time.perf_counter() - started
    phases["overhead"] = phases["total"] - phases["fit"] - phases["test_eval"]
    if run is not None:
        run.tracker.log_metrics(run.run_id, {f"seconds.{k}": v for k, v in phases.items()})
    return outcome


def _train(spec: ArchitectureSpec, data: DataSplits, plan: TrialPlan,
           callbacks: list[keras.callbacks.Callback], model: keras.Model | None
           ) -> TrainingResult:
    """``train_spec`` builds and trains; a given model is trained by ``fit_compiled_model``."""
    from nas_mnist.model import training  # looked up at call time: tests replace train_spec

    if model is not None:
        return training.fit_compiled_model(model, spec, data, plan.epochs,
                                           initial_epoch=plan.initial_epoch,
                                           callbacks=callbacks, seed=plan.seed,
                                           batch_size=plan.batch_size, options=plan.options)
    if plan.initial_epoch:
        raise ValueError("initial_epoch > 0 continues a given model; pass it as model")
    return training.train_spec(spec, data, plan.epochs, callbacks=callbacks, seed=plan.seed,
                               batch_size=plan.batch_size, options=plan.options)


def _outcome(result: TrainingResult, initial_epoch: int) -> TrialOutcome:
    """A ``TrialOutcome`` from what training produced (nothing logged yet)."""
    return TrialOutcome(
        model=result.model, history=result.history, best_epoch=result.best_epoch,
        val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy,
        test_loss=result.test_loss, num_params=result.num_params,
        train_seconds=result.train_seconds, initial_epoch=initial_epoch,
        phase_seconds=dict(result.phase_seconds),
    )


def _log_outcome(run: TrialRun, spec: ArchitectureSpec, plan: TrialPlan,
                 outcome: TrialOutcome) -> None:
    """Log the MLflow model (if planned), the artifacts and the summary metrics to ``run``."""
    from nas_mnist.model.builder import inference_model

    start = time.perf_counter()
    if plan.free_space_at:  # the model is the trial's largest write
        check_free_space(plan.free_space_at)
    if plan.log_model:
        outcome.model_uri = _log_model(run, inference_model(spec, outcome.model),
                                       outcome.best_epoch, plan.model_metadata)
        outcome.phase_seconds["mlflow_model"] = time.perf_counter() - start
    log_trial_artifacts(run.tracker, run.run_id, spec, outcome, title=plan.title)
    outcome.phase_seconds["artifacts"] = time.perf_counter() - start
    model_id = model_id_of(outcome.model_uri) if outcome.model_uri else None
    run.tracker.log_metrics(run.run_id, outcome.summary_metrics(), model_id=model_id)


def _log_model(run: TrialRun, model: Any, best_epoch: int, metadata: Mapping[str, Any]) -> str:
    """Log ``model`` from the trial's run as its MLflow model; the model's URI."""
    try:
        return log_trial_model(model, run.tracker.tracking_uri, run.run_id, step=best_epoch,
                               metadata=metadata)
    except Exception as exc:  # MLflow's fluent API, outside the tracker's guarded client
        run.tracker.check_unreachable(exc)
        raise

