"""GPU numbers for a user's search: seconds per epoch, trials per hour (``scripts/gpu_check.sh``).

Two measurements, each one subcommand, each writing one CSV; ``table`` prints both as one table.

``epochs``: seconds per epoch of the baseline ``s000_m1`` (the notebooks' first model) trained
with ``model.fit`` on all 50,000 training images (its batch size and optimizer), for XLA
(``jit_compile``) on and off and mixed precision (Keras' "mixed_float16" policy on a GPU,
"mixed_bfloat16" on a CPU) on and off. The first epoch holds the compilation and is reported
apart; seconds per epoch is the median of the later ones. Without XLA, Keras' JAX backend runs
each step op by op, so that mode trains ``--steps-without-xla`` steps and scales them to an
epoch.

``augmentation``: seconds per epoch of ``s002_m1`` plain and with the final recipe's augmentation
layers (``nas_mnist.searching.final.recipe``), which ``nas-mnist retrain`` adds; epoch 1 holds
the compilation and is left out.

``batches``: first and later epochs of ``s000_m1`` fed by Keras' array adapter and by
``nas_mnist.model.training.FullBatches`` (every batch of one shape, so XLA compiles the train step
once on JAX).

``jobs``: complete trials per hour of ``nas-mnist search --jobs N`` for each N, each a fresh
study with the same seed and settings (so the same sampled specs come first), stopped by
``--timeout``; the whole command is timed (start-up and the last trials' finish included).
Trials pruned as impossible architectures finish in milliseconds, so only complete trials count.
``--max-params N`` passes ``--max-params`` on (the CPU smoke test keeps its trials small with it).

    KERAS_BACKEND=jax python scripts/bench_gpu.py epochs --data mnist.npz --csv epochs.csv
    KERAS_BACKEND=jax python scripts/bench_gpu.py augmentation --data mnist.npz --csv aug.csv
    KERAS_BACKEND=jax python scripts/bench_gpu.py batches --data mnist.npz --max-train-samples \\
        2000 --csv batches.csv
    KERAS_BACKEND=jax python scripts/bench_gpu.py jobs --data mnist.npz --jobs 1,2,4 \\
        --window 40 --csv jobs.csv
    python scripts/bench_gpu.py table --epochs-csv epochs.csv --jobs-csv jobs.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = "s000_m1"


def device_line() -> str:
    """The Keras backend and the devices it trains on, one line."""
    from nas_mnist.model.devices import configure_devices

    return configure_devices()


def epoch_seconds(data_path: str, epochs: int, jit: bool, mixed: bool, steps_without_xla: int,
                  max_train_samples: int | None) -> dict:
    """Train ``s000_m1`` once with the given XLA and precision settings; returns one CSV row
    (seconds are wall-clock, ``time.perf_counter``)."""
    import keras
    import numpy as np

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.data import load_mnist, make_splits
    from nas_mnist.model.builder import build_loss, build_model, build_optimizer
    from nas_mnist.model.devices import set_mixed_precision

    spec = get_baseline(BASELINE).spec
    data = make_splits(load_mnist(data_path), max_train_samples=max_train_samples)
    policy = set_mixed_precision(mixed)
    keras.utils.set_random_seed(0)
    model = build_model(spec)
    model.compile(optimizer=build_optimizer(spec.optimizer), loss=build_loss(spec),
                  metrics=["accuracy"], jit_compile=jit)
    steps = int(np.ceil(data.num_train / spec.batch_size))
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    run_steps = steps if jit else min(steps, steps_without_xla)
    runs = epochs if jit else 2
    model.fit(data.x_train, data.y_train, batch_size=spec.batch_size, epochs=runs,
              steps_per_epoch=run_steps, verbose=0, callbacks=[Timer()])
    later = statistics.median(times[1:]) * steps / run_steps
    keras.config.set_dtype_policy("float32")
    return {"model": BASELINE, "params": model.count_params(), "train_images": data.num_train,
            "batch_size": spec.batch_size, "xla": jit, "dtype_policy": policy,
            "first_epoch_s": round(times[0] * steps / run_steps, 2),
            "seconds_per_epoch": round(later, 2),
            "measured_steps": run_steps, "device": device_line()}


def epoch_timer(times: list[float]) -> object:
    """A Keras callback that appends each epoch's wall-clock seconds to ``times``."""
    import keras

    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.append(times.pop() + time.perf_counter()))


