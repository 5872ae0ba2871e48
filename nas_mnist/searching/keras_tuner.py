"""``nas-mnist search --engine keras-tuner``: the same search, driven by KerasTuner.

For comparing engines on identical ground: the same search-space file (its ``suggest`` runs on
KerasTuner's ``HyperParameters`` through ``HyperParametersTrial``), the same builder, input
pipeline and trial body (``nas_mnist.searching.trial_training.train_trial``), and the same MLflow
layout as Optuna trials (an experiment named after the study, a parent run, one nested run per
trial with params, per-epoch metrics, ``spec.json``, the learning curves and a ``state`` tag;
no MLflow model). KerasTuner keeps its own state in ``--tuner-dir``/<study name>; re-running the
same command resumes it. Baselines are not seeded (KerasTuner has no queue).

Hyperband (Li et al. 2018, as in KerasTuner) trains in brackets: a trial may continue an earlier
trial's model for more epochs (``tuner/initial_epoch`` > 0); its run logs only the epochs it
trained itself and the metrics ``epochs_trained`` and ``initial_epoch``.

Only KerasTuner's public API is used: the tuners are subclasses of ``kt.Hyperband``,
``kt.BayesianOptimization`` and ``kt.RandomSearch`` that override the documented ``run_trial``
and ``on_trial_end`` hooks, and the hypermodel is a ``kt.HyperModel``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from nas_mnist.architecture.spec import ArchitectureSpec, SpecError
from nas_mnist.data import DataSplits, data_fingerprint
from nas_mnist.model.cost import limit_reason
from nas_mnist.model.training import TrainingOptions
from nas_mnist.search_space.space import SearchSpace
from nas_mnist.searching.settings import TUNERS
from nas_mnist.searching.trial_training import TrialOutcome, TrialPlan, TrialRun, train_trial
from nas_mnist.study.memory import record_parent_params, settings_record
from nas_mnist.tracking.tracker import StudyRuns, Tracker

logger = logging.getLogger(__name__)

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
        """``hp.Choice`` over ``choices``."""
        return self.hp.Choice(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        """``hp.Int`` from ``low`` to ``high`` (inclusive), linear or log sampling."""
        # KerasTuner's step is a factor with log sampling (it must exceed 1): Optuna's log int
        # ranges have step 1, i.e. every integer, which is KerasTuner's step=None.
        if log:
            return self.hp.Int(name, low, high, step=None, sampling="log")
        return self.hp.Int(name, low, high, step=step, sampling="linear")

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> float:
        """``hp.Float`` from ``low`` to ``high``, linear or log sampling."""
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
        seconds: wall-clock seconds of the trial up to its test evaluation (MLflow uploads
            after it are left out).
        reason: why it did not complete.
        finished_at: ``time.perf_counter()`` when the record was made.
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
        timeout: seconds from the tuner's creation after which no trial starts (the running
            one finishes), as Optuna's ``timeout``; None: none.
        max_params: specs with more parameters end as pruned ("too_large: ...") before their
            model is built, as in the Optuna engine (``--max-params``); None: no limit.
        max_mflops: specs of more forward MFLOPs per image end as pruned ("too_costly: ...")
            the same way (``--max-mflops``); None: no limit.
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
    timeout: float | None = None
    max_params: int | None = None
    max_mflops: int | None = None


@dataclass
class RunningTrial:
    """The KerasTuner trial being run: its number, start (``time.perf_counter()``), MLflow run
    (None without tracking) and, once trained, its outcome."""

    number: int
    started: float = field(default_factory=time.perf_counter)
    run: TrialRun | None = None
    outcome: TrialOutcome | None = None


class SpaceHyperModel(kt.HyperModel):
    """Builds the spec that the search space suggests for KerasTuner's hyperparameters and trains
    it with the trial body every engine shares (``train_trial``).

    The tuner sets ``running`` before each trial; ``spec`` is the spec that ``build`` made last
    (the one ``fit`` trains).

    Args:
        space: the search space.
        data: the splits.
        config: the tuner's epochs and seed.
        options: input pipeline settings.
    """

    def __init__(self, space: SearchSpace, data: DataSplits, config: TunerConfig,
                 options: TrainingOptions) -> None:
        super().__init__()
        self.space, self.data, self.config, self.options = space, data, config, options
        self.spec: ArchitectureSpec | None = None
        self.running: RunningTrial | None = None

    def build(self, hp: Any) -> keras.Model:
        """The compiled model of the spec that ``space`` suggests for ``hp``.

        Raises:
            keras_tuner.errors.FailedTrialError: an impossible architecture
                ("invalid_architecture: ..."), or a spec over ``config.max_params``
                ("too_large: ...") or ``config.max_mflops`` ("too_costly: ..."), checked on the
                spec, before a model is built.
        """
        from nas_mnist.model.builder import build_model, compile_model
        from nas_mnist.model.training import learning_rate_for

        try:
            spec = self.space.suggest(HyperParametersTrial(hp))
        except SpecError as exc:
            raise kt.errors.FailedTrialError(f"invalid_architecture: {exc}") from None
        over = limit_reason(spec, self.config.max_params, self.config.max_mflops)
        if over:
            raise kt.errors.FailedTrialError(over)
        self.spec = spec
        steps = math.ceil(self.data.num_train / spec.batch_size)
        return compile_model(build_model(spec), spec,
                             steps_per_execution=self.options.steps_per_execution,
                             learning_rate=learning_rate_for(spec, self.config.epochs, steps))

    def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        """Train ``model`` as the running trial with KerasTuner's ``epochs``, ``initial_epoch``
        and ``callbacks``; log it to the trial's run. Returns the fit's ``keras.callbacks.History``
        (``model.history``), from which KerasTuner takes the best epoch's val_accuracy."""
        running, spec = self.running, self.spec
        if running.run is not None:
            running.run.tracker.log_trial_spec(running.run.run_id, spec, hp.values, running.number)
        plan = TrialPlan(
            epochs=int(kwargs.get("epochs", self.config.epochs)),
            initial_epoch=int(kwargs.get("initial_epoch", 0)),
            seed=self.config.seed + running.number, options=self.options,
            log_model=False, title=f"trial-{running.number:04d}",
        )
        running.outcome = train_trial(spec, self.data, plan, running.run,
                                      callbacks=kwargs.get("callbacks", []), model=model,
                                      started=running.started)
        if running.run is not None:
            running.run.tracker.log_metrics(running.run.run_id, {
                "epochs_trained": running.outcome.epochs_trained,
                "initial_epoch": plan.initial_epoch})
        return model.history


