"""Several workers on one study, against a real PostgreSQL server.

``.ci/run`` starts one with ``scripts/start_postgres.sh`` and exports ``NAS_MNIST_POSTGRES_URL``
(the Optuna storage) and ``NAS_MNIST_POSTGRES_MLFLOW_URL`` (the MLflow tracking store).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import SMALL_SPACE, mlflow_runs

from nas_mnist.study.trial_counts import is_impossible

STORAGE = os.environ.get("NAS_MNIST_POSTGRES_URL")
TRACKING = os.environ.get("NAS_MNIST_POSTGRES_MLFLOW_URL")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (STORAGE and TRACKING), reason="set NAS_MNIST_POSTGRES_URL and "
                       "NAS_MNIST_POSTGRES_MLFLOW_URL (scripts/start_postgres.sh) to run"),
]
WORKERS = 3
TRIALS = 7
BASELINES = "s004_linear,s001_m2"


def test_workers_share_the_study_exactly(tmp_path, real_mnist_path):
    study_name = f"workers-{uuid.uuid4().hex[:8]}"
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    # Create the storages' tables once, as the first worker of a real deployment would.
    optuna.storages.RDBStorage(STORAGE)
    from nas_mnist.tracking.tracker import Tracker

    Tracker(TRACKING).check()

    command = [sys.executable, "-m", "nas_mnist", "search", "--trials", str(TRIALS), "--epochs",
               "1", "--max-train-samples", "300", "--data", str(real_mnist_path), "--space",
               str(tmp_path / "space.yaml"), "--baselines", BASELINES, "--storage", STORAGE,
               "--study-name", study_name, "--tracking-uri", TRACKING, "--no-progress"]
    workers = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(WORKERS)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * WORKERS, "\n".join(outputs)

    study = optuna.load_study(study_name=study_name, storage=STORAGE)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # Impossible architectures stay in the study uncounted.
    assert sum(not is_impossible(t) for t in finished) == TRIALS
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # Baselines seeded once.
    seeded = Counter(t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs)
    assert seeded == Counter(BASELINES.split(","))
    # Several workers really took part.
    assert len({t.user_attrs["worker"] for t in finished}) >= 2
    # One MLflow run per trial that ran (surplus trials end before they get one), one parent.
    parents, children = mlflow_runs(TRACKING, study_name)
    assert len(parents) == 1
    ran = [t for t in trials if "mlflow_run_id" in t.user_attrs]
    assert sorted(r.info.run_id for r in children) == sorted(t.user_attrs["mlflow_run_id"]
                                                             for t in ran)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert all(r.info.status != "RUNNING" for r in children)
    surplus = [t for t in trials if t not in ran]
    assert all(t.state == TrialState.FAIL and t.user_attrs["reason"].startswith("surplus")
               for t in surplus)
    assert Path(tmp_path).is_dir()


def _seed_from_a_worker(study_name: str, start: object, out: object) -> None:
    from nas_mnist.architecture.baselines import BASELINES as CATALOG
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.baseline_trials import seed_baselines
    from nas_mnist.study.locks import storage_lock
    from nas_mnist.study.opening import open_study

    study, _ = open_study(STORAGE, study_name)
    space = load_search_space(None)
    start.wait()
    with storage_lock(STORAGE, f"seed:{study_name}"):
        out.put(seed_baselines(study, space, list(CATALOG)))


def test_workers_started_together_seed_each_baseline_once():
    import multiprocessing

    from nas_mnist.architecture.baselines import BASELINES as CATALOG
    from nas_mnist.study.opening import open_study

    study_name = f"seed-{uuid.uuid4().hex[:8]}"
    open_study(STORAGE, study_name)
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_seed_from_a_worker, args=(study_name, start, out))
               for _ in range(4)]
    for w in workers:
        w.start()
    enqueued = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert sorted(n for names in enqueued for n in names) == sorted(b.name for b in CATALOG)
    study = optuna.load_study(study_name=study_name, storage=STORAGE)
    seeded = Counter(t.user_attrs["baseline"] for t in study.get_trials())
    assert seeded == Counter(b.name for b in CATALOG)