def augmentation_seconds(args: argparse.Namespace) -> None:
    """Print and write one row per variant: plain ``s002_m1`` and with the recipe's
    augmentation (median seconds per epoch after the first, ``model.fit``)."""
    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.data import load_mnist, make_splits
    from nas_mnist.model.builder import build_loss, build_model, build_optimizer
    from nas_mnist.searching.final.recipe import FinalRecipe

    data = make_splits(load_mnist(args.data), max_train_samples=args.max_train_samples)
    plain = get_baseline("s002_m1").spec
    rows = []
    for name, spec in (("plain", plain), ("augmented", FinalRecipe(epochs=1).apply(plain))):
        model = build_model(spec)
        model.compile(optimizer=build_optimizer(spec.optimizer), loss=build_loss(spec),
                      metrics=["accuracy"])
        times: list[float] = []
        model.fit(data.x_train, data.y_train, batch_size=spec.batch_size, epochs=args.epochs,
                  verbose=0, callbacks=[epoch_timer(times)])
        rows.append({"model": "s002_m1", "variant": name, "train_images": data.num_train,
                     "first_epoch_s": round(times[0], 2),
                     "seconds_per_epoch": round(statistics.median(times[1:]), 2),
                     "device": device_line()})
        print(rows[-1], flush=True)
        write_csv(args.csv, rows)


def batch_seconds(args: argparse.Namespace) -> None:
    """Print and write one row per run: ``s000_m1`` fed by Keras' array adapter (its last batch
    of an epoch is smaller, a second XLA compilation of the train step on JAX) and by
    ``nas_mnist.model.training.FullBatches`` (one batch shape), alternating, twice each; first
    epoch (compilation included) and the median of the later ones, validation included."""
    import keras

    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.data import load_mnist, make_splits
    from nas_mnist.model.builder import build_model, compile_model
    from nas_mnist.model.training import EVAL_BATCH_SIZE, FullBatches

    data = make_splits(load_mnist(args.data), max_train_samples=args.max_train_samples)
    spec = get_baseline(BASELINE).spec
    validation = {"validation_data": (data.x_val, data.y_val),
                  "validation_batch_size": EVAL_BATCH_SIZE}
    rows = []
    for feed in ("keras arrays", "FullBatches") * 2:
        keras.utils.set_random_seed(0)
        model = compile_model(build_model(spec), spec)
        times: list[float] = []
        inputs = ({"x": data.x_train, "y": data.y_train, "batch_size": spec.batch_size}
                  if feed == "keras arrays" else
                  {"x": FullBatches(data.x_train, data.y_train, spec.batch_size, 0),
                   "shuffle": False})
        model.fit(**inputs, **validation, epochs=args.epochs, verbose=0,
                  callbacks=[epoch_timer(times)])
        rows.append({"model": BASELINE, "feed": feed, "train_images": data.num_train,
                     "last_batch": data.num_train % spec.batch_size or spec.batch_size,
                     "first_epoch_s": round(times[0], 2),
                     "seconds_per_epoch": round(statistics.median(times[1:]), 2),
                     "device": device_line()})
        print(rows[-1], flush=True)
        write_csv(args.csv, rows)
        keras.backend.clear_session()


def run_epochs(args: argparse.Namespace) -> None:
    """Each XLA and precision mode in a fresh process (a dtype policy and compiled functions
    would otherwise carry over); rows appended to ``args.csv``."""
    rows = []
    for jit in (True, False):
        for mixed in (False, True):
            cmd = [sys.executable, __file__, "_one_epoch_mode", "--data", args.data,
                   "--epochs", str(args.epochs), "--steps-without-xla",
                   str(args.steps_without_xla), "--jit", str(int(jit)),
                   "--mixed", str(int(mixed))]
            if args.max_train_samples:
                cmd += ["--max-train-samples", str(args.max_train_samples)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=repo_env())
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                continue
            row = eval_row(out.stdout)
            print(row, flush=True)
            rows.append(row)
            write_csv(args.csv, rows)  # after each row: a run cut short keeps what it measured


def eval_row(stdout: str) -> dict:
    """The dict a ``_one_epoch_mode`` child printed as its last line."""
    import ast

    return ast.literal_eval(stdout.strip().splitlines()[-1])


