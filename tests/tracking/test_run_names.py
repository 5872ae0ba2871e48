"""Issue 20: a trial run that did not complete says so in its name (the runs table shows a
pruned run FINISHED, as it ran correctly)."""

from __future__ import annotations

import pytest

from nas_mnist.tracking.tracker import Tracker


@pytest.mark.parametrize("state, name, status", [
    ("complete", "trial-0003", "FINISHED"),
    ("pruned", "trial-0003 (pruned)", "FINISHED"),
    ("failed", "trial-0003 (failed)", "FAILED"),
    ("killed", "trial-0003 (killed)", "KILLED"),
])
def test_a_closed_trial_run_names_its_state_once(tmp_path, state, name, status):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = tracker.experiment_id("demo")
    run_id = tracker.start_trial_run(experiment_id, None, 3, "demo")
    tracker.end_trial_run(run_id, state, "why")
    tracker.end_trial_run(run_id, state, "why")  # closed again, e.g. by the next search
    run = tracker.client.get_run(run_id)
    assert run.info.run_name == name and run.info.status == status
    assert run.data.tags["state"] == state
