"""The Optuna study: storage URLs, sampler and pruner, and the study-wide trial budget."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas_mnist.sqlite_files import check_sqlite_file

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///nas_mnist.db"
DEFAULT_STUDY_NAME = "nas-mnist"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
"""States that count towards ``--trials``: a failed trial is retried, not counted."""

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "mysql")
HEARTBEAT_INTERVAL = 30
"""Seconds between a running trial's heartbeats on RDB storages (Optuna's heartbeat)."""
HEARTBEAT_GRACE_PERIOD = 90
"""Seconds without a heartbeat after which a RUNNING trial counts as dead and is failed."""

# Median pruner on per-epoch val_accuracy (Optuna's MedianPruner). The first 5 trials always run
# in full to give the median something to stand on (Optuna's default n_startup_trials).
PRUNER_STARTUP_TRIALS = 5


class StorageError(ValueError):
    """A ``--storage`` URL that nas-mnist cannot use; the message says what to pass instead."""


DRIVERS = {"postgresql": "psycopg2-binary (or pass postgresql+psycopg://... with psycopg)",
           "mysql": "PyMySQL and pass mysql+pymysql://..."}
"""What to install when a storage's database driver is missing."""


def validate_storage_url(url: str, must_exist: bool = False) -> str:
    """Check a storage URL before anything is created.

    Accepts SQLAlchemy URLs whose scheme is sqlite, postgresql or mysql (with an optional driver,
    e.g. ``postgresql+psycopg2://``) whose database driver is installed. For SQLite, see
    ``check_sqlite_file``.

    Args:
        url: the ``--storage`` URL.
        must_exist: for SQLite, the database file must exist (commands that read a study).

    Returns:
        ``url`` unchanged.

    Raises:
        StorageError: unknown scheme, unparsable URL, missing driver, or a SQLite file that
            cannot be used (``check_sqlite_file``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"cannot parse storage URL {url!r}; use sqlite:///FILE.db or "
            "postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    scheme = parsed.get_backend_name()
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"unknown storage scheme {scheme!r} in {url!r}; use sqlite:///FILE.db "
            "(one worker) or postgresql://USER:PASSWORD@HOST/DB (several workers)"
        )
    if scheme == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"{url!r} is an in-memory SQLite database, which is lost at exit; "
                "use sqlite:///FILE.db"
            )
        check_sqlite_file(database, f"--storage {url}", must_exist=must_exist, error=StorageError)
        return url
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as exc:
        raise StorageError(
            f"--storage {parsed.render_as_string(hide_password=True)}: the database driver for "
            f"{parsed.drivername} is not installed ({exc}); install {DRIVERS.get(scheme, 'it')}"
        ) from None
    return url


def make_storage(
    url: str,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker end as failed.

    A RUNNING trial whose worker sent no heartbeat for ``HEARTBEAT_GRACE_PERIOD`` seconds is
    failed by the next worker that starts a trial, which then calls ``on_stale_trial`` (see
    ``recovery.handle_dead_trial``: close its MLflow run, retry it once).
    """
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=HEARTBEAT_GRACE_PERIOD,
                    heartbeat_stale_trial_callback=on_stale_trial,
                )
        except SQLAlchemyError:
            # Workers started together on an empty database race to create its tables; the
            # loser finds them created a moment later.
            if attempt == 2:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("val_accuracy", "params", "latency")
"""Objective names for ``--objective``: val_accuracy (maximized) first, then optional secondary
objectives, minimized: params (parameter count) and latency (milliseconds per image)."""
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "median"
OBJECTIVE_ATTR = "objective"


