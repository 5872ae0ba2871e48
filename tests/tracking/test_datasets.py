"""The data of a search is the MLflow dataset input of its parent and trial runs; runs carry a
description."""

from __future__ import annotations

import json

from nas_mnist.data import KERAS_SOURCE, data_fingerprint
from nas_mnist.tracking.datasets import (
    KERAS_MNIST_SHA256,
    KERAS_MNIST_URL,
    log_dataset,
    mnist_dataset,
)
from nas_mnist.tracking.tracker import StudyRuns, Tracker


def test_trial_runs_name_the_data_file_and_its_sha256(tmp_path, real_mnist_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    fingerprint = data_fingerprint(real_mnist_path)
    dataset = mnist_dataset(fingerprint.source, fingerprint.sha256)
    runs = StudyRuns(tracker, tracker.experiment_id("demo"), None, dataset)
    run_id = runs.start_trial_run(0, "demo")
    log_dataset(tracker.client, run_id, dataset)  # a resumed search logs it again: still one
    inputs = tracker.client.get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    logged = inputs[0]
    assert logged.dataset.name == "mnist"
    assert logged.dataset.digest == fingerprint.sha256[:16]
    assert json.loads(logged.dataset.source) == {"uri": real_mnist_path.resolve().as_uri()}
    assert [(t.key, t.value) for t in logged.tags] == [("mlflow.data.context", "training")]
    # Without a dataset, no input.
    bare = StudyRuns(tracker, tracker.experiment_id("demo")).start_trial_run(1, "demo")
    assert tracker.client.get_run(bare).inputs.dataset_inputs == []


def test_keras_download_is_named_by_its_url_and_the_sha256_keras_checks():
    dataset = mnist_dataset(KERAS_SOURCE, None)
    assert json.loads(dataset.source.to_json()) == {"url": KERAS_MNIST_URL}
    assert dataset.digest == KERAS_MNIST_SHA256[:16]


def test_runs_carry_a_description_the_mlflow_ui_shows(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id, parent = tracker.create_parent_run("demo")
    runs = StudyRuns(tracker, experiment_id, parent)
    seed = runs.start_trial_run(0, "demo", tags={"baseline": "s002_m9"})
    sampled = runs.start_trial_run(1, "demo")
    notes = {run_id: tracker.client.get_run(run_id).data.tags["mlflow.note.content"]
             for run_id in (parent, seed, sampled)}
    assert notes[parent].startswith("nas-mnist study 'demo'")
    assert notes[seed] == "trial 0 of nas-mnist study 'demo': the hand-built baseline s002_m9"
    assert notes[sampled] == "trial 1 of nas-mnist study 'demo'"
