"""Search efficiency on equal wall-clock: anytime curves of several search configurations.

Each method runs as ``python -m nas_mnist search ...`` in a subprocess, one after another on
this machine, once per sampler seed, each with the same wall-clock budget and fidelity
(``--epochs``, ``--max-train-samples``), its own fresh SQLite storage and MLflow store in a
temporary folder, ``--final-top-k 0 --no-progress --trials 10000``. What is measured is how
soon a method finds a good model: the best val_accuracy of its complete trials so far against
the seconds since its subprocess started (Python and TensorFlow start-up, data loading, the
projection and the seeds included: a user waits for all of them).

Methods (``--methods`` picks a subset):

- ``default``: nas-mnist's default (``--baselines auto``, TPE, median pruner).
- ``no-seeds``: the same without the documented baselines (``--baselines none``).
- ``random``: Optuna random sampling, no pruning (``--sampler random --pruner none``).
- ``tpe-hyperband``: Optuna TPE with the Hyperband pruner (``--pruner hyperband``).
- ``keras-tuner``: KerasTuner Hyperband on the same space (``--engine keras-tuner --tuner
  hyperband``).

The Optuna methods get ``--time-budget BUDGET`` (the whole job: no trial starts that the
projection says cannot finish); a run still going ``--grace`` seconds after the budget gets
SIGINT. That projection reserves one average sampled trial of the space (its FLOPs at this
CPU's measured speed; minutes at ``--epochs 2 --max-train-samples 5000`` on a busy 2-core
machine), so a short budget lets sampled trials start only early in the run; ``--limit
timeout`` gives them ``--timeout BUDGET`` instead (trials start until the budget) and stops the
run at the budget. Their trials are read back with ``optuna.load_study``: start and end are
``datetime_start`` and ``datetime_complete`` minus the subprocess's start time.

``keras-tuner`` has no ``--time-budget``; it gets ``--timeout BUDGET`` (the KerasTuner engine
starts no trial after it, and repeats Hyperband's brackets until then), and this script also
sends SIGINT at the budget: a trial cut off then is left out. Its trials are
read from MLflow, where that engine
records them (one nested run per trial: the run's ``start_time`` and ``end_time``, the
``state`` tag, the metrics ``best_val_accuracy``, ``test_accuracy``, ``num_params`` and
``epochs_trained``); KerasTuner's own ``trial.json`` files hold no times. A run's end is after
its test evaluation and MLflow upload. Hyperband trials that trained fewer than ``--epochs``
epochs count with the val_accuracy they reached (they are models the search found).

Output in ``--out``: ``trials.csv``, ``runs.csv`` (method, seed, job_s: the job's wall-clock
seconds, ended: its exit), ``anytime.png`` and ``summary.md`` (also printed), and each
subprocess's output in ``logs/``. Both CSVs are rewritten after each run, so a benchmark cut
short keeps what it measured; ``--from-csv`` redraws the plot and table from them.

CSV columns (one row per trial that started): method, seed (the sampler seed), trial (its
number), start_s and end_s (seconds since the run's subprocess started; end_s empty for a
trial that never finished), state (complete, pruned, failed, running; pruned includes
impossible architectures), val_accuracy and test_accuracy (fractions; only for complete trials;
test_accuracy is reporting only, never used to select), params (parameter count), baseline (the
documented baseline's name for a seeded trial, else empty), epochs (epochs the trial trained;
empty where not recorded).

Table (per method, over the seeds): the median of the best val_accuracy among trials that ended
within 1/4, 1/2 and all of the budget ("-" when the median seed had none yet); the median
seconds until a trial reached the target (the best val_accuracy of a complete baseline trial in
the ``default`` runs, same fidelity, this benchmark; ``--target`` overrides; "-" if the median
seed never reached it) with how many seeds did; the median test_accuracy of each seed's selected
trial (the best by val_accuracy within the budget); complete trials and job seconds (medians).

The benchmark in docs/benchmarks.md (5 methods x 3 seeds x 7 minutes: about 2 hours on 2 cores):
    python scripts/bench_search_efficiency.py --data ../shared/data/mnist.npz --out bench_eff

A smoke run (a couple of minutes):
    python scripts/bench_search_efficiency.py --methods default,random --seeds 0 --budget 60 \\
        --epochs 1 --max-train-samples 500 --data ../shared/data/mnist.npz --out /tmp/bse
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDY = "bench"
COMMON = ("--final-top-k", "0", "--no-progress", "--trials", "10000")
METHODS = {
    "default": ("--baselines", "auto"),
    "no-seeds": ("--baselines", "none"),
    "random": ("--sampler", "random", "--pruner", "none", "--baselines", "none"),
    "tpe-hyperband": ("--pruner", "hyperband", "--baselines", "none"),
    "keras-tuner": ("--engine", "keras-tuner", "--tuner", "hyperband", "--baselines", "none"),
}
"""Each method's own flags for ``nas-mnist search``."""
COLUMNS = ("method", "seed", "trial", "start_s", "end_s", "state", "val_accuracy",
           "test_accuracy", "params", "baseline", "epochs")
