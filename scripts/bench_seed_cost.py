"""Measure what the seeds cost on this machine: seconds per 1,000 training images against FLOPs.

    python scripts/bench_seed_cost.py --data ../shared/data/mnist.npz
    python scripts/bench_seed_cost.py --data ../shared/data/mnist.npz --models s002_m9,s002_m1

For each baseline (default: those ``--baselines auto`` seeds into the default space), a few
training steps (its own batch size) and evaluation steps (1,024 images) are timed after one
warm-up step each (``nas_mnist.model.cost.measure_step_cost``; not whole trainings), next to its
forward FLOPs and parameters. Then the old order (strongest reported first) and the new one
(``seeding_order``) are compared: the projected minutes of the first seeds of a CPU-sized search
(``--epochs 3 --max-train-samples 10000``: per epoch 10,000 training images and 12,000 evaluated
ones, validation and precise BN, then 10,000 test images) and of the default job (15 epochs of
50,000 images), and how many seeds finish within the first hour; and the ``CostModel`` fitted
to all of them (``nas_mnist.timing.CPU_COST_MODEL``).
The load average before and after says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import time


def _old_order(baselines: list) -> list:
    """Strongest reported test accuracy first, ties to fewer parameters (the order before)."""
    return sorted(baselines, key=lambda b: (-b.reported_test_accuracy, b.documented_params))


def _minutes(order: list, costs: dict, epochs: int, samples: int) -> list[float]:
    """Cumulative projected minutes after each seed of ``order`` (its own measured costs)."""
    from nas_mnist.timing import CostModel, StageWork

    total, out = 0.0, []
    for baseline in order:
        cost = costs[baseline.name]
        model = CostModel(cost.train, 0.0, cost.evaluate, 0.0, "measured")
        total += StageWork("seed", (cost.flops,), epochs, samples, 12_000, 10_000).seconds(model)
        out.append(total / 60)
    return out


def _print_orders(baselines: list, costs: dict, budget: str, first: int) -> None:
    """The old and the new order at one budget ("EPOCHS:IMAGES")."""
    from nas_mnist.searching.baseline_trials import seeding_order

    epochs, samples = (int(v) for v in budget.split(":"))
    print(f"\n--epochs {epochs}, {samples} training images:")
    for title, order in (("old order (strongest reported first)", _old_order(baselines)),
                         ("new order (seeding_order)", list(seeding_order(baselines)))):
        cumulative = _minutes(order, costs, epochs, samples)
        within = sum(m <= 60 for m in cumulative)
        print(f"{title}: {within} seed(s) within the first hour, all {len(order)} in "
              f"{cumulative[-1]:.0f} min")
        for baseline, minutes in list(zip(order, cumulative, strict=True))[:first]:
            print(f"  {baseline.name:10s} {baseline.reported_test_accuracy:.4f}  done at "
                  f"{minutes:6.1f} min")


def _measure(baselines: list, data: object, args: argparse.Namespace) -> dict:
    """The fastest of ``--repeats`` rounds of ``measure_step_cost`` per baseline, printed."""
    from nas_mnist.model.cost import measure_step_cost
    from nas_mnist.model.training import release_memory

    best: dict = {}
    for _ in range(args.repeats):  # rounds over all models, so that a busy moment hits each once
        for b in baselines:
            cost = measure_step_cost(b.spec, data.x_val, data.y_val, steps=args.steps,
                                     eval_batch_size=args.eval_batch_size)
            release_memory()  # Keras' global state would keep every model
            old = best.get(b.name)
            best[b.name] = cost if old is None else type(cost)(
                cost.flops, min(cost.train, old.train), min(cost.evaluate, old.evaluate))
    print(f"{'model':10s} {'reported':>8s} {'params':>11s} {'MFLOPs':>8s} "
          f"{'train s/1000':>12s} {'eval s/1000':>11s}")
    for b in baselines:
        cost = best[b.name]
        print(f"{b.name:10s} {b.reported_test_accuracy:8.4f} {b.spec.num_params:11,d} "
              f"{cost.flops / 1e6:8.1f} {cost.train * 1000:12.3f} {cost.evaluate * 1000:11.3f}")
    return best


def main() -> int:
    """Time each seed's steps; compare the first seeds of the old and new orders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: $NAS_MNIST_DATA)")
    parser.add_argument("--models", help="baselines, comma-separated (default: auto's seeds)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the fastest counts")
    parser.add_argument("--eval-batch-size", type=int, default=1024, help="default 1024")
    parser.add_argument("--budgets", default="3:10000,15:50000",
                        help="EPOCHS:IMAGES of the searches to project (default: the CPU-sized "
                        "and the default job)")
    parser.add_argument("--first", type=int, default=6, help="seeds shown per order (default 6)")
    args = parser.parse_args()

    from nas_mnist.architecture.baselines import select_baselines
    from nas_mnist.data import load_splits
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.searching.baseline_trials import seeding_plan
    from nas_mnist.timing import CostModel

    if args.models:
        baselines = list(select_baselines(args.models))
    else:
        space = load_search_space(None)
        baselines = [b for b in seeding_plan("auto").baselines
                     if space.params_for_spec(b.spec) is not None]
    data = load_splits(args.data, max_train_samples=1_000)
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    start = time.perf_counter()
    costs = _measure(baselines, data, args)
    print(f"measured in {time.perf_counter() - start:.0f} s; load average after: "
          f"{os.getloadavg()}")
    fitted = CostModel.fit([(c.flops, c.train, c.evaluate) for c in costs.values()], "fit")
    print(f"fitted: {fitted}")
    for budget in args.budgets.split(","):
        _print_orders(baselines, costs, budget, args.first)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