def write_csv(path: str, rows: list[dict]) -> None:
    """``rows`` as a CSV with a header (nothing written when there are none)."""
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def search_command(args: argparse.Namespace, jobs: int, folder: str) -> list[str]:
    """The ``nas-mnist search`` of one ``--jobs`` window."""
    cmd = [sys.executable, "-m", "nas_mnist", "search", "--trials", "10000",
           "--timeout", str(args.window), "--epochs", str(args.epochs), "--baselines", "none",
           "--pruner", "none", "--final-top-k", "0", "--seed", "0", "--no-progress",
           "--data", args.data, "--study-name", "bench", "--jobs", str(jobs),
           "--storage", f"journal:///{folder}/study.log",
           "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    if args.max_train_samples:
        cmd += ["--max-train-samples", str(args.max_train_samples)]
    if args.max_params:
        cmd += ["--max-params", str(args.max_params)]
    return cmd


def repo_env() -> dict[str, str]:
    """This environment with the repository on ``PYTHONPATH`` (children run in other folders)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def run_jobs(args: argparse.Namespace) -> None:
    """One search per ``--jobs`` value, each on a fresh journal study; rows to ``args.csv``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    rows = []
    for jobs in [int(j) for j in args.jobs.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            out = subprocess.run(search_command(args, jobs, folder), capture_output=True,
                                 text=True, cwd=folder, env=repo_env())
            seconds = time.perf_counter() - start
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
            storage = JournalStorage(JournalFileBackend(f"{folder}/study.log"))
            try:
                trials = optuna.load_study(study_name="bench", storage=storage).trials
            except KeyError:  # the search failed before it made its study: a row of zeros
                trials = []
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        row = {"jobs": jobs, "window_s": args.window, "command_s": round(seconds, 1),
               "complete_trials": complete, "finished_trials": sum(t.state.is_finished()
                                                                   for t in trials),
               "complete_trials_per_hour": round(complete * 3600 / seconds, 1),
               "epochs": args.epochs, "train_images": args.max_train_samples or 50000,
               "exit_status": out.returncode}
        print(row, flush=True)
        rows.append(row)
        write_csv(args.csv, rows)


def print_table(args: argparse.Namespace) -> None:
    """The CSVs as one Markdown table (measurement, setting, value)."""
    lines = ["| measurement | setting | value |", "| --- | --- | --- |"]
    for row in read_csv(args.epochs_csv):
        lines.append(f"| s/epoch {row['model']} ({row['train_images']} images, batch "
                     f"{row['batch_size']}) | XLA {row['xla']}, {row['dtype_policy']} | "
                     f"{row['seconds_per_epoch']} s (first epoch {row['first_epoch_s']} s) |")
    for row in read_csv(args.augmentation_csv):
        lines.append(f"| s/epoch {row['model']} ({row['train_images']} images) | "
                     f"{row['variant']} | {row['seconds_per_epoch']} s |")
    for row in read_csv(args.batches_csv):
        lines.append(f"| first epoch {row['model']} ({row['train_images']} images, last batch "
                     f"{row['last_batch']}) | {row['feed']} | {row['first_epoch_s']} s (later "
                     f"{row['seconds_per_epoch']} s) |")
    for row in read_csv(args.jobs_csv):
        lines.append(f"| complete trials/hour ({row['epochs']} epochs, {row['train_images']} "
                     f"images) | --jobs {row['jobs']} | {row['complete_trials_per_hour']} "
                     f"({row['complete_trials']} in {row['command_s']} s) |")
    print("\n".join(lines))


def read_csv(path: str | None) -> list[dict]:
    """Rows of ``path``; none when it is missing (that measurement did not run)."""
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("epochs", "_one_epoch_mode", "augmentation", "batches", "jobs"):
        p = sub.add_parser(name)
        p.add_argument("--data", required=True, help="MNIST .npz")
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--max-train-samples", type=int, help="default: all 50,000")
        p.add_argument("--csv", default=f"{name}.csv")
        p.add_argument("--steps-without-xla", type=int, default=50)
        p.add_argument("--jit", type=int, default=1)
        p.add_argument("--mixed", type=int, default=0)
        p.add_argument("--jobs", default="1,2,4", help="--jobs values, comma-separated")
        p.add_argument("--window", type=int, default=40, help="search --timeout, seconds")
        p.add_argument("--max-params", type=int, help="jobs: search --max-params (default none)")
    p = sub.add_parser("table")
    p.add_argument("--epochs-csv")
    p.add_argument("--jobs-csv")
    p.add_argument("--augmentation-csv")
    p.add_argument("--batches-csv")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.command == "_one_epoch_mode":
        print(epoch_seconds(args.data, args.epochs, bool(args.jit), bool(args.mixed),
                            args.steps_without_xla, args.max_train_samples))
    else:
        commands = {"epochs": run_epochs, "augmentation": augmentation_seconds,
                    "batches": batch_seconds, "jobs": run_jobs, "table": print_table}
        commands[args.command](args)


if __name__ == "__main__":
    main()
