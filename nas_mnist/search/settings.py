"""The settings of one search, as one validated, frozen object.

``SearchSettings`` is what ``nas_mnist.search(...)`` takes (as keyword arguments or an instance)
and what ``nas-mnist search`` builds from its flags: the field names are the flags' names with
underscores, the defaults are the flags' defaults, and every check raises ``InputError`` with
the flag's name in the message, so the Python API and the CLI reject the same input with the same
words. Nothing here imports Optuna or TensorFlow (``nas-mnist --help`` stays fast).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas_mnist.search.validation import validate_seed, validate_study_name
from nas_mnist.errors import InputError
from nas_mnist.study.defaults import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    DEFAULT_STORAGE,
    DEFAULT_STUDY_NAME,
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
)

ENGINES = ("optuna", "keras-tuner")
TUNERS = ("hyperband", "bayesian", "random")


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"val_accuracy,params"`` (or ``["val_accuracy", "params"]``) -> ("val_accuracy", "params").

    Raises:
        ValueError: an unknown name, a repeated name, or val_accuracy not first.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(n.strip() for n in parts if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise ValueError(f"unknown objective {', '.join(unknown) or repr(text)}; choose from "
                         f"{', '.join(OBJECTIVES)}, e.g. val_accuracy,params")
    if names[0] != "val_accuracy" or len(set(names)) != len(names):
        raise ValueError(f"{text!r}: val_accuracy must come first and each name once, e.g. "
                         "val_accuracy or val_accuracy,params")
    return names


DEFAULT_TRIALS_PER_WORKER = 4
"""Trials a ``--jobs`` worker process runs before it is replaced: a fresh process costs a few
seconds (start-up, TensorFlow import, data), and a few small trials add a few MiB of memory each
(``docs/benchmarks.md``)."""


def parse_gpus(value: str | Sequence[str | int] | None) -> tuple[str, ...]:
    """``"0,1"`` (or ``[0, 1]``) -> ("0", "1"); ``None`` or "" -> ().

    Raises:
        ValueError: an id that is not a non-negative integer.
    """
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    ids = tuple(str(p).strip() for p in parts if str(p).strip())
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise ValueError(f"expected GPU ids such as 0,1 (as nvidia-smi numbers them), got "
                         f"{', '.join(bad)}")
    return ids


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search needs to know; validated when made.

    Attributes:
        trials: finished (complete or pruned) trials the study should hold in total; a re-run
            resumes up to this number.
        epochs: training epochs per trial.
        batch_size: images per training step for every trial; ``None``: each spec's own.
        seed: sampler and training seed (trial ``n`` trains with ``seed + n``).
        timeout: seconds after which no new trial starts; ``None``: no limit.
        space: a search-space file, or the name of a shipped space; ``None``: ``default``.
        storage: Optuna storage URL (SQLite for one worker, PostgreSQL for several).
        study_name: the study; an existing one is resumed.
        tracking_uri: MLflow tracking URI; ``None``: ``$MLFLOW_TRACKING_URI``, else MLflow's
            default ``sqlite:///mlflow.db``.
        max_params: specs with more parameters are pruned before training.
        baselines: documented baselines to seed, within ``trials``: "auto" (those inside the
            search space, strongest reported first, at most half of ``trials``), "all",
            "none" or "NAME,NAME" (``nas_mnist.search.baseline_trials``).
        sampler: Optuna sampler, one of ``SAMPLERS``.
        pruner: Optuna pruner, one of ``PRUNERS``; ``None``: median, or none with several
            objectives (Optuna cannot prune those).
        objective: "val_accuracy", or val_accuracy with params and/or latency
            ("val_accuracy,params") for a Pareto front; a string or a sequence of names.
        engine: "optuna", or "keras-tuner" to run the same space through KerasTuner.
        tuner: the KerasTuner tuner with ``engine="keras-tuner"``.
        tuner_dir: folder of KerasTuner's state with ``engine="keras-tuner"``.
        mixed_precision: train in float16 (GPU) / bfloat16 (CPU).
        progress: draw progress bars (rich: a terminal or Jupyter).
        data: MNIST as an .npz with Keras' keys or a folder of the four IDX files; ``None``:
            ``$NAS_MNIST_DATA``, else Keras' download.
        max_train_samples: train on a stratified subset of this many training images.
        jobs: trials that train at the same time on this machine. 1: in this process (as
            before); N > 1: in N worker processes that this process starts, replaces and
            supervises (``nas_mnist.search.workers``); needs a journal or PostgreSQL storage.
        trials_per_worker: with ``jobs`` > 1, trials a worker process runs before it exits and
            is replaced (what bounds the state one process carries).
        gpus: with ``jobs`` > 1, GPU ids ("0,1" or a sequence) that workers are assigned to,
            round-robin by worker slot (``CUDA_VISIBLE_DEVICES``); several workers may share one;
            ``None``: every worker sees what this process sees.
        worker_threads: with ``jobs`` > 1, TensorFlow intra- and inter-op threads per worker;
            ``None``: TensorFlow's default (all cores).

    Raises:
        InputError: a value out of range or of the wrong type; the message names the flag.
    """

    trials: int = 100
    epochs: int = 15
    batch_size: int | None = None
    seed: int = 0
    timeout: float | None = None
    space: str | os.PathLike | None = None
    storage: str = DEFAULT_STORAGE
    study_name: str = DEFAULT_STUDY_NAME
    tracking_uri: str | None = None
    max_params: int | None = None
    baselines: str = "auto"
    sampler: str = DEFAULT_SAMPLER
    pruner: str | None = None
    objective: str | Sequence[str] = "val_accuracy"
    engine: str = "optuna"
    tuner: str = "hyperband"
    tuner_dir: str | os.PathLike = "keras_tuner"
    mixed_precision: bool = False
    progress: bool = True
    data: str | os.PathLike | None = None
    max_train_samples: int | None = None
    jobs: int = 1
    trials_per_worker: int = DEFAULT_TRIALS_PER_WORKER
    gpus: str | Sequence[str | int] | None = None
    worker_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("trials", "epochs", "jobs", "trials_per_worker"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("batch_size", "max_params", "max_train_samples", "worker_threads"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=None)
        validate_seed(self.seed)
        validate_study_name(self.study_name)
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float) and self.timeout > 0
        ):
            raise InputError(f"--timeout: expected a positive number of seconds, got "
                             f"{self.timeout!r}")
        for name, choices in (("sampler", SAMPLERS), ("engine", ENGINES), ("tuner", TUNERS)):
            if getattr(self, name) not in choices:
                raise InputError(f"{_flag(name)}: unknown {name} {getattr(self, name)!r}; "
                                 f"choose from {', '.join(choices)}")
        if self.pruner is not None and self.pruner not in PRUNERS:
            raise InputError(f"--pruner: unknown pruner {self.pruner!r}; choose from "
                             f"{', '.join(PRUNERS)}")
        try:
            parse_gpus(self.gpus)
        except ValueError as exc:
            raise InputError(f"--gpus: {exc}") from None
        if self.jobs > 1 and self.engine != "optuna":
            raise InputError("--jobs: several trials at once need --engine optuna")
        try:
            objectives = parse_objectives(self.objective)
        except ValueError as exc:
            raise InputError(f"--objective: {exc}") from None
        if len(objectives) > 1 and self.resolved_pruner != "none":
            raise InputError(f"--pruner {self.pruner}: Optuna cannot prune trials of a "
                             "multi-objective study; drop --pruner or pass --pruner none with "
                             f"--objective {','.join(objectives)}")
        if self.engine == "keras-tuner" and (
            len(objectives) > 1 or self.sampler != DEFAULT_SAMPLER or self.pruner
        ):
            raise InputError("--engine keras-tuner takes --tuner, not --sampler, --pruner or "
                             "several objectives (those are Optuna's)")

    @property
    def objectives(self) -> tuple[str, ...]:
        """The objective names, val_accuracy first."""
        return parse_objectives(self.objective)

    @property
    def gpu_ids(self) -> tuple[str, ...]:
        """``gpus`` as a tuple of id strings (empty: not set)."""
        return parse_gpus(self.gpus)

    @property
    def resolved_pruner(self) -> str:
        """``pruner``, or its default: median for one objective, none for several."""
        if self.pruner is not None:
            return self.pruner
        return DEFAULT_PRUNER if len(parse_objectives(self.objective)) == 1 else "none"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SearchSettings:
        """Settings from keyword arguments, refusing unknown names.

        Raises:
            InputError: a name that is not a field (the message lists the valid ones), or a
                bad value.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise InputError(f"unknown search setting(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(fields))}")
        return cls(**values)


def _check_int(name: str, value: Any, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{_flag(name)}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{_flag(name)}: expected a positive integer (>= {minimum}), got "
                         f"{value}")
