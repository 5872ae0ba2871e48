"""SearchSettings: one validation for the Python API and the CLI."""

from __future__ import annotations

import pytest

import nas_mnist
from nas_mnist.searching.settings import SearchSettings


def test_defaults_match_the_documented_cli_defaults():
    settings = SearchSettings()
    assert (settings.trials, settings.epochs, settings.seed) == (100, 15, 0)
    assert settings.storage == "sqlite:///nas_mnist.db" and settings.study_name == "nas-mnist"
    assert settings.objectives == ("val_accuracy",) and settings.resolved_pruner == "median"
    assert SearchSettings(objective="val_accuracy,params").resolved_pruner == "none"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trials": 0}, "--trials: expected a positive integer (>= 1), got 0"),
    ({"epochs": 1.5}, "--epochs: expected an integer, got 1.5"),
    ({"max_train_samples": -3}, "--max-train-samples: expected a positive integer"),
    ({"timeout": 0}, "--timeout: expected a positive number of seconds"),
    ({"sampler": "cmaes"}, "--sampler: unknown sampler 'cmaes'; choose from tpe, random"),
    ({"objective": "size"}, "--objective: unknown objective size"),
    ({"objective": "val_accuracy,params", "pruner": "median"}, "cannot prune"),
    ({"engine": "keras-tuner", "sampler": "random"}, "--engine keras-tuner takes --tuner"),
    ({"trails": 3}, "unknown search setting(s) trails"),
])
def test_bad_settings_raise_input_error_naming_the_flag(kwargs, message):
    with pytest.raises(nas_mnist.InputError) as raised:
        SearchSettings.from_mapping(kwargs)
    assert message in str(raised.value)


def test_search_validates_before_creating_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nas_mnist.InputError, match="--trials"):
        nas_mnist.search(trials=0, storage="sqlite:///s.db", tracking_uri="sqlite:///m.db")
    with pytest.raises(nas_mnist.InputError, match="missing.npz"):
        nas_mnist.search(trials=1, data="missing.npz", storage="sqlite:///s.db",
                         tracking_uri="sqlite:///m.db")
    with pytest.raises(nas_mnist.InputError, match="--baselines"):
        nas_mnist.search(baselines="s999_m1", storage="sqlite:///s.db")
    assert list(tmp_path.iterdir()) == []
