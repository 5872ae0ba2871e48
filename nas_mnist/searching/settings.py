"""The settings of one search, as one frozen object, and every check of them.

``SearchSettings`` is what ``nas_mnist.search(...)`` takes (as keyword arguments or an instance)
and what ``nas-mnist search`` builds from its flags: the field names are the flags' names with
underscores, the defaults are the flags' defaults, and every check raises ``InputError`` with
the flag's name in the message, so the Python API and the CLI reject the same input with the same
words. The checks all live here: each value's when the settings are made
(``SearchSettings.__post_init__``), and those that read files or need Optuna and MLflow in
``validate_search_settings``, which a search calls before it creates anything. The per-value
functions they use are in ``validation``. Importing this module imports neither Optuna nor
TensorFlow (``nas-mnist --help`` stays fast).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas_mnist.errors import InputError
from nas_mnist.searching.validation import validate_seed, validate_study_name, validate_tuner_dir
from nas_mnist.study.defaults import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    DEFAULT_STORAGE,
    DEFAULT_STUDY_NAME,
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    check_pruner,
)

if TYPE_CHECKING:
    from nas_mnist.searching.baseline_trials import SeedingPlan

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


FINAL_TOP_K = 3
"""Specs that the final stage of a search on all training images retrains by default (as
``nas-mnist retrain --top-k``'s default); a quick look (``--max-train-samples``) retrains none."""
DEFAULT_TRIALS_PER_WORKER = 4
"""Trials a ``--jobs`` worker process runs before it is replaced: a fresh process costs a few
seconds (start-up, TensorFlow import, data), and a few small trials add a few MiB of memory each
(``docs/benchmarks.md``)."""


def parse_gpus(value: str | int | Sequence[str | int] | None) -> tuple[str, ...]:
    """``"0,1"`` (or ``[0, 1]``) -> ("0", "1"); ``3`` -> ("3",); ``None`` or "" -> ().

    Raises:
        ValueError: an id that is not a non-negative integer.
    """
    if value is None:
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    parts = value.split(",") if isinstance(value, str) else list(value)
    ids = tuple(str(p).strip() for p in parts if str(p).strip())
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise ValueError(f"expected GPU ids such as 0,1 (as nvidia-smi numbers them), got "
                         f"{', '.join(bad)}")
    return ids


def check_gpu_ids(ids: Sequence[str], visible: Sequence[str], backend: str) -> None:
    """Refuse ``--gpus`` ids that name no GPU the Keras backend sees on this machine.

    A worker is given its id through ``CUDA_VISIBLE_DEVICES``: an id without a GPU behind it
    would leave the worker on the CPU, silently. Ids count from 0, in the backend's order.

    Args:
        ids: ``parse_gpus``' ids (empty: nothing to check).
        visible: the GPUs the backend sees in this process (``model.devices.visible_gpus``).
        backend: the Keras backend's name, for the message.

    Raises:
        InputError: no GPU visible at all, or an id at or past their number; one line naming
            the ids, the backend and ``CUDA_VISIBLE_DEVICES`` when it is set.
    """
    if not ids:
        return
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
    flag = f"--gpus {','.join(ids)}"
    if not visible:
        raise InputError(f"{flag}: this machine has no GPU visible to {backend}{where}; drop "
                         "--gpus to train on the CPU")
    missing = sorted({i for i in ids if int(i) >= len(visible)}, key=int)
    if missing:
        raise InputError(f"{flag}: no GPU {', '.join(missing)} is visible to {backend}, which "
                         f"sees {len(visible)} GPU(s), ids 0 to {len(visible) - 1}{where}; "
                         "pass ids among them")


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
        time_budget: wall-clock budget of the whole job, final stage included: seconds, or text
            such as "2h", "45m", "1h30m" (``searching.time_budget``); ``None``: none.
        space: a search-space file, or the name of a shipped space; ``None``: ``default``.
        storage: Optuna storage URL (SQLite for one worker, PostgreSQL for several).
        study_name: the study; an existing one is resumed.
        tracking_uri: MLflow tracking URI; ``None``: ``$MLFLOW_TRACKING_URI``, else MLflow's
            default ``sqlite:///mlflow.db``.
        max_params: specs with more parameters are pruned before training.
        max_mflops: specs of more forward MFLOPs per image (``model.cost.forward_flops``) are
            pruned before training: on a CPU a trial's time follows its FLOPs.
        baselines: documented baselines to seed, within ``trials``: "auto" (those inside the
            search space, strong tiers first and the fewest FLOPs first within a tier,
            ``seeding_order``; at most half of ``trials``), "all", "none" or "NAME,NAME"
            (``nas_mnist.searching.baseline_trials``).
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
            supervises (``nas_mnist.searching.workers``); needs a journal or PostgreSQL storage.
        trials_per_worker: with ``jobs`` > 1, trials a worker process runs before it exits and
            is replaced (what bounds the state one process carries).
        gpus: with ``jobs`` > 1, GPU ids ("0,1" or a sequence) that workers are assigned to,
            round-robin by worker slot (``CUDA_VISIBLE_DEVICES``); several workers may share one;
            ``None``: every worker sees what this process sees.
        worker_threads: with ``jobs`` > 1, TensorFlow intra- and inter-op threads per worker;
            ``None``: TensorFlow's default (all cores).
        allow_mixed_fidelity: resume a study whose finished trials trained with other
            ``epochs`` or ``max_train_samples`` (``check_resumed_fidelity`` refuses otherwise).
        allow_space_change: resume a study whose trials were sampled from another search space
            (``check_resumed_space`` refuses otherwise).
        final_top_k: the final stage once the trials are done: retrain the ``final_top_k`` best
            distinct specs (and the best baseline) at full budget and register the champion
            (``nas_mnist.retrain``). ``None``: 3 for a search on all training images, 0 for a
            quick look with ``max_train_samples`` (which then logs the ``retrain`` command),
            for several objectives and for the KerasTuner engine.
        final_epochs: epochs per final model (``None``: the recipe's default,
            ``nas_mnist.searching.final.recipe.DEFAULT_FINAL_EPOCHS``).

    Raises:
        InputError: a value out of range or of the wrong type; the message names the flag.
    """

    trials: int = 100
    epochs: int = 15
    batch_size: int | None = None
    seed: int = 0
    timeout: float | None = None
    time_budget: str | float | None = None
    space: str | os.PathLike | None = None
    storage: str = DEFAULT_STORAGE
    study_name: str = DEFAULT_STUDY_NAME
    tracking_uri: str | None = None
    max_params: int | None = None
    max_mflops: int | None = None
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
    allow_mixed_fidelity: bool = False
    allow_space_change: bool = False
    final_top_k: int | None = None
    final_epochs: int | None = None

    def __post_init__(self) -> None:
        _check_numbers(self)
        _check_choices(self)
        _check_combinations(self)

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

    @property
    def resolved_final_top_k(self) -> int:
        """``final_top_k``, or its default: ``FINAL_TOP_K`` for a single-objective Optuna search
        on all training images, else 0 (a quick look, several objectives, KerasTuner)."""
        if self.final_top_k is not None:
            return self.final_top_k
        quick = self.max_train_samples is not None
        single = len(parse_objectives(self.objective)) == 1
        return FINAL_TOP_K if self.engine == "optuna" and single and not quick else 0

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


def _check_numbers(settings: SearchSettings) -> None:
    """The integer and number fields, the seed and the study name."""
    for name in ("trials", "epochs", "jobs", "trials_per_worker"):
        _check_int(name, getattr(settings, name), minimum=1)
    for name in ("batch_size", "max_params", "max_mflops", "max_train_samples",
                 "worker_threads", "final_epochs"):
        if getattr(settings, name) is not None:
            _check_int(name, getattr(settings, name), minimum=1)
    if settings.final_top_k is not None:
        _check_int("final_top_k", settings.final_top_k, minimum=0)
    _check_int("seed", settings.seed, minimum=None)
    validate_seed(settings.seed)
    validate_study_name(settings.study_name)
    if settings.timeout is not None and not (
        isinstance(settings.timeout, int | float) and settings.timeout > 0
    ):
        raise InputError(f"--timeout: expected a positive number of seconds, got "
                         f"{settings.timeout!r}")


def _check_choices(settings: SearchSettings) -> None:
    """The fields with a fixed set of values, and the GPU ids."""
    for name, choices in (("sampler", SAMPLERS), ("engine", ENGINES), ("tuner", TUNERS)):
        if getattr(settings, name) not in choices:
            raise InputError(f"{_flag(name)}: unknown {name} {getattr(settings, name)!r}; "
                             f"choose from {', '.join(choices)}")
    if settings.pruner is not None and settings.pruner not in PRUNERS:
        raise InputError(f"--pruner: unknown pruner {settings.pruner!r}; choose from "
                         f"{', '.join(PRUNERS)}")
    try:
        parse_gpus(settings.gpus)
    except ValueError as exc:
        raise InputError(f"--gpus: {exc}") from None


def _check_combinations(settings: SearchSettings) -> None:
    """The objectives, and the settings that only work together (or not at all)."""
    if settings.jobs > 1 and settings.engine != "optuna":
        raise InputError("--jobs: several trials at once need --engine optuna")
    try:
        objectives = parse_objectives(settings.objective)
    except ValueError as exc:
        raise InputError(f"--objective: {exc}") from None
    try:
        check_pruner(settings.resolved_pruner, objectives)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if settings.time_budget is not None:
        from nas_mnist.searching.time_budget import parse_duration

        try:
            parse_duration(settings.time_budget)
        except ValueError as exc:
            raise InputError(f"--time-budget: {exc}") from None
        if settings.engine != "optuna":
            raise InputError("--time-budget needs --engine optuna (KerasTuner's Hyperband plans "
                             "its own brackets); use --timeout with --engine keras-tuner")
    if settings.final_top_k and (len(objectives) > 1 or settings.engine != "optuna"):
        raise InputError("--final-top-k: the final stage retrains the best specs by "
                         "val_accuracy of a single-objective Optuna search; drop it, or run "
                         "nas-mnist retrain on such a study")
    if settings.engine == "keras-tuner" and (
        len(objectives) > 1 or settings.sampler != DEFAULT_SAMPLER or settings.pruner
    ):
        raise InputError("--engine keras-tuner takes --tuner, not --sampler, --pruner or "
                         "several objectives (those are Optuna's)")


def validate_search_settings(settings: SearchSettings) -> SeedingPlan:
    """Check a search's settings against the machine before anything is created: the one entry
    point that ``nas_mnist.search`` (hence ``nas-mnist search``) calls first.

    Each value was checked when ``settings`` was made (``SearchSettings``); this adds the checks
    that read files or need Optuna and MLflow: the storage (Optuna engine), the tracking URI,
    the tuner folder (KerasTuner engine), ``--jobs`` on the storage, ``--gpus`` on this
    machine's GPUs (imports the Keras backend, only when ``--gpus`` is given), ``--baselines``
    and ``--sampler gp``. Nothing is created.

    Returns:
        The baselines' ``SeedingPlan`` (``search.baseline_trials``).

    Raises:
        StorageError: a storage that cannot be used (``StorageURL.parse``).
        TrackingError: a tracking URI that cannot be used (``tracker.validate_tracking_uri``).
        SettingsError: a tuner folder that cannot be made.
        InputError: ``--jobs`` above 1 on SQLite, ``--gpus`` ids without a GPU behind them
            (``check_gpu_ids``), unknown ``--baselines``, or ``--sampler gp`` without PyTorch.
    """
    from nas_mnist.searching.baseline_trials import seeding_plan
    from nas_mnist.study.storage_url import StorageURL
    from nas_mnist.tracking.tracker import validate_tracking_uri

    storage = StorageURL.parse(settings.storage) if settings.engine == "optuna" else None
    validate_tracking_uri(settings.tracking_uri)
    if settings.engine == "keras-tuner" and settings.tuner_dir is not None:
        validate_tuner_dir(settings.tuner_dir)
    if settings.jobs > 1 and storage is not None and storage.one_writer:
        raise InputError(
            f"--jobs {settings.jobs}: a SQLite storage ({storage}) takes one writing "
            "process at a time; run several trials at once on a journal file (--storage "
            "journal:///nas_mnist.log) or on PostgreSQL (--storage "
            "postgresql://USER:PASSWORD@HOST/DB)")
    if settings.gpu_ids:
        from nas_mnist.model.devices import keras_backend, visible_gpus

        check_gpu_ids(settings.gpu_ids, visible_gpus(), keras_backend())
    try:
        baselines = seeding_plan(settings.baselines)
    except ValueError as exc:
        raise InputError(f"--baselines: {exc}") from None
    if settings.sampler == "gp":
        from nas_mnist.study.opening import make_sampler

        try:
            make_sampler(0, "gp")
        except ValueError as exc:
            raise InputError(f"--sampler: {exc}") from None
    return baselines


def _fidelity(epochs: Any, max_train_samples: Any) -> str:
    """``--epochs E --max-train-samples N`` as a search's flags say it."""
    images = ("all training images" if max_train_samples is None
              else f"--max-train-samples {max_train_samples}")
    return f"--epochs {epochs}, {images}"


def check_resumed_fidelity(settings: SearchSettings, study: Any) -> str | None:
    """Refuse to resume a study at another fidelity than its finished trials trained at.

    A trial's val_accuracy depends on its epochs and training images: trials of mixed
    fidelities are not comparable, yet the leaderboard, the sampler and the pruner would rank
    them together. The fidelity of the study's trials is the one its latest search recorded
    (``study.memory.remember_search``, the ``search_settings`` study attribute); a study without
    finished trials, or without that record (made before it existed), is not checked.

    Args:
        settings: the search about to resume the study.
        study: the opened ``optuna.Study``, before this search records its settings.

    Returns:
        None when the fidelities agree (or nothing is recorded); with
        ``settings.allow_mixed_fidelity``, the line to log as a warning.

    Raises:
        InputError: the fidelities differ and ``allow_mixed_fidelity`` is off; one line naming
            both fidelities and ``--allow-mixed-fidelity``. Nothing of this search is in the
            study yet.
    """
    from nas_mnist.study.trial_counts import count_finished
    from nas_mnist.trial_attributes import SETTINGS_ATTR

    recorded = study.user_attrs.get(SETTINGS_ATTR) or {}
    if "epochs" not in recorded or not count_finished(study):
        return None
    before = (recorded["epochs"], recorded.get("max_train_samples"))
    now = (settings.epochs, settings.max_train_samples)
    if before == now:
        return None
    line = (f"study {settings.study_name!r} holds {count_finished(study)} finished trial(s) "
            f"trained with {_fidelity(*before)}, and this search asks for {_fidelity(*now)}: "
            "trials of mixed fidelities are not comparable")
    if settings.allow_mixed_fidelity:
        return f"{line} (--allow-mixed-fidelity: going on)"
    raise InputError(f"{line}; pass the same --epochs and --max-train-samples, a new "
                     "--study-name, or --allow-mixed-fidelity to go on")


def check_resumed_space(settings: SearchSettings, study: Any) -> str | None:
    """Refuse to resume a study with another search space than its trials were sampled from.

    Optuna cannot sample a parameter whose choices changed into a study that holds it with the
    old ones: every trial would fail with "CategoricalDistribution does not support dynamic
    value space". The study's space is the content hash its latest search recorded
    (``study.memory.remember_search``, the ``space_sha256`` study attribute), so the same space
    given by name or by path, or reformatted, is the same. A study without trials, or without
    that record (made before it existed), is not checked.

    Args:
        settings: the search about to resume the study.
        study: the opened ``optuna.Study``, before this search records its settings.

    Returns:
        None when the spaces agree (or nothing is recorded); with
        ``settings.allow_space_change``, the line to log as a warning.

    Raises:
        InputError: the spaces differ and ``allow_space_change`` is off; one line naming the
            study, both spaces and ``--allow-space-change``. Nothing of this search is in the
            study yet.
        SearchSpaceError: the space file cannot be read.
    """
    from nas_mnist.study.memory import space_sha256
    from nas_mnist.trial_attributes import SETTINGS_ATTR, SPACE_SHA256_ATTR

    recorded = study.user_attrs.get(SPACE_SHA256_ATTR)
    if recorded is None or not study.get_trials(deepcopy=False):
        return None
    now = space_sha256(settings.space)
    if now == recorded:
        return None
    before = (study.user_attrs.get(SETTINGS_ATTR) or {}).get("space", "?")
    given = os.fspath(settings.space) if settings.space is not None else "default"
    line = (f"study {settings.study_name!r} was searched in the space {before} (SHA-256 "
            f"{recorded[:12]}...), and this search's --space {given} differs (SHA-256 "
            f"{now[:12]}...): Optuna cannot sample changed choices into the trials it holds")
    if settings.allow_space_change:
        return (f"{line} (--allow-space-change: going on; a trial that samples a parameter "
                "whose choices changed fails)")
    raise InputError(f"{line}; pass the space it was searched in, a new --study-name, or "
                     "--allow-space-change to go on")
