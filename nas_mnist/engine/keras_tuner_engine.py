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
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.data import DataSplits
from nas_mnist.model.training import TrainingOptions
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.tracking.tracker import Tracker

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
        return self.hp.Int(name, low, high, step=step, sampling="log" if log else "linear")

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


def make_tuner(
    name: str,
    space: SearchSpace,
    data: DataSplits,
    *,
    epochs: int,
    max_trials: int,
    seed: int,
    directory: str | Path,
    project_name: str,
    tracker: Tracker | None = None,
    experiment_id: str | None = None,
    parent_run_id: str | None = None,
    options: TrainingOptions | None = None,
    overwrite: bool = False,
    max_epochs_total: int | None = None,
    hyperband_iterations: int = 1,
) -> Any:
    """A KerasTuner tuner over ``space`` whose trials train with nas-mnist's builder and pipeline.

    Args:
        name: "hyperband" (``max_epochs=epochs``, factor 3), "bayesian" or "random".
        space: the search space.
        data: the splits.
        epochs: epochs per trial (Hyperband: the most any model trains).
        max_trials: the tuner stops after this many trials.
        seed: seeds the oracle and each trial's weights (``seed + trial number``).
        directory, project_name: where KerasTuner keeps its state.
        tracker, experiment_id, parent_run_id: MLflow logging (none when ``tracker`` is None).
        options: input pipeline settings.
        overwrite: start afresh instead of resuming ``directory/project_name``.
        max_epochs_total: stop starting trials once the trials trained this many epochs in all
            (an epoch budget, as ``scripts/compare_engines.py`` uses).
        hyperband_iterations: KerasTuner's ``hyperband_iterations`` (full Hyperband runs).

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
            return compile_model(build_model(spec), spec,
                                 steps_per_execution=options.steps_per_execution)

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
                self.current["run_id"] = tracker.start_trial_run(
                    experiment_id, parent_run_id, number, project_name,
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

            from nas_mnist.model.training import BestEpoch, fit_inputs, test_metrics

            spec: ArchitectureSpec = self.hypermodel.spec
            run_id = self.current["run_id"]
            initial_epoch = int(kwargs.get("initial_epoch", 0))
            best = BestEpoch()
            callbacks = [best, *kwargs.get("callbacks", [])]
            if tracker is not None:
                tracker.log_trial_spec(run_id, spec, hp.values, self.current["number"])

                class LogEpoch(keras.callbacks.Callback):
                    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                        tracker.log_metrics(run_id, {k: float(v) for k, v in (logs or {}).items()},
                                            step=epoch)

                callbacks.append(LogEpoch())
            history = model.fit(
                **fit_inputs(data, spec.batch_size, seed + self.current["number"], options),
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
                from nas_mnist.reporting.report import log_trial_artifacts

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
            if max_epochs_total is not None and spent >= max_epochs_total:
                self.oracle.max_trials = len(self.oracle.trials)  # the next trial is STOPPED
            if tracker is not None and self.current.get("run_id"):
                tracker.end_trial_run(self.current["run_id"], state, reason or None)
                self.current["run_id"] = None

    common = {
        "hypermodel": SpaceHyperModel(),
        "objective": kt.Objective("val_accuracy", direction="max"),
        "seed": seed,
        "directory": str(directory),
        "project_name": project_name,
        "overwrite": overwrite,
        "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILED_TRIALS,
    }
    if name == "hyperband":
        tuner = NasMnistTuner(max_epochs=epochs, factor=HYPERBAND_FACTOR,
                              hyperband_iterations=hyperband_iterations, **common)
        tuner.oracle.max_trials = max_trials  # Hyperband's own budget may be larger
    else:
        tuner = NasMnistTuner(max_trials=max_trials, **common)
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


def run_keras_tuner_search(args: argparse.Namespace) -> int:
    """The ``search`` command with ``--engine keras-tuner``; returns the exit status."""
    import pandas as pd

    from nas_mnist.cli.arguments import EXIT_FAILURE, EXIT_OK, load_data
    from nas_mnist.console import console, table_from_frame
    from nas_mnist.model.devices import configure_devices, set_mixed_precision
    from nas_mnist.model.training import freeze_long_lived_objects
    from nas_mnist.search_space.space import load_search_space

    space = load_search_space(args.space)
    data = load_data(args)
    tracker = Tracker(args.tracking_uri)
    tracker.check()
    devices = configure_devices()
    precision = set_mixed_precision(args.mixed_precision)
    experiment_id, parent_run_id = start_parent_run(tracker, args.study_name, args.tuner)
    status = "FINISHED"
    try:  # from here on, the parent run is closed whatever happens
        tuner = make_tuner(
            args.tuner, space, data, epochs=args.epochs, max_trials=args.trials, seed=args.seed,
            directory=args.tuner_dir, project_name=args.study_name, tracker=tracker,
            experiment_id=experiment_id, parent_run_id=parent_run_id,
        )
        console.print(
            f"[bold]KerasTuner {args.tuner}[/] project {args.study_name!r} in {args.tuner_dir}: "
            f"up to {args.trials} trials of at most {args.epochs} epochs; {space.describe()}; "
            f"{data.describe()}; {devices}, dtype policy {precision}; baselines are not seeded"
        )
        freeze_long_lived_objects()
        tuner.search(verbose=0)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        tracker.finish_parent_run(parent_run_id, status)
    frame = pd.DataFrame([vars(r) for r in tuner.records]).drop(columns="finished_at")
    if frame.empty:
        console.print("no trials ran (the KerasTuner project had already finished; pass a new "
                      "--study-name or more --trials)")
        return EXIT_OK
    frame = frame.rename(columns={"number": "trial", "seconds": "train_seconds"})
    frame = frame.sort_values("val_accuracy", ascending=False, na_position="last")
    columns = ("trial", "state", "val_accuracy", "test_accuracy", "params", "epochs_trained",
               "train_seconds", "reason")
    console.print(table_from_frame(frame, columns, title=f"{len(frame)} KerasTuner trials "
                                   "(by val_accuracy)", limit=10))
    console.print(
        f"MLflow: experiment {args.study_name!r} (id {experiment_id}), parent run "
        f"{parent_run_id} in {tracker.tracking_uri}"
    )
    return EXIT_OK if frame["state"].eq("complete").any() else EXIT_FAILURE
