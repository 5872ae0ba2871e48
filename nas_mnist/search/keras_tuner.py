"""``nas-mnist search --engine keras-tuner``: the same search, driven by KerasTuner.

For comparing engines on identical ground: the same search-space file (its ``suggest`` runs on
KerasTuner's ``HyperParameters`` through ``HyperParametersTrial``), the same builder and input
pipeline, and the same MLflow layout as Optuna trials (an experiment named after the study, a
parent run, one nested run per trial with params, per-epoch metrics, ``spec.json``, the learning
curves and a ``state`` tag). KerasTuner keeps its own state in ``--tuner-dir``/<study name>;
re-running the same command resumes it. Baselines are not seeded (KerasTuner has no queue).

Hyperband (Li et al. 2018, as in KerasTuner) trains in brackets: a trial may continue an earlier
trial's model for more epochs (``tuner/initial_epoch`` > 0); its run logs only the epochs it
trained itself and the metric ``epochs_trained``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.data import DataSplits, data_fingerprint
from nas_mnist.study.memory import record_parent_params, settings_record
from nas_mnist.model.training import TrainingOptions
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.tracking.tracker import StudyRuns, Tracker

logger = logging.getLogger(__name__)

TUNERS = ("hyperband", "bayesian", "random")
HYPERBAND_FACTOR = 3
"""Hyperband's reduction factor (KerasTuner's default)."""
MAX_CONSECUTIVE_FAILED_TRIALS = 20
"""Impossible architectures fail a KerasTuner trial; stop only after this many in a row."""


class HyperParametersTrial:
    """The part of ``optuna.Trial``'s interface that ``SearchSpace.suggest`` uses, answered by
    KerasTuner's ``HyperParameters`` (``Choice``, ``Int``, ``Float``)."""

    def __init__(self, hp: Any) -> None:
        self.hp = hp

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.hp.Choice(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        # KerasTuner's step is a factor with log sampling (it must exceed 1): Optuna's log int
        # ranges have step 1, i.e. every integer, which is KerasTuner's step=None.
        if log:
            return self.hp.Int(name, low, high, step=None, sampling="log")
        return self.hp.Int(name, low, high, step=step, sampling="linear")

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> float:
        return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")


@dataclass
class TrialRecord:
    """One KerasTuner trial as nas-mnist saw it.

    Attributes:
        number: the trial's index (KerasTuner's trial_id as an int).
        state: "complete", "pruned" (impossible architecture, not trained) or "failed".
        epochs_trained: epochs this trial trained itself (Hyperband continuations start later).
        val_accuracy: best per-epoch val_accuracy of this trial, fraction, or None.
        test_accuracy: test accuracy of that best epoch's weights, or None (reporting only).
        params: parameter count, or None.
        seconds: wall-clock seconds of the trial.
        reason: why it did not complete.
    """

    number: int
    state: str
    epochs_trained: int = 0
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    params: int | None = None
    seconds: float = 0.0
    reason: str = ""
    finished_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class TunerConfig:
    """What a KerasTuner tuner runs.

    Attributes:
        name: "hyperband" (``max_epochs=epochs``, factor 3), "bayesian" or "random".
        epochs: epochs per trial (Hyperband: the most any model trains).
        max_trials: the tuner stops after this many trials.
        seed: seeds the oracle and each trial's weights (``seed + trial number``).
        directory, project_name: where KerasTuner keeps its state.
        overwrite: start afresh instead of resuming ``directory/project_name``.
        max_epochs_total: stop starting trials once the trials trained this many epochs in all
            (an epoch budget, as ``scripts/compare_engines.py`` uses).
        hyperband_iterations: KerasTuner's ``hyperband_iterations`` (full Hyperband runs).
    """

    name: str
    epochs: int
    max_trials: int
    seed: int
    directory: str | Path
    project_name: str
    overwrite: bool = False
    max_epochs_total: int | None = None
    hyperband_iterations: int = 1


def make_tuner(
    config: TunerConfig,
    space: SearchSpace,
    data: DataSplits,
    runs: StudyRuns | None = None,
    options: TrainingOptions | None = None,
) -> Any:
    """A KerasTuner tuner over ``space`` whose trials train with nas-mnist's builder and pipeline.

    Args:
        config: the tuner, its budget and where it keeps its state.
        space: the search space.
        data: the splits.
        runs: where the trials' MLflow runs go (no MLflow logging when None).
        options: input pipeline settings.

    Returns:
        The tuner; ``tuner.records`` fills with a ``TrialRecord`` per finished trial.

    Raises:
        ValueError: unknown tuner name.
    """
    import keras_tuner as kt
    from keras_tuner.src import config as kt_config

    # KerasTuner prints every failed trial's traceback while DEBUG (its default) is on; an
    # impossible architecture is an expected outcome, recorded with its reason instead.
    kt_config.DEBUG = False
    classes = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization,
               "random": kt.RandomSearch}
    name, seed, epochs = config.name, config.seed, config.epochs
    tracker = runs.tracker if runs is not None else None
    if name not in classes:
        raise ValueError(f"unknown tuner {name!r}; choose from {', '.join(TUNERS)}")
    options = options or TrainingOptions()

    class SpaceHyperModel(kt.HyperModel):
        """Builds the spec that the space suggests; trains it like a nas-mnist trial."""

        spec: ArchitectureSpec | None = None

        def build(self, hp: Any) -> Any:
            from nas_mnist.model.builder import build_model, compile_model

            try:
                spec = space.suggest(HyperParametersTrial(hp))
            except SpecError as exc:
                raise kt.errors.FailedTrialError(f"invalid_architecture: {exc}") from None
            self.spec = spec  # the spec that ``fit`` trains next
            from nas_mnist.model.training import learning_rate_for

            steps = math.ceil(data.num_train / spec.batch_size)
            return compile_model(build_model(spec), spec,
                                 steps_per_execution=options.steps_per_execution,
                                 learning_rate=learning_rate_for(spec, epochs, steps))

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return tuner.train(hp, model, kwargs)

    class NasMnistTuner(classes[name]):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.records: list[TrialRecord] = []
            self.current: dict[str, Any] = {}

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            import keras

            from nas_mnist.model.training import release_memory

            release_memory()
            number = int(trial.trial_id)
            keras.utils.set_random_seed(seed + number)
            self.current = {"number": number, "start": time.perf_counter(), "run_id": None}
            if tracker is not None:
                self.current["run_id"] = runs.start_trial_run(
                    number, config.project_name,
                    tags={"engine": "keras-tuner", "tuner": name},
                    run_name=f"trial-{number:04d}",
                )
            try:
                return super().run_trial(trial, *args, **kwargs)
            except kt.errors.FailedTrialError as exc:
                self._end("pruned", str(exc))
                raise
            except Exception as exc:
                self._end("failed", f"{type(exc).__name__}: {exc}")
                raise

        def train(self, hp: Any, model: Any, kwargs: dict[str, Any]) -> Any:
            """``model.fit`` with KerasTuner's epochs and callbacks plus nas-mnist's."""
            import keras

            from nas_mnist.model.training import (
                BestEpoch,
                fit_inputs,
                precise_bn_callbacks,
                schedule_callbacks,
                test_metrics,
            )

            spec: ArchitectureSpec = self.hypermodel.spec
            run_id = self.current["run_id"]
            initial_epoch = int(kwargs.get("initial_epoch", 0))
            best = BestEpoch()
            trial_seed = seed + self.current["number"]
            callbacks = [*precise_bn_callbacks(model, data, trial_seed, options), best,
                         *schedule_callbacks(spec), *kwargs.get("callbacks", [])]
            if tracker is not None:
                tracker.log_trial_spec(run_id, spec, hp.values, self.current["number"])

                class LogEpoch(keras.callbacks.Callback):
                    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                        tracker.log_metrics(run_id, {k: float(v) for k, v in (logs or {}).items()},
                                            step=epoch)

                callbacks.append(LogEpoch())
            history = model.fit(
                **fit_inputs(data, spec.batch_size, trial_seed, options),
                epochs=int(kwargs.get("epochs", epochs)), initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=0,
            )
            if best.best_weights is not None:
                model.set_weights(best.best_weights)
            _, test_accuracy = test_metrics(model, data, options)
            record = TrialRecord(
                number=self.current["number"], state="complete",
                epochs_trained=len(best.history), val_accuracy=best.best_value,
                test_accuracy=test_accuracy, params=spec.num_params,
                seconds=time.perf_counter() - self.current["start"],
            )
            if tracker is not None:
                from nas_mnist.tracking.trial_artifacts import log_trial_artifacts

                result = argparse.Namespace(model=model, history=best.history)
                log_trial_artifacts(tracker, run_id, spec, result,
                                    title=f"trial-{record.number:04d}")
                tracker.log_metrics(run_id, {
                    "best_val_accuracy": record.val_accuracy, "test_accuracy": test_accuracy,
                    "epochs_trained": record.epochs_trained, "initial_epoch": initial_epoch,
                    "train_seconds": record.seconds,
                })
            self._end("complete", "", record)
            return history

        def _end(self, state: str, reason: str, record: TrialRecord | None = None) -> None:
            record = record or TrialRecord(
                number=self.current["number"], state=state, reason=reason,
                seconds=time.perf_counter() - self.current["start"],
            )
            self.records.append(record)
            spent = sum(r.epochs_trained for r in self.records)
            if config.max_epochs_total is not None and spent >= config.max_epochs_total:
                self.oracle.max_trials = len(self.oracle.trials)  # the next trial is STOPPED
            if tracker is not None and self.current.get("run_id"):
                tracker.end_trial_run(self.current["run_id"], state, reason or None)
                self.current["run_id"] = None

    common = {
        "hypermodel": SpaceHyperModel(),
        "objective": kt.Objective("val_accuracy", direction="max"),
        "seed": seed,
        "directory": str(config.directory),
        "project_name": config.project_name,
        "overwrite": config.overwrite,
        "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILED_TRIALS,
    }
    if name == "hyperband":
        tuner = NasMnistTuner(max_epochs=epochs, factor=HYPERBAND_FACTOR,
                              hyperband_iterations=config.hyperband_iterations, **common)
        tuner.oracle.max_trials = config.max_trials  # Hyperband's own budget may be larger
    else:
        tuner = NasMnistTuner(max_trials=config.max_trials, **common)
    return tuner