class TrialTracking:
    """What nas-mnist adds to a KerasTuner tuner (a mixin, listed before the tuner class): each
    trial gets a seed, an MLflow run closed with its state and a ``TrialRecord`` in ``records``,
    and the tuner starts no trial once ``config.max_epochs_total`` epochs were trained or
    ``config.timeout`` seconds have passed.

    A trial that fails (an impossible architecture, a NaN loss, ...) is recorded, then returns
    the worst objective (-inf) instead of raising, and ``on_trial_end`` marks it FAILED before
    the oracle scores it: KerasTuner prints the traceback of every exception a trial raises,
    while an impossible architecture is an expected outcome, recorded with its reason. FAILED
    trials count towards ``max_consecutive_failed_trials`` and are left out of the oracle's
    choices, as raised ones were.

    Args:
        config: the tuner's settings.
        runs: where the trials' MLflow runs go (no MLflow logging when None).
        **kwargs: the KerasTuner tuner's arguments.
    """

    def __init__(self, *, config: TunerConfig, runs: StudyRuns | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.runs = runs
        self.records: list[TrialRecord] = []
        self._failures: dict[str, str] = {}
        self._started = time.monotonic()  # for config.timeout

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        """Run KerasTuner's trial with a fresh Keras state, the trial's seed and an MLflow run;
        record how it ended. Returns KerasTuner's results, or -inf if it failed."""
        from nas_mnist.model.training import release_memory

        release_memory()
        running = RunningTrial(int(trial.trial_id))
        keras.utils.set_random_seed(self.config.seed + running.number)
        self.hypermodel.running = running
        try:
            running.run = self._start_run(running.number)
            results = super().run_trial(trial, *args, **kwargs)
        except kt.errors.FatalError as exc:  # KerasTuner stops the search
            self._end(running, "failed", f"{type(exc).__name__}: {exc}")
            raise
        except kt.errors.FailedTrialError as exc:
            return self._fail(trial, running, "pruned", str(exc))
        except Exception as exc:
            return self._fail(trial, running, "failed", f"{type(exc).__name__}: {exc}")
        outcome = running.outcome
        phases = outcome.phase_seconds
        self._end(running, "complete", "", TrialRecord(
            number=running.number, state="complete", epochs_trained=outcome.epochs_trained,
            val_accuracy=outcome.val_accuracy, test_accuracy=outcome.test_accuracy,
            params=self.hypermodel.spec.num_params,
            # up to the test evaluation: the MLflow artifacts' upload is not the trial's
            seconds=phases["total"] - phases.get("artifacts", 0.0)))
        return results

    def on_trial_end(self, trial: Any) -> None:
        """Mark a trial that ``run_trial`` recorded as failed FAILED, then end it as usual."""
        reason = self._failures.pop(trial.trial_id, None)
        if reason is not None:
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = reason
        super().on_trial_end(trial)

    def _start_run(self, number: int) -> TrialRun | None:
        """The trial's MLflow run, tagged with the engine and tuner (None without tracking)."""
        if self.runs is None:
            return None
        run_id = self.runs.start_trial_run(
            number, self.config.project_name, run_name=f"trial-{number:04d}",
            tags={"engine": "keras-tuner", "tuner": self.config.name})
        return TrialRun(self.runs.tracker, run_id)

    def _fail(self, trial: Any, running: RunningTrial, state: str, reason: str) -> dict:
        """Record a failed trial; the objective KerasTuner gets instead of the error (-inf: NaN
        would make KerasTuner's metrics warn "All-NaN slice")."""
        self._end(running, state, reason)
        self._failures[trial.trial_id] = reason
        return {self.oracle.objective.name: -math.inf}

    def _end(self, running: RunningTrial, state: str, reason: str,
             record: TrialRecord | None = None) -> None:
        """Keep the trial's record, stop the tuner once the epoch budget is spent, close the
        trial's run with its state."""
        self.records.append(record or TrialRecord(
            number=running.number, state=state, reason=reason,
            seconds=time.perf_counter() - running.started))
        spent = sum(r.epochs_trained for r in self.records)
        timed_out = (self.config.timeout is not None
                     and time.monotonic() - self._started >= self.config.timeout)
        if timed_out or (self.config.max_epochs_total is not None
                         and spent >= self.config.max_epochs_total):
            self.oracle.max_trials = len(self.oracle.trials)  # the next trial is STOPPED
        if running.run is not None:
            running.run.tracker.end_trial_run(running.run.run_id, state, reason or None)
            running.run = None


class Hyperband(TrialTracking, kt.Hyperband):
    """KerasTuner's Hyperband with nas-mnist's trial tracking."""


class BayesianOptimization(TrialTracking, kt.BayesianOptimization):
    """KerasTuner's Bayesian optimization with nas-mnist's trial tracking."""


class RandomSearch(TrialTracking, kt.RandomSearch):
    """KerasTuner's random search with nas-mnist's trial tracking."""


TUNER_CLASSES = {"hyperband": Hyperband, "bayesian": BayesianOptimization,
                 "random": RandomSearch}
"""The tuner class of each name in ``nas_mnist.searching.settings.TUNERS``."""


def make_tuner(
    config: TunerConfig,
    space: SearchSpace,
    data: DataSplits,
    runs: StudyRuns | None = None,
    options: TrainingOptions | None = None,
) -> TrialTracking:
    """A KerasTuner tuner over ``space`` whose trials train with nas-mnist's trial body.

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
    if config.name not in TUNER_CLASSES:
        raise ValueError(f"unknown tuner {config.name!r}; choose from {', '.join(TUNERS)}")
    common = {
        "config": config,
        "runs": runs,
        "hypermodel": SpaceHyperModel(space, data, config, options or TrainingOptions()),
        "objective": kt.Objective("val_accuracy", direction="max"),
        "seed": config.seed,
        "directory": str(config.directory),
        "project_name": config.project_name,
        "overwrite": config.overwrite,
        "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILED_TRIALS,
    }
    if config.name != "hyperband":
        return TUNER_CLASSES[config.name](max_trials=config.max_trials, **common)
    tuner = Hyperband(max_epochs=config.epochs, factor=HYPERBAND_FACTOR,
                      hyperband_iterations=config.hyperband_iterations, **common)
    tuner.oracle.max_trials = config.max_trials  # Hyperband's own budget may be larger
    return tuner


def start_parent_run(tracker: Tracker, study_name: str, tuner_name: str) -> tuple[str, str]:
    """(experiment_id, parent_run_id): the experiment named after the study and a new parent run
    tagged like an Optuna study's (plus ``engine`` and ``tuner``)."""
    return tracker.create_parent_run(study_name, {"engine": "keras-tuner", "tuner": tuner_name})


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
        one row per KerasTuner trial (``leaderboard``), best val_accuracy first.
    """
    from nas_mnist.model.training import freeze_long_lived_objects
    from nas_mnist.searching.result import SearchResult

    experiment_id, parent_run_id = start_parent_run(tracker, settings.study_name, settings.tuner)
    record_parent_params(tracker, parent_run_id,
                         settings_record(settings, data_fingerprint(settings.data)))
    # Hyperband repeats its brackets until --trials or --timeout ends the search: with one
    # iteration, 2 epochs made a bracket of 2 trials and the search ended after them.
    config = TunerConfig(settings.tuner, settings.epochs, settings.trials, settings.seed,
                         settings.tuner_dir, settings.study_name,
                         hyperband_iterations=max(1, settings.trials), timeout=settings.timeout,
                         max_params=settings.max_params, max_mflops=settings.max_mflops)
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
    return SearchResult(study=None, leaderboard=leaderboard(tuner.records), best_trial=None,
                        parent_run_id=parent_run_id, experiment_id=experiment_id,
                        tracking_uri=tracker.tracking_uri, settings=settings)


def leaderboard(records: list[TrialRecord]) -> Any:
    """A ``pandas.DataFrame`` with one row per record: trial, state, val_accuracy,
    test_accuracy, params, epochs_trained, train_seconds (the trial's wall-clock seconds) and
    reason, best val_accuracy first."""
    import pandas as pd

    frame = pd.DataFrame([dataclasses.asdict(r) for r in records], columns=[
        f.name for f in dataclasses.fields(TrialRecord)]).drop(columns="finished_at")
    frame = frame.rename(columns={"number": "trial", "seconds": "train_seconds"})
    frame = frame.sort_values("val_accuracy", ascending=False, na_position="last")
    return frame.reset_index(drop=True)
