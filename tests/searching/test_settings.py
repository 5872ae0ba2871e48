"""SearchSettings: one validation for the Python API and the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import nas_mnist
from nas_mnist.errors import InputError
from nas_mnist.searching.settings import (
    SearchSettings,
    check_gpu_ids,
    check_resumed_fidelity,
    check_resumed_space,
    validate_search_settings,
)


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
    ({"max_mflops": 0}, "--max-mflops: expected a positive integer (>= 1), got 0"),
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


def study_searched_in(space: object, trials: int = 1):
    """An in-memory study whose latest search recorded ``space`` (as ``--space`` takes it),
    with ``trials`` complete trials."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from nas_mnist.data import KERAS_SOURCE, DataFingerprint
    from nas_mnist.study.memory import remember_search

    study = optuna.create_study(study_name="demo", direction="maximize")
    remember_search(study, SearchSettings(space=space), DataFingerprint(KERAS_SOURCE, None))
    for _ in range(trials):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.98))
    return study


def test_resuming_in_another_space_is_refused_in_one_line_naming_the_study_and_the_flag(
        tmp_path):
    import yaml

    from nas_mnist.search_space.space import SPACES_DIR

    edited = tmp_path / "small.yaml"
    edited.write_text((SPACES_DIR / "small_cnn.yaml").read_text())
    study = study_searched_in(edited)
    content = yaml.safe_load(edited.read_text())
    edited.write_text(yaml.safe_dump({**content, "batch_size": [32, 64]}))  # changed since
    for space in (edited, "default"):  # the file changed, or another shipped space
        settings = SearchSettings(study_name="demo", space=space)
        with pytest.raises(nas_mnist.InputError) as raised:
            check_resumed_space(settings, study)
        message = str(raised.value)
        assert "\n" not in message and message.startswith("study 'demo' was searched in")
        assert "a new --study-name" in message and "--allow-space-change" in message
        allowed = dataclasses.replace(settings, allow_space_change=True)
        assert "--allow-space-change: going on" in check_resumed_space(allowed, study)


def test_the_same_space_by_name_or_path_an_empty_or_older_study_goes_on():
    from nas_mnist.search_space.space import SPACES_DIR

    by_name = SearchSettings(study_name="demo", space="small_cnn")
    assert check_resumed_space(by_name, study_searched_in(SPACES_DIR / "small_cnn.yaml")) is None
    assert check_resumed_space(by_name, study_searched_in(None, trials=0)) is None
    older = study_searched_in(None)
    older.set_user_attr("space_sha256", None)  # a study made before the hash was recorded
    assert check_resumed_space(by_name, older) is None


def test_resuming_after_the_space_file_changed_exits_2_in_one_line_before_any_trial(
        workdir, real_mnist_path, capsys):
    """Issue 19: every trial of the resumed search failed with Optuna's "CategoricalDistribution
    does not support dynamic value space" traceback."""
    import optuna
    import yaml
    from support import SMALL_SPACE, search_args

    from nas_mnist.architecture.spec import SpecError
    from nas_mnist.cli.main import main
    from nas_mnist.data import data_fingerprint
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.study.memory import remember_search
    from nas_mnist.study.opening import open_study

    study, _ = open_study("sqlite:///s.db", "demo")  # searched before in small.yaml
    remember_search(study, SearchSettings(space="small.yaml", study_name="demo", epochs=1,
                                          max_train_samples=500),
                    data_fingerprint(real_mnist_path))
    sampled = optuna.create_study().ask()  # a trial of small.yaml, with its distributions
    try:
        load_search_space("small.yaml").suggest(sampled)
    except SpecError:  # an impossible architecture: its params are sampled all the same
        pass
    study.add_trial(optuna.trial.create_trial(params=sampled.params, value=0.9,
                                              distributions=sampled.distributions))
    changed = dict(SMALL_SPACE, conv=dict(SMALL_SPACE["conv"], filters=[4, 16]))
    Path("small.yaml").write_text(yaml.safe_dump(changed))
    capsys.readouterr()
    assert main(search_args(real_mnist_path, 3, "--space", "small.yaml", "--baselines",
                            "none")) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert err.count("\n") == 1 and line.startswith("nas-mnist search: error: study 'demo'")
    assert "a new --study-name, or --allow-space-change to go on" in line
    assert len(optuna.load_study(study_name="demo", storage="sqlite:///s.db").trials) == 1


def test_gpu_ids_without_a_gpu_behind_them_are_refused_in_one_line(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(InputError) as raised:
        check_gpu_ids(("3",), [], "tensorflow")
    assert str(raised.value) == ("--gpus 3: this machine has no GPU visible to tensorflow; drop "
                                 "--gpus to train on the CPU")
    two = ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    with pytest.raises(InputError, match=r"--gpus 0,2: no GPU 2 is visible to jax, which sees "
                                         r"2 GPU\(s\), ids 0 to 1"):
        check_gpu_ids(("0", "2"), two, "jax")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(InputError, match=r"tensorflow \(CUDA_VISIBLE_DEVICES=''\)"):
        check_gpu_ids(("0",), [], "tensorflow")
    check_gpu_ids(("1", "0", "1"), two, "tensorflow")  # several workers may share a GPU
    check_gpu_ids((), [], "tensorflow")  # no --gpus: nothing to check


def test_validation_asks_the_backend_for_its_gpus_only_when_gpus_are_given(monkeypatch,
                                                                           tmp_path):
    import nas_mnist.model.devices as devices

    monkeypatch.chdir(tmp_path)

    asked = []
    monkeypatch.setattr(devices, "visible_gpus", lambda: asked.append(1) or [])
    monkeypatch.setattr(devices, "keras_backend", lambda: "tensorflow")
    journal = "journal:///j.log"
    validate_search_settings(SearchSettings(storage="sqlite:///s.db", baselines="none"))
    assert asked == []
    with pytest.raises(InputError, match="--gpus 3: this machine has no GPU visible to"):
        validate_search_settings(SearchSettings(gpus=3, jobs=2, storage=journal,
                                                baselines="none"))
    assert asked == [1] and list(tmp_path.iterdir()) == []


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
