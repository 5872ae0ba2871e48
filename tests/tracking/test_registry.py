"""The Model Registry aliases of a study (``nas_mnist.tracking.registry``)."""

from __future__ import annotations

import keras
import pytest

from nas_mnist.tracking.models import log_trial_model
from nas_mnist.tracking.registry import (
    CHAMPION_ALIAS,
    ENSEMBLE_ALIAS,
    IDENTITY_TAG,
    aliased_version,
    register_alias,
)
from nas_mnist.tracking.tracker import Tracker


def _model() -> keras.Model:
    image = keras.Input((28, 28, 1), name="image")
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(image))
    return keras.Model(image, out)


@pytest.fixture
def logged(tmp_path):
    """A tracker on a fresh SQLite store and a function that logs a tiny model from a new run."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = tracker.experiment_id("demo")

    def log() -> tuple[str, str]:
        run_id = tracker.client.create_run(experiment).info.run_id
        return log_trial_model(_model(), tracker.tracking_uri, run_id), run_id

    return tracker, log


def test_a_new_version_only_when_the_identity_changes(logged):
    tracker, log = logged
    assert aliased_version(tracker, "demo", CHAMPION_ALIAS) is None  # no registered model yet
    uri, run_id = log()
    first = register_alias(tracker, "demo", CHAMPION_ALIAS, uri, run_id, identity=uri)
    assert (first.version, first.created, first.uri) == ("1", True, "models:/demo@champion")
    again = register_alias(tracker, "demo", CHAMPION_ALIAS, uri, run_id, identity=uri)
    assert (again.version, again.created) == ("1", False)
    other, other_run = log()
    moved = register_alias(tracker, "demo", CHAMPION_ALIAS, other, other_run, identity=other,
                           tags={"final_key": "trial:3/seed:0"})
    assert (moved.version, moved.created) == ("2", True)
    version = aliased_version(tracker, "demo", CHAMPION_ALIAS)
    assert version.source == other and version.tags[IDENTITY_TAG] == other
    assert version.tags["final_key"] == "trial:3/seed:0"


def test_champion_and_ensemble_are_two_aliases_of_one_registered_model(logged):
    tracker, log = logged
    uri, run_id = log()
    register_alias(tracker, "demo", CHAMPION_ALIAS, uri, run_id, identity=uri)
    ensemble_uri, ensemble_run = log()
    register_alias(tracker, "demo", ENSEMBLE_ALIAS, ensemble_uri, ensemble_run, identity="a,b")
    assert aliased_version(tracker, "demo", CHAMPION_ALIAS).source == uri
    assert aliased_version(tracker, "demo", ENSEMBLE_ALIAS).source == ensemble_uri
