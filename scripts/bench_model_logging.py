"""A/B: a trial's kept model as a plain artifact (before) vs an MLflow keras model (now).

Usage: ``python scripts/bench_model_logging.py BASELINE`` (e.g. s000_m1; writes ``m.db`` and
``mlruns/`` in the current folder). Prints the baseline, its parameter count and, for each way,
the median and fastest seconds per trial over 6 timed rounds (one warm-up round first).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    """Time both ways of logging the baseline's model; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="a baseline's name (nas-mnist baselines), e.g. s000_m1")
    baseline = parser.parse_args().baseline

    from nas_mnist.cli.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from nas_mnist.architecture.baselines import get_baseline
    from nas_mnist.model.builder import build_model
    from nas_mnist.tracking.models import log_trial_model
    from nas_mnist.tracking.tracker import Tracker

    tracker = Tracker(f"sqlite:///{Path.cwd()}/m.db")
    experiment = tracker.experiment_id("bench-model-logging")
    model = build_model(get_baseline(baseline).spec)

    def before(run_id: str) -> None:  # model.keras as a plain run artifact
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            tracker.log_artifact(run_id, str(path), "model")

    def now(run_id: str) -> None:  # an MLflow model linked to the run
        log_trial_model(model, tracker.tracking_uri, run_id, step=0)

    times: dict[str, list[float]] = {"before": [], "now": []}
    for round_number in range(7):
        for name, log in (("before", before), ("now", now)):
            run_id = tracker.client.create_run(experiment).info.run_id
            tracker.log_metrics(run_id, {"val_accuracy": 0.9, "loss": 0.1}, step=0)
            start = time.perf_counter()
            log(run_id)
            if round_number:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    print(baseline, model.count_params(),
          {k: (round(statistics.median(v), 3), round(min(v), 3)) for k, v in times.items()})


if __name__ == "__main__":
    main()