RUN_COLUMNS = ("method", "seed", "job_s", "ended")
"""``runs.csv``: one row per run (also those that recorded no trial)."""
STOP_WAIT_S = 60.0
"""Seconds from SIGINT to SIGKILL for a run that overran (the CLI exits within 5 s)."""


def search_command(method: str, seed: int, args: argparse.Namespace, folder: Path) -> list[str]:
    """The ``nas-mnist search`` command line of one run, its stores in ``folder``."""
    cmd = [sys.executable, "-m", "nas_mnist", "search", *METHODS[method], *COMMON,
           "--seed", str(seed), "--epochs", str(args.epochs), "--data", args.data,
           "--study-name", STUDY, "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    if args.max_train_samples:
        cmd += ["--max-train-samples", str(args.max_train_samples)]
    if args.space:
        cmd += ["--space", args.space]
    if method == "keras-tuner":
        return cmd + ["--timeout", f"{args.budget:g}", "--tuner-dir", str(folder / "keras_tuner")]
    cmd += ["--storage", f"sqlite:///{folder / 'optuna.db'}"]
    if args.limit == "timeout":
        return cmd + ["--timeout", f"{args.budget:g}"]
    return cmd + ["--time-budget", f"{args.budget:g}s"]


def wait_until(proc: subprocess.Popen, stop_at: float) -> str:
    """Wait for ``proc``; SIGINT it at ``stop_at`` (``time.monotonic()``), SIGKILL it
    ``STOP_WAIT_S`` later. Returns how it ended ("exit N", "stopped at the budget", ...)."""
    try:
        return f"exit {proc.wait(timeout=max(stop_at - time.monotonic(), 0.0))}"
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    try:
        return f"stopped by SIGINT (exit {proc.wait(timeout=STOP_WAIT_S)})"
    except subprocess.TimeoutExpired:
        proc.kill()
        return f"killed (exit {proc.wait()})"


def run_once(method: str, seed: int, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Run one method with one seed in a fresh temporary folder; returns its trials (CSV rows)
    and the run's ``RUN_COLUMNS`` row (the job's wall-clock seconds and how it ended)."""
    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NAS_MNIST_DATA": args.data,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix=f"bse-{method}-{seed}-") as tmp:
        folder = Path(tmp)
        cmd = search_command(method, seed, args, folder)
        grace = args.grace if method != "keras-tuner" and args.limit == "time-budget" else 0.0
        with open(logs / f"{method}-seed{seed}.log", "w") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            wall_start = time.time()
            started = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            ended = wait_until(proc, started + args.budget + grace)
            job_s = time.monotonic() - started
        print(f"{method} seed {seed}: {ended} after {job_s:.0f} s", flush=True)
        if method == "keras-tuner":
            rows = keras_tuner_trials(f"sqlite:///{folder / 'mlflow.db'}", wall_start)
        else:
            rows = optuna_trials(f"sqlite:///{folder / 'optuna.db'}", wall_start)
    for row in rows:
        row.update(method=method, seed=seed)
    return rows, {"method": method, "seed": seed, "job_s": round(job_s, 1), "ended": ended}


def _seconds(moment: object, wall_start: float) -> float | None:
    """Seconds from ``wall_start`` (``time.time()``) to a naive local datetime, or None."""
    return None if moment is None else round(moment.timestamp() - wall_start, 2)


def optuna_trials(storage: str, wall_start: float) -> list[dict]:
    """One row per trial that started in the study ``STUDY`` of ``storage``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
    except KeyError:  # the job ended before it made the study
        return []
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start is None:  # queued, never ran
            continue
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        attrs = trial.user_attrs
        state = trial.state.name.lower()
        rows.append({
            "trial": trial.number, "start_s": _seconds(trial.datetime_start, wall_start),
            "end_s": _seconds(trial.datetime_complete, wall_start),
            "state": "failed" if state == "fail" else state,
            "val_accuracy": trial.value if complete else None,
            "test_accuracy": attrs.get("test_accuracy") if complete else None,
            "params": attrs.get("num_params", attrs.get("params")),
            "baseline": attrs.get("baseline") or "",
            "epochs": len(trial.intermediate_values) or None})
    return rows


def keras_tuner_trials(tracking_uri: str, wall_start: float) -> list[dict]:
    """One row per trial run that the KerasTuner engine recorded in MLflow (experiment
    ``STUDY``); a run still "running" was cut off by the stop."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(STUDY)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`nas_mnist.role` = 'trial'",
                              max_results=50_000)
    rows = []
    for run in runs:
        metrics, info = run.data.metrics, run.info
        state = run.data.tags.get("state", "running")
        complete = state == "complete"
        rows.append({
            "trial": int(run.data.tags.get("optuna.trial_number", -1)),
            "start_s": round(info.start_time / 1000 - wall_start, 2),
            "end_s": (round(info.end_time / 1000 - wall_start, 2)
                      if info.end_time and state != "running" else None),
            "state": state,
            "val_accuracy": metrics.get("best_val_accuracy") if complete else None,
            "test_accuracy": metrics.get("test_accuracy") if complete else None,
            "params": int(metrics["num_params"]) if "num_params" in metrics else None,
            "baseline": "", "epochs": (int(metrics["epochs_trained"])
                                       if "epochs_trained" in metrics else None)})
    return sorted(rows, key=lambda r: r["trial"])


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> None:
    """Write ``rows`` (``columns``; None as empty) to ``path``."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})


def _read(path: Path, floats: tuple[str, ...], ints: tuple[str, ...]) -> list[dict]:
    """Rows of a CSV this script wrote, the named columns parsed (empty: None)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            row.update({k: float(row[k]) if row[k] else None for k in floats})
            row.update({k: int(row[k]) if row[k] else None for k in ints})
            rows.append(row)
    return rows


def read_csv(path: str) -> tuple[list[dict], list[dict]]:
    """Trials from a ``trials.csv`` and the runs from the ``runs.csv`` beside it (none if
    there is none)."""
    trials = _read(Path(path), ("start_s", "end_s", "val_accuracy", "test_accuracy"),
                   ("seed", "trial", "params", "epochs"))
    runs_csv = Path(path).with_name("runs.csv")
    runs = _read(runs_csv, ("job_s",), ("seed",)) if runs_csv.is_file() else []
    return trials, runs


def runs_of(rows: list[dict], runs: list[dict]) -> dict[str, dict[int, list[dict]]]:
    """Trials grouped by method, then seed (every run in ``runs`` present, with or without
    trials), each list in order of end time (unfinished last)."""
    grouped: dict[str, dict[int, list[dict]]] = {}
    for run in runs:
        grouped.setdefault(run["method"], {}).setdefault(run["seed"], [])
    for row in rows:
        grouped.setdefault(row["method"], {}).setdefault(row["seed"], []).append(row)
    for seeds in grouped.values():
        for trials in seeds.values():
            trials.sort(key=lambda r: math.inf if r["end_s"] is None else r["end_s"])
    return grouped


def best_by(trials: list[dict], seconds: float) -> dict | None:
    """The complete trial with the best val_accuracy among those that ended within
    ``seconds`` (the earliest on ties), or None."""
    done = [r for r in trials if r["state"] == "complete" and r["val_accuracy"] is not None
            and r["end_s"] is not None and r["end_s"] <= seconds]
    return max(done, key=lambda r: (r["val_accuracy"], -r["end_s"]), default=None)


def seconds_to_reach(trials: list[dict], target: float) -> float:
    """End seconds of the first complete trial with val_accuracy >= ``target`` (inf: none)."""
    return next((r["end_s"] for r in trials if r["state"] == "complete"
                 and r["val_accuracy"] is not None and r["end_s"] is not None
                 and r["val_accuracy"] >= target), math.inf)


def baseline_target(grouped: dict) -> float | None:
    """The best val_accuracy of a complete baseline trial in the ``default`` runs, or None."""
    values = [r["val_accuracy"] for trials in grouped.get("default", {}).values()
              for r in trials if r["baseline"] and r["state"] == "complete"
              and r["val_accuracy"] is not None]
    return max(values, default=None)


def _median(values: list[float], digits: int = 4) -> str:
    """Median of ``values`` as text; "-" when it is not finite (the median seed had none)."""
    if not values:
        return "-"
    middle = statistics.median(values)
    return f"{middle:.{digits}f}" if math.isfinite(middle) else "-"


def summary_table(grouped: dict, budget: float, target: float | None, runs: list[dict]) -> str:
    """The Markdown table of the module docstring, with a line on the target above it."""
    head = (f"target: {target:.4f} val_accuracy (best complete baseline trial of the default "
            "runs)" if target is not None else "target: none (no complete baseline trial)")
    lines = [head, "", "| method | seeds | best val @1/4 | @1/2 | @full | s to target | "
             "test acc. of selected | complete trials | job s |", "|" + "---|" * 9]
    for method, seeds in grouped.items():
        per_seed = list(seeds.values())
        best = [[(b["val_accuracy"] if (b := best_by(t, budget * f)) else -math.inf)
                 for t in per_seed] for f in (0.25, 0.5, 1.0)]
        reach = [seconds_to_reach(t, target) for t in per_seed] if target is not None else []
        reached = f" ({sum(math.isfinite(s) for s in reach)}/{len(per_seed)})" if reach else ""
        tests = [b["test_accuracy"] for t in per_seed if (b := best_by(t, budget))
                 and b["test_accuracy"] is not None]
        complete = [sum(r["state"] == "complete" for r in t) for t in per_seed]
        jobs = [r["job_s"] for r in runs if r["method"] == method and r["job_s"] is not None]
        lines.append(f"| {method} | {len(per_seed)} | {_median(best[0])} | {_median(best[1])} | "
                     f"{_median(best[2])} | {_median(reach, 0)}{reached} | {_median(tests)} | "
                     f"{_median(complete, 0)} | {_median(jobs, 0)} |")
    return "\n".join(lines) + "\n"


def anytime(trials: list[dict], grid: list[float]) -> list[float]:
    """Best val_accuracy so far at each of ``grid``'s seconds (NaN before the first)."""
    return [(b["val_accuracy"] if (b := best_by(trials, t)) else math.nan) for t in grid]


def plot(grouped: dict, budget: float, target: float | None, path: Path) -> None:
    """Draw each method's median best-so-far curve over seeds with its min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = list(np.linspace(0, budget, 400))
    fig, ax = plt.subplots(figsize=(8, 5))
    for method, seeds in grouped.items():
        curves = np.array([anytime(t, grid) for t in seeds.values()])
        with warnings.catch_warnings():  # all-NaN columns (no trial yet) give NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(curves, axis=0)
            low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        label = (f"{method} (median of {len(curves)})" if np.isfinite(median).any()
                 else f"{method}: no complete trial")
        (line,) = ax.plot(grid, median, drawstyle="steps-post", label=label)
        ax.fill_between(grid, low, high, step="post", alpha=0.2, color=line.get_color())
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="best baseline (default runs)")
    for fraction in (0.25, 0.5):
        ax.axvline(budget * fraction, color="lightgrey", linewidth=0.8)
    ax.set(xlabel="seconds since the search started", ylabel="best val_accuracy so far",
           title="Search efficiency on equal wall-clock (median, min-max over seeds)",
           xlim=(0, budget))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    """The script's command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Methods: " + ", ".join(METHODS) + ". See the module docstring for the CSV.")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--seeds", default="0,1,2", help="sampler seeds (default: 0,1,2)")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="wall-clock seconds per run (default: 420)")
    parser.add_argument("--limit", choices=("time-budget", "timeout"), default="time-budget",
                        help="how the Optuna methods keep to the budget: --time-budget (no "
                        "trial starts that the projection says cannot finish), or --timeout "
                        "(trials start until the budget; the run is stopped at it) "
                        "(default: time-budget)")
    parser.add_argument("--grace", type=float, default=120.0,
                        help="seconds after the budget before an Optuna run that has not "
                        "ended is stopped (default: 120)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (default: 2)")
    parser.add_argument("--max-train-samples", type=int, default=5000,
                        help="training images per trial (default: 5000; 0: all)")
    parser.add_argument("--space", help="search space for every method (default: the CLI's)")
    parser.add_argument("--data", default=os.environ.get("NAS_MNIST_DATA"),
                        help="MNIST .npz or IDX folder (default: $NAS_MNIST_DATA)")
    parser.add_argument("--target", type=float,
                        help="val_accuracy to reach (default: the best baseline trial of the "
                        "default runs)")
    parser.add_argument("--out", default="bench_search_efficiency",
                        help="output folder (default: bench_search_efficiency)")
    parser.add_argument("--from-csv", metavar="CSV",
                        help="run nothing: redraw the plot and table from this CSV (with the "
                        "same --budget)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed and checked flags; bad ones end with argparse's one-line error (exit 2)."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.method_list if m not in METHODS]
    if unknown or not args.method_list:
        parser.error(f"--methods: unknown {', '.join(unknown) or 'empty list'}; choose from "
                     f"{', '.join(METHODS)}")
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: expected integers such as 0,1,2, got {args.seeds!r}")
    if args.budget <= 0 or args.epochs < 1 or args.grace < 0:
        parser.error("--budget and --epochs must be positive, --grace not negative")
    if not args.from_csv and not (args.data and Path(args.data).exists()):
        parser.error("--data: give the MNIST .npz or IDX folder (or set NAS_MNIST_DATA)")
    if args.from_csv and not Path(args.from_csv).is_file():
        parser.error(f"--from-csv: no file {args.from_csv}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every method and seed (or read ``--from-csv``), then write the CSV, PNG and table."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_csv:
        rows, runs = read_csv(args.from_csv)
    else:
        rows, runs = [], []
        for method in args.method_list:  # all seeds of a method, then the next method
            for seed in args.seed_list:
                trials, run = run_once(method, seed, args)
                rows += trials
                runs.append(run)
                write_csv(out / "trials.csv", rows)
                write_csv(out / "runs.csv", runs, RUN_COLUMNS)
    grouped = runs_of(rows, runs)
    target = args.target if args.target is not None else baseline_target(grouped)
    plot(grouped, args.budget, target, out / "anytime.png")
    table = summary_table(grouped, args.budget, target, runs)
    (out / "summary.md").write_text(table)
    print(table)
    written = [] if args.from_csv else ["trials.csv", "runs.csv"]
    print("wrote " + ", ".join(str(out / name) for name in [*written, "anytime.png", "summary.md"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