def parse_objectives(text: str) -> tuple[str, ...]:
    """``"val_accuracy,params"`` -> ("val_accuracy", "params").

    Raises:
        ValueError: an unknown name, a repeated name, or val_accuracy not first.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise ValueError(f"unknown objective {', '.join(unknown) or repr(text)}; choose from "
                         f"{', '.join(OBJECTIVES)}, e.g. val_accuracy,params")
    if names[0] != "val_accuracy" or len(set(names)) != len(names):
        raise ValueError(f"{text!r}: val_accuracy must come first and each name once, e.g. "
                         "val_accuracy or val_accuracy,params")
    return names


def directions(objectives: Sequence[str]) -> list[str]:
    """Optuna directions: maximize val_accuracy, minimize params and latency."""
    return ["maximize" if n == "val_accuracy" else "minimize" for n in objectives]


def make_sampler(seed: int | None, name: str = DEFAULT_SAMPLER) -> optuna.samplers.BaseSampler:
    """Optuna's sampler ``name``, seeded.

    tpe: ``TPESampler`` (Optuna's default; handles several objectives too). random:
    ``RandomSampler``. gp: ``GPSampler`` (Gaussian process; needs PyTorch). nsga2:
    ``NSGAIISampler`` (genetic, meant for several objectives). ``docs/benchmarks.md`` compares
    them on this search space.

    Raises:
        ValueError: unknown name, or gp without PyTorch installed.
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("--sampler gp needs PyTorch: pip install torch (CPU wheels suffice), "
                             "or choose tpe") from None
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def make_pruner(name: str = DEFAULT_PRUNER, epochs: int = 15) -> optuna.pruners.BasePruner:
    """Optuna's pruner ``name`` on per-epoch val_accuracy.

    median: ``MedianPruner``; the first ``PRUNER_STARTUP_TRIALS`` trials always run in full.
    hyperband: ``HyperbandPruner`` from 1 to ``epochs`` epochs (reduction factor 3, Optuna's
    default). none: ``NopPruner``.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                           n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")


def open_study(
    storage_url: str,
    study_name: str,
    seed: int | None = None,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    *,
    sampler: str = DEFAULT_SAMPLER,
    pruner: str = DEFAULT_PRUNER,
    objectives: Sequence[str] = ("val_accuracy",),
    epochs: int = 15,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it if it exists.

    The study maximizes val_accuracy (fraction of the validation split classified correctly),
    and with several ``objectives`` also minimizes the others (a Pareto front; Optuna does not
    prune multi-objective trials, so ``pruner`` must then be "none"). The sampler's seed is
    ``seed`` plus the number of trials already in the study, so a resumed study does not replay
    the random start-up suggestions of its first run, and the same sequence of commands still
    gives the same sequence of trials.

    Returns:
        (study, created): ``created`` is True for exactly one caller, even when several workers
        start at once (the storage's unique study name decides).

    Raises:
        StorageError: the existing study was created with other objectives.
        ValueError: an unknown sampler or pruner, or a pruner with several objectives.
    """
    objectives = tuple(objectives)
    if len(objectives) > 1 and pruner != "none":
        raise ValueError(f"--pruner {pruner}: Optuna cannot prune trials of a multi-objective "
                         "study; pass --pruner none with --objective "
                         f"{','.join(objectives)}")
    storage = make_storage(storage_url, on_stale_trial)
    kwargs = {"storage": storage, "study_name": study_name,
              "sampler": make_sampler(seed, sampler),
              "pruner": make_pruner(pruner, epochs)}
    try:
        study = optuna.create_study(directions=directions(objectives), load_if_exists=False,
                                    **kwargs)
        study.set_user_attr(OBJECTIVE_ATTR, list(objectives))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        created = False
    # A study created a moment ago by another worker may not have its attribute yet.
    existing = study.user_attrs.get(OBJECTIVE_ATTR)
    if len(study.directions) != len(objectives) or (existing and tuple(existing) != objectives):
        named = ",".join(existing) if existing else f"{len(study.directions)} objective(s)"
        raise StorageError(
            f"study {study_name!r} optimizes {named}, not {','.join(objectives)}; pass the "
            "same --objective to resume it, or choose a new --study-name"
        )
    existing_trials = len(study.get_trials(deepcopy=False))
    if seed is not None and existing_trials:
        study.sampler = make_sampler(seed + existing_trials, sampler)
    return study, created


def val_accuracy_of(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's val_accuracy: its (first) objective value, else the ``val_accuracy`` user attr.

    Works for single- and multi-objective studies (``trial.value`` raises for the latter).
    """
    if trial.values:
        return float(trial.values[0])
    value = trial.user_attrs.get("val_accuracy")
    return None if value is None else float(value)


def study_objectives(study: optuna.Study) -> tuple[str, ...]:
    """The objectives a study was created with (("val_accuracy",) for older studies)."""
    return tuple(study.user_attrs.get(OBJECTIVE_ATTR, ["val_accuracy"]))


def load_existing_study(storage_url: str, study_name: str) -> optuna.Study:
    """Load a study that must exist.

    Raises:
        StorageError: no study of that name in the storage (the message lists those that exist).
    """
    validate_storage_url(storage_url, must_exist=True)
    storage = make_storage(storage_url)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if study_name not in names:
        raise StorageError(
            f"no study named {study_name!r} in {storage_url}; studies there: "
            f"{', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=storage)


@contextlib.contextmanager
def storage_lock(storage_url: str, name: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold a lock named ``name`` across every worker of one storage while the block runs.

    Used where workers must not interleave read-then-write steps, such as seeding baselines
    (two workers that both see an empty study would both enqueue them). PostgreSQL uses a
    session advisory lock (``pg_advisory_lock``), MySQL ``GET_LOCK``, SQLite an exclusive
    ``flock`` on the database file (independent of SQLite's own POSIX locks on Linux).

    Raises:
        TimeoutError: the lock was not acquired within ``timeout`` seconds.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(storage_url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        import fcntl

        deadline = time.monotonic() + timeout
        with open(Path(parsed.database).expanduser(), "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"lock {name!r} on {storage_url} not acquired") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    # A 63-bit key from the name, for pg_advisory_lock(bigint).
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1
    engine = create_engine(storage_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                connection.execute(text(f"SET lock_timeout = {int(timeout * 1000)}"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                release = text("SELECT pg_advisory_unlock(:key)")
            else:
                got = connection.execute(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": f"nas-mnist:{key}", "timeout": int(timeout)},
                ).scalar()
                if got != 1:
                    raise TimeoutError(f"lock {name!r} on {storage_url} not acquired")
                release = text(f"SELECT RELEASE_LOCK('nas-mnist:{key}')")
            try:
                yield
            finally:
                connection.execute(release, {"key": key})
    finally:
        engine.dispose()


def count_finished(study: optuna.Study) -> int:
    """Number of trials that count towards ``--trials`` (complete or pruned)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


class _StopAfterFailures:
    """Stops the study after ``limit`` consecutive failed trials in this process.

    Surplus trials (see ``count_claimed``) do not count as failures.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.consecutive = 0
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get("reason", "").startswith("surplus"):
            return
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        if self.consecutive >= self.limit:
            self.stopped = True
            study.stop()


def count_claimed(study: optuna.Study, before_number: int | None = None) -> int:
    """Finished trials plus RUNNING ones (only those numbered below ``before_number`` if given).

    With several workers, a trial may start only while this count is below ``--trials``: the
    trial with the lower number goes first, so the study ends with exactly ``--trials`` finished.
    """
    claimed = 0
    for t in study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING)):
        if t.state != TrialState.RUNNING or before_number is None or t.number < before_number:
            claimed += 1
    return claimed


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    max_consecutive_failures: int = 10,
) -> dict[str, Any]:
    """Run trials until the study holds ``n_trials`` finished trials in total.

    ``--trials`` is study-wide: after an interruption the same call runs only the remaining ones,
    and several workers share them. Failed trials are recorded and do not count; after
    ``max_consecutive_failures`` failures in a row this worker stops.

    Returns:
        {"ran": trials started here, "stopped_for_failures": bool}.
    """
    if count_claimed(study) >= n_trials:
        return {"ran": 0, "stopped_for_failures": False}
    before = len(study.get_trials(deepcopy=False))
    failures = _StopAfterFailures(max_consecutive_failures)
    study.optimize(
        objective,
        n_trials=None,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[
            optuna.study.MaxTrialsCallback(n_trials, states=FINISHED_STATES),
            failures,
            *callbacks,
        ],
        gc_after_trial=True,
    )
    return {
        "ran": len(study.get_trials(deepcopy=False)) - before,
        "stopped_for_failures": failures.stopped,
    }
