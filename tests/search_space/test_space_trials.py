"""Tests for nas_mnist.search_space.trials: the SuggestingTrial protocol and the stand-in trials."""

from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.trial import FixedTrial

from nas_mnist.search_space.space import SuggestingTrial, load_search_space
from nas_mnist.search_space.trials import CheckingTrial, LeastShrinkingTrial

METHODS = ("suggest_categorical", "suggest_int", "suggest_float")
STAND_INS = (CheckingTrial, LeastShrinkingTrial)


def _signature(function) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter: what a caller may pass and how."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("cls", (SuggestingTrial, *STAND_INS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_the_protocol_and_the_stand_ins_take_optunas_arguments(cls, method):
    assert _signature(getattr(cls, method)) == _signature(getattr(optuna.Trial, method))


def test_optuna_trials_and_the_stand_ins_are_suggesting_trials():
    study = optuna.create_study()
    for trial in (study.ask(), FixedTrial({}), CheckingTrial({}), LeastShrinkingTrial()):
        assert isinstance(trial, SuggestingTrial), type(trial)
    assert not isinstance(object(), SuggestingTrial)


def test_checking_trial_notes_values_outside_what_was_asked():
    trial = CheckingTrial({"flag": False, "n": 5, "x": 0.3, "y": 0.33, "unused": 1})
    assert trial.suggest_categorical("flag", [False, True]) is False and not trial.outside
    assert trial.suggest_int("n", 1, 9, step=2) == 5 and not trial.outside
    assert trial.suggest_float("x", 0.0, 0.5, step=0.05) == 0.3 and not trial.outside
    assert trial.used == {"flag": False, "n": 5, "x": 0.3}
    trial.suggest_float("y", 0.0, 0.5, step=0.05)  # 0.33 is off the 0.05 grid
    assert trial.outside
    # A flag is not a number, although False == 0 in Python.
    number = CheckingTrial({"flag": False})
    number.suggest_categorical("flag", [0, 1])
    assert number.outside
    off_step = CheckingTrial({"n": 4})
    off_step.suggest_int("n", 1, 9, step=2)
    assert off_step.outside
    with pytest.raises(KeyError):
        trial.suggest_int("missing", 0, 1)


def test_least_shrinking_trial_picks_the_choices_that_keep_the_map_largest():
    trial = LeastShrinkingTrial()
    assert trial.suggest_categorical("block2_conv1_kernel_size", [5, 2, 7]) == 2
    assert trial.suggest_categorical("pool_every", [1, 3, 2]) == 3
    assert trial.suggest_int("pool_every", 1, 6, step=2) == 5  # the highest point of the grid
    assert trial.suggest_categorical("conv1_padding", ["valid", "same"]) == "same"
    assert trial.suggest_categorical("block1_pool", ["valid", "same", "none"]) == "none"
    assert trial.suggest_categorical("optimizer", ["sgd", "adam"]) == "sgd"
    assert trial.suggest_int("num_blocks", 2, 7) == 2
    assert trial.suggest_float("block1_dropout", 0.1, 0.5, step=0.05) == 0.1


def test_a_space_samples_through_any_suggesting_trial():
    space = load_search_space("small_cnn")
    spec = space.suggest(LeastShrinkingTrial())
    params = space.params_for_spec(spec)
    assert params is not None
    checking = CheckingTrial(params)
    assert space.suggest(checking) == spec and not checking.outside
    assert checking.used == params
