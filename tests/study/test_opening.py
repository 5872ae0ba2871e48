"""Opening and resuming studies (SQLite in a temporary folder, no training)."""

from __future__ import annotations

import pytest

from nas_mnist.study.opening import open_study
from nas_mnist.study.storage import StorageError, load_existing_study, validate_storage_url


def test_a_study_is_created_once_and_then_resumed(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study, created = open_study(url, "demo", seed=0)
    assert created and study.user_attrs["objective"] == ["val_accuracy"]
    again, created_again = open_study(url, "demo", seed=0)
    assert not created_again and again._study_id == study._study_id


def test_resuming_with_other_objectives_is_refused_with_the_way_out(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, "demo", objectives=("val_accuracy", "params"), pruner="none")
    with pytest.raises(StorageError, match="optimizes val_accuracy,params, not val_accuracy"):
        open_study(url, "demo")


def test_a_multi_objective_study_cannot_have_a_pruner(tmp_path):
    with pytest.raises(ValueError, match="cannot prune"):
        open_study(f"sqlite:///{tmp_path / 's.db'}", "demo",
                   objectives=("val_accuracy", "params"), pruner="median")
    assert not (tmp_path / "s.db").exists()


def test_load_existing_study_names_the_studies_that_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, "alpha")
    with pytest.raises(StorageError, match="studies there: alpha"):
        load_existing_study(url, "beta")


@pytest.mark.parametrize(("url", "message"), [
    ("redis://localhost/0", "unknown storage scheme 'redis'"),
    ("sqlite://", "in-memory SQLite database"),
    ("sqlite:////no/such/folder/s.db", "does not exist"),
])
def test_bad_storage_urls_are_refused(url, message):
    with pytest.raises(StorageError, match=message):
        validate_storage_url(url)