def start_parent_run(tracker: Tracker, study_name: str, tuner_name: str) -> tuple[str, str]:
    """(experiment_id, parent_run_id): the experiment named after the study and a new parent run
    tagged like an Optuna study's (plus ``engine`` and ``tuner``)."""
    experiment_id = tracker.experiment_id(study_name)
    run = tracker.client.create_run(
        experiment_id,
        run_name=study_name,
        tags={"nas_mnist.role": "study", "optuna.study_name": study_name,
              "engine": "keras-tuner", "tuner": tuner_name},
    )
    return experiment_id, run.info.run_id


def run_keras_tuner_search(
    settings: Any, space: SearchSpace, data: DataSplits, tracker: Tracker, devices: str
) -> Any:
    """A search with ``engine="keras-tuner"``: the same space, builder and MLflow logging as the
    Optuna engine, driven by KerasTuner (state in ``settings.tuner_dir``).

    Args:
        settings: the ``SearchSettings``.
        space, data, tracker: the validated search space, data splits and MLflow tracker.
        devices: the device line to log.

    Returns:
        A ``SearchResult`` whose ``study`` and ``best_trial`` are None and whose leaderboard has
        one row per KerasTuner trial (trial, state, val_accuracy, test_accuracy, params,
        epochs_trained, train_seconds, reason), best val_accuracy first.
    """
    import pandas as pd

    from nas_mnist.search.runner import SearchResult
    from nas_mnist.model.training import freeze_long_lived_objects

    experiment_id, parent_run_id = start_parent_run(tracker, settings.study_name, settings.tuner)
    record_parent_params(tracker, parent_run_id,
                         settings_record(settings, data_fingerprint(settings.data)))
    config = TunerConfig(settings.tuner, settings.epochs, settings.trials, settings.seed,
                         settings.tuner_dir, settings.study_name)
    status = "FINISHED"
    try:  # from here on, the parent run is closed whatever happens
        tuner = make_tuner(config, space, data, StudyRuns(tracker, experiment_id, parent_run_id))
        logger.info("KerasTuner %s project %r in %s: up to %d trials of at most %d epochs; %s; "
                    "%s; %s; baselines are not seeded", settings.tuner, settings.study_name,
                    settings.tuner_dir, settings.trials, settings.epochs, space.describe(),
                    data.describe(), devices)
        freeze_long_lived_objects()
        tuner.search(verbose=0)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        tracker.finish_parent_run(parent_run_id, status)
    frame = pd.DataFrame([vars(r) for r in tuner.records], columns=[
        f.name for f in dataclasses.fields(TrialRecord)]).drop(columns="finished_at")
    frame = frame.rename(columns={"number": "trial", "seconds": "train_seconds"})
    frame = frame.sort_values("val_accuracy", ascending=False, na_position="last")
    return SearchResult(study=None, leaderboard=frame.reset_index(drop=True), best_trial=None,
                        parent_run_id=parent_run_id, experiment_id=experiment_id,
                        tracking_uri=tracker.tracking_uri, settings=settings)
