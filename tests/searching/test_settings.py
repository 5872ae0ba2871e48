"""SearchSettings: one validation for the Python API and the CLI."""

from __future__ import annotations

import dataclasses

import pytest

import nas_mnist
from nas_mnist.errors import InputError
from nas_mnist.searching.settings import SearchSettings, check_resumed_fidelity


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


def study_searched_with(epochs: int, max_train_samples: int | None, finished: int = 1):
    """An in-memory study whose latest search recorded this fidelity, with ``finished``
    complete trials."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from nas_mnist.trial_attributes import SETTINGS_ATTR

    study = optuna.create_study(study_name="demo", direction="maximize")
    study.set_user_attr(SETTINGS_ATTR, {"epochs": epochs, "max_train_samples": max_train_samples})
    for _ in range(finished):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.98))
    return study


@pytest.mark.parametrize("now", [{"epochs": 15}, {"epochs": 3},
                                 {"epochs": 3, "max_train_samples": 2000}])
def test_resuming_at_another_fidelity_is_refused_in_one_line_naming_both_and_the_flag(now):
    study = study_searched_with(3, 10_000)
    settings = SearchSettings(study_name="demo", **now)
    with pytest.raises(nas_mnist.InputError) as raised:
        check_resumed_fidelity(settings, study)
    message = str(raised.value)
    assert "\n" not in message and "--allow-mixed-fidelity" in message
    assert "trained with --epochs 3, --max-train-samples 10000" in message
    assert "not comparable" in message
    allowed = dataclasses.replace(settings, allow_mixed_fidelity=True)
    assert "going on" in check_resumed_fidelity(allowed, study)


def test_the_same_fidelity_or_a_study_without_finished_trials_or_record_goes_on():
    same = SearchSettings(study_name="demo", epochs=3, max_train_samples=10_000)
    assert check_resumed_fidelity(same, study_searched_with(3, 10_000)) is None
    other = SearchSettings(study_name="demo", epochs=15)
    assert check_resumed_fidelity(other, study_searched_with(3, 10_000, finished=0)) is None
    unrecorded = study_searched_with(3, 10_000)
    unrecorded.set_user_attr("search_settings", {})
    assert check_resumed_fidelity(other, unrecorded) is None


def test_the_final_stage_runs_by_default_only_on_all_training_images_and_one_objective():
    assert SearchSettings().resolved_final_top_k == 3
    assert SearchSettings(max_train_samples=1000).resolved_final_top_k == 0
    assert SearchSettings(max_train_samples=1000, final_top_k=1).resolved_final_top_k == 1
    assert SearchSettings(objective="val_accuracy,params").resolved_final_top_k == 0
    assert SearchSettings(engine="keras-tuner").resolved_final_top_k == 0
    with pytest.raises(InputError, match="--final-top-k"):
        SearchSettings(objective="val_accuracy,params", final_top_k=2)
    with pytest.raises(InputError, match="--final-epochs"):
        SearchSettings(final_epochs=0)
