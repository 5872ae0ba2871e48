"""Trials per hour with ``--jobs 1`` and ``--jobs 2``, resident memory over many small trials,
and the cost of starting one worker process.

Throughput: every run is a fresh ``nas-mnist search`` on a journal storage whose study was
created beforehand with the same enqueued trials (a seeded random sample of the space), so every
mode trains exactly the same specs. Modes run alternating, the order flipped each repeat; the
median of the repeats is printed. Trials per hour count the whole command (start-up included).

Memory: one ``--jobs 2`` search of ``--memory-trials`` small trials; the resident set size (RSS,
``/proc/<pid>/status`` VmRSS) of the search process and of each worker process is sampled every
0.2 s.

Worker start-up: seconds from ``Process.start()`` ("spawn") until a child has imported
TensorFlow and loaded the full data, the fixed cost that isolating each trial in a fresh process
adds.

    python scripts/bench_throughput.py --data ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Process ids of the children of process ``pid`` (Linux ``/proc``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def enqueued_study(url: str, space_name: str, trials: int, seed: int) -> None:
    """Create study "bench" in ``url`` holding ``trials`` enqueued, seeded random samples."""
    import optuna

    from nas_mnist.architecture.spec import SpecError
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.study.storage import make_storage

    space = load_search_space(space_name)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params = []
    while len(params) < trials:
        trial = sampler.ask()
        try:
            space.suggest(trial)
        except SpecError:
            sampler.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        sampler.tell(trial, 0.0)
        params.append(trial.params)
    study = optuna.create_study(study_name="bench", storage=make_storage(url),
                                direction="maximize")
    for p in params:
        study.enqueue_trial(p)


def search_command(args: argparse.Namespace, folder: Path, jobs: int, trials: int,
                   threads: int | None, samples: int) -> list[str]:
    """The ``nas-mnist search`` command line of one measured search in ``folder``."""
    command = [sys.executable, "-m", "nas_mnist", "search", "--jobs", str(jobs), "--trials",
               str(trials), "--epochs", str(args.epochs), "--max-train-samples", str(samples),
               "--data", str(args.data), "--space", args.space, "--storage",
               f"journal:///{folder / 's.log'}", "--study-name", "bench", "--baselines",
               "none", "--pruner", "none", "--tracking-uri", f"sqlite:///{folder / 'm.db'}",
               "--no-progress", "--trials-per-worker", str(args.trials_per_worker)]
    return command + (["--worker-threads", str(threads)] if threads else [])


def run_search(command: list[str], sample_memory: bool = False) -> tuple[float, dict]:
    """Run ``command``; its wall seconds and, with ``sample_memory``, its and its workers'
    resident memory in MiB sampled every 0.2 s. Raises SystemExit when the search fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    memory: dict = {"search": [], "workers": {}, "search_at_first_worker": None}
    while process.poll() is None:
        if sample_memory:
            own = rss_mib(process.pid)
            memory["search"].append((time.perf_counter() - start, own))
            workers = children(process.pid)
            if workers and memory["search_at_first_worker"] is None:
                memory["search_at_first_worker"] = own
            for child in workers:
                value = rss_mib(child)
                if value is not None:
                    memory["workers"].setdefault(child, []).append(value)
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"search failed ({process.returncode}): {process.stderr.read()[-3000:]}")
    return seconds, memory


def worker_startup_seconds(data: str, repeats: int = 3) -> list[float]:
    """Seconds from ``Process.start()`` (spawn) until a child has imported what a worker
    imports and loaded ``data``, ``repeats`` times."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        process = context.Process(target=_start_like_a_worker, args=(data,))
        process.start()
        process.join()
        times.append(time.perf_counter() - start)
    return times


def _start_like_a_worker(data: str) -> None:
    from nas_mnist.data import load_splits
    from nas_mnist.model.devices import configure_devices
    from nas_mnist.tracking.tracker import Tracker  # noqa: F401 - MLflow, as a worker imports

    configure_devices()
    load_splits(data, None, 0)


def main() -> None:
    """Measure what ``--skip`` leaves; print each figure as it comes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--space", default="small_cnn")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials-per-worker", type=int, default=4)
    parser.add_argument("--memory-trials", type=int, default=30)
    parser.add_argument("--modes", default="1,2,2t1",
                        help="jobs per mode; 't1' appends --worker-threads 1")
    parser.add_argument("--skip", default="", help="comma list of: throughput,memory,startup")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "startup" not in skip:
        times = worker_startup_seconds(args.data)
        print(f"worker start-up (spawn, import, full data): {', '.join(f'{t:.1f}' for t in times)}"
              f" s; median {statistics.median(times):.1f} s", flush=True)
    if "throughput" not in skip:
        modes = args.modes.split(",")
        results: dict[str, list[float]] = {m: [] for m in modes}
        for repeat in range(args.repeats):
            for mode in (modes if repeat % 2 == 0 else modes[::-1]):
                jobs, _, threads = mode.partition("t")
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    enqueued_study(f"journal:///{folder / 's.log'}", args.space, args.trials, 0)
                    seconds, _ = run_search(search_command(
                        args, folder, int(jobs), args.trials, int(threads) if threads else None,
                        args.samples))
                per_hour = args.trials * 3600 / seconds
                results[mode].append(per_hour)
                print(f"repeat {repeat} mode {mode}: {seconds:.1f} s, {per_hour:.0f} trials/h",
                      flush=True)
        base = statistics.median(results[modes[0]])
        for mode in modes:
            median = statistics.median(results[mode])
            print(f"mode {mode}: median {median:.0f} trials/h, ratio to {modes[0]}: "
                  f"{median / base:.2f}x", flush=True)
    if "memory" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            enqueued_study(f"journal:///{folder / 's.log'}", args.space, args.memory_trials, 1)
            seconds, memory = run_search(search_command(
                args, folder, 2, args.memory_trials, None, 1000), sample_memory=True)
        search = [m for _, m in memory["search"] if m is not None]
        # the search's RSS when its first worker appeared (its own start-up done), and at the end
        start = memory["search_at_first_worker"] or search[0]
        print(f"memory over {args.memory_trials} trials ({seconds:.0f} s): search process "
              f"{start:.0f} MiB when the first worker started, max {max(search):.0f}, last "
              f"{search[-1]:.0f} MiB (growth {search[-1] - start:+.0f} MiB)", flush=True)
        peaks = [max(v) for v in memory["workers"].values()]
        if peaks:
            print(f"{len(peaks)} worker processes: peak RSS median {statistics.median(peaks):.0f}"
                  f" MiB, max {max(peaks):.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
