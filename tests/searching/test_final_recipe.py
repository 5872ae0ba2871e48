"""The final recipe (what a final model adds to its spec) and the checks of ``RetrainSettings``."""

from __future__ import annotations

import dataclasses

import pytest

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.architecture.spec import Augmentation
from nas_mnist.errors import InputError
from nas_mnist.searching.final.recipe import (
    FINAL_AUGMENTATION,
    FinalRecipe,
    recipe_differences,
)
from nas_mnist.searching.final.settings import RetrainSettings, parse_final_baselines

SPEC = get_baseline("s001_m2").spec  # constant learning_rate, no augmentation


def test_recipe_adds_augmentation_and_cosine_and_keeps_the_specs_own_choices():
    final = FinalRecipe(epochs=5).apply(SPEC)
    assert final.augmentation == FINAL_AUGMENTATION == Augmentation(0.1, 0.05, 0.1)
    assert final.lr_schedule == "cosine"
    assert (final.layers, final.optimizer, final.batch_size) == (SPEC.layers, SPEC.optimizer,
                                                                  SPEC.batch_size)


def test_each_part_of_the_recipe_switches_off():
    assert FinalRecipe(augmentation=False, cosine=False).apply(SPEC) == SPEC
    assert FinalRecipe(augmentation=False).apply(SPEC).augmentation == Augmentation()
    assert FinalRecipe(cosine=False).apply(SPEC).lr_schedule == "constant"


def test_a_spec_with_its_own_augmentation_or_schedule_keeps_them():
    own = dataclasses.replace(SPEC, augmentation=Augmentation(rotation=0.2),
                              lr_schedule="reduce_on_plateau")
    final = FinalRecipe().apply(own)
    assert final.augmentation == Augmentation(rotation=0.2)
    assert final.lr_schedule == "reduce_on_plateau"


def test_the_searchs_batch_size_is_part_of_the_final_spec():
    assert FinalRecipe(batch_size=64).apply(SPEC).batch_size == 64


def test_recipe_record_and_differences():
    record = FinalRecipe(epochs=3, max_train_samples=300).record(300)
    assert record["epochs"] == 3 and record["num_train_images"] == 300
    assert record["augmentation_factors"] == {"translation": 0.1, "rotation": 0.05, "zoom": 0.1}
    assert recipe_differences(record, FinalRecipe(epochs=3, max_train_samples=300).to_dict()) == {}
    assert recipe_differences(record, FinalRecipe(epochs=4, max_train_samples=300).to_dict()) == {
        "epochs": (3, 4)}


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("top_k", 0, "--top-k"), ("epochs", 0, "--epochs"), ("seeds", 0, "--seeds"),
    ("max_train_samples", 0, "--max-train-samples"), ("top_k", True, "--top-k"),
    ("seed", -1, "--seed"),
])
def test_bad_numbers_are_refused_naming_the_flag(field, value, flag):
    with pytest.raises(InputError, match=flag):
        RetrainSettings(**{field: value})


def test_jobs_above_one_is_refused_with_what_to_do_instead():
    with pytest.raises(InputError, match="--jobs 2: retrain trains one final model at a time"):
        RetrainSettings(jobs=2)


def test_baselines_choices():
    assert parse_final_baselines(None) == (True, ())
    assert parse_final_baselines("auto") == (True, ())
    assert parse_final_baselines("none") == (False, ())
    assert parse_final_baselines("s002_m9, s001_m1") == (True, ("s002_m9", "s001_m1"))
    with pytest.raises(InputError, match="unknown baseline 's999'"):
        RetrainSettings(baselines="s999")


def test_settings_make_the_recipe():
    recipe = RetrainSettings(epochs=7, cosine=False, seed=3).recipe(batch_size=32)
    assert recipe == FinalRecipe(epochs=7, augmentation=True, cosine=False, batch_size=32, seed=3)
