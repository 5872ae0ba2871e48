"""Seconds per epoch: the notebooks' plain ``model.fit`` against nas-mnist's trial path.

Trains the same documented model (same spec, seed and data split) both ways, alternating which
goes first, in one process after one discarded warm-up run of each (so one-off costs such as
TensorFlow's kernel start-up or the first matplotlib import fall on neither):

- plain: what the notebooks do: ``model.fit`` on NumPy arrays with one-hot labels and
  ``categorical_crossentropy``, batch 128, validation on the 10,000 validation images after
  every epoch (``verbose=0``, so no progress bar is timed).
- nas-mnist: one trial of a real search each time: a fresh SQLite Optuna storage and SQLite
  MLflow store in a temporary folder, the baseline enqueued as trial 0, the objective with its
  per-epoch MLflow logging and pruning reports, test evaluation, model and artifact logging, and
  the parent-run refresh.

Seconds per epoch are ``fit`` wall-clock seconds divided by epochs (validation included) for both.
The figure compared is the fastest of the repeats, as Python's ``timeit`` documentation advises
("the lowest value gives a lower bound for how fast your machine can run the given code snippet;
higher values ... are typically caused by other processes interfering"): on this project's shared
2-core VM, identical runs took either about 4.2 s or about 6.0 s, whichever method ran. Medians are
printed too. The per-trial overhead is the trial's wall-clock seconds minus ``fit`` and the test
evaluation (spec to model, compile, MLflow and Optuna writes, artifacts), as a share of ``fit``;
the parent-run refresh, throttled to 1% of a search's time, is printed apart. The last line is
``ratio: X.XX``, plain seconds per epoch divided by nas-mnist's (above 1: nas-mnist is faster).

Usage:
    python scripts/bench_training.py --model s000_m1 --epochs 1 --max-train-samples 10000
    python scripts/bench_training.py --epochs 1 --repeats 3 --input-pipeline arrays
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_plain(args: argparse.Namespace, data) -> dict:
    """The notebook recipe; returns {"fit": seconds}."""
    import keras

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.model.builder import build_model, build_optimizer

    keras.backend.clear_session()
    spec = get_baseline(args.model).spec
    y_train = keras.utils.to_categorical(data.y_train, 10)
    y_val = keras.utils.to_categorical(data.y_val, 10)
    keras.utils.set_random_seed(args.seed)
    model = build_model(spec)
    model.compile(optimizer=build_optimizer(spec.optimizer), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(data.x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(data.x_val, y_val), verbose=0)
    return {"fit": time.perf_counter() - start}


def run_nas_mnist(args: argparse.Namespace, data) -> dict:
    """One search trial; returns the trial's phase seconds (fit, test_eval, overhead, ...)."""
    import optuna

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.model.training import TrainingOptions
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.baseline_trials import seed_baselines
    from nas_mnist.searching.budget import run_trials
    from nas_mnist.searching.objective import PHASE_SECONDS_ATTR, Objective, ObjectiveConfig
    from nas_mnist.searching.refresher import ParentRunRefresher
    from nas_mnist.study.opening import open_study
    from nas_mnist.tracking.tracker import StudyRuns, Tracker
    from nas_mnist.trial_attributes import EXPERIMENT_ATTR

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = TrainingOptions(input_pipeline=args.input_pipeline,
                              eval_batch_size=args.eval_batch_size,
                              steps_per_execution=args.steps_per_execution)
    with tempfile.TemporaryDirectory(prefix="bench_") as folder:
        tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
        tracker.check()
        study, _ = open_study(f"sqlite:///{folder}/optuna.db", "bench", seed=args.seed)
        space = load_search_space(None)
        seed_baselines(study, space, [get_baseline(args.model)])
        parent = tracker.attach_parent_run(study)
        config = ObjectiveConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                 max_trials=1, training=options)
        runs = StudyRuns(tracker, study.user_attrs[EXPERIMENT_ATTR], parent)
        objective = Objective(space, data, runs, config)
        run_trials(study, objective, 1,
                   callbacks=[ParentRunRefresher(tracker, parent, n_trials=1)])
        tracker.finish_parent_run(parent)
        trial = study.trials[0]
        if trial.state != optuna.trial.TrialState.COMPLETE:
            raise RuntimeError(f"the trial ended {trial.state.name}: {trial.user_attrs}")
        phases = dict(trial.user_attrs[PHASE_SECONDS_ATTR])
        # The parent-run refresh runs after the trial, as a study callback.
        refreshes = tracker.client.get_metric_history(parent, "refresh_seconds")
        phases["parent_refresh"] = refreshes[-1].value if refreshes else 0.0
        return phases


def main() -> int:
    """Time both ways, alternating; print each run, the medians, the overhead and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s000_m1", help="documented baseline name")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train-samples", type=int, help="stratified training subset")
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: $NAS_MNIST_DATA, "
                        "else Keras' download)")
    parser.add_argument("--batch-size", type=int, default=128, help="the notebooks' 128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each method")
    parser.add_argument("--input-pipeline", choices=("dataset", "arrays"), default="dataset",
                        help="nas-mnist's input pipeline (TrainingOptions)")
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures here")
    args = parser.parse_args()
    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial MLflow database..."

    from nas_mnist.data import load_mnist, make_splits

    data = make_splits(load_mnist(args.data), max_train_samples=args.max_train_samples, seed=0)
    methods = {"plain": run_plain, "nas-mnist": run_nas_mnist}
    for name, method in methods.items():
        print(f"warm-up:  {name:9s} {method(args, data)['fit'] / args.epochs:7.2f} s/epoch",
              flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        order = list(methods) if repeat % 2 == 0 else list(methods)[::-1]
        for name in order:
            runs[name].append(methods[name](args, data))
            print(f"repeat {repeat + 1}: {name:9s} {runs[name][-1]['fit'] / args.epochs:7.2f} "
                  "s/epoch", flush=True)

    def per_epoch(name: str, stat) -> float:
        return stat(r["fit"] / args.epochs for r in runs[name])

    ours = runs["nas-mnist"]
    overhead = statistics.median(r["overhead"] for r in ours)
    share = statistics.median(r["overhead"] / r["fit"] for r in ours)
    parts = ", ".join(f"{k} {statistics.median(r[k] for r in ours):.2f} s"
                      for k in ("build", "artifacts"))
    print(f"model {args.model}, {args.epochs} epoch(s), {data.num_train} training and "
          f"{data.num_val} validation images, batch {args.batch_size}, {args.repeats} repeats")
    for name, label in (("plain", "plain keras (notebooks)"), ("nas-mnist", "nas-mnist trial")):
        print(f"{label:24s} {per_epoch(name, min):6.2f} s/epoch fastest, "
              f"{per_epoch(name, statistics.median):6.2f} median")
    print(f"nas-mnist per-trial overhead: {overhead:.2f} s = {share:.1%} of fit (median; "
          f"{parts}); test evaluation {statistics.median(r['test_eval'] for r in ours):.2f} s "
          f"and parent-run refresh {statistics.median(r['parent_refresh'] for r in ours):.2f} s "
          "apart")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=2)
    print(f"ratio: {per_epoch('plain', min) / per_epoch('nas-mnist', min):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
