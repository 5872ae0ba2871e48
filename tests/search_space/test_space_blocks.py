"""Tests for the blocks layout (nas_mnist.search_space.blocks) and the baselines inside the
default space."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import FixedTrial

from nas_mnist.architecture.baselines import BASELINES, get_baseline
from nas_mnist.architecture.spec import (
    ArchitectureSpec,
    Augmentation,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Initializer,
    MaxPool,
    OptimizerSpec,
    SpecError,
)
from nas_mnist.search_space.space import load_search_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---------------------------------------------------------------------------------------------
# The blocks layout (the default space) and the baselines inside it
# ---------------------------------------------------------------------------------------------

# The seed CNNs (every baseline but notebook 004's three dense-only models).
SEED_CNNS = tuple(b for b in BASELINES if b.spec.depth > 0)


def block_params(**overrides) -> dict:
    """A FixedTrial parameter set for the default space: 2 blocks, 1 dense layer, adam tf1."""
    params = {
        "kernel_initializer": "he_normal", "bias_initializer": "zeros",
        "output_kernel_initializer": "glorot_normal",
        "num_blocks": 2,
        "block1_num_convs": 1, "block1_strides": 2,
        "block1_conv1_filters": 16, "block1_conv1_kernel_size": 5, "block1_conv1_padding": "same",
        "block1_pool": "none", "block1_batch_norm": True, "block1_dropout": 0.0,
        "block2_num_convs": 2, "block2_strides": 1,
        "block2_conv1_filters": 32, "block2_conv1_kernel_size": 3, "block2_conv1_padding": "valid",
        "block2_conv2_filters": 48, "block2_conv2_kernel_size": 2, "block2_conv2_padding": "same",
        "block2_pool": "same", "block2_pool_strides": 1, "block2_batch_norm": False,
        "block2_dropout": 0.35,
        "dense_input_dropout": 0.5, "dense_num_layers": 1, "dense1_units": 100,
        "dense_batch_norm": True, "dense_dropout": 0.25,
        "optimizer": "adam", "learning_rate_adam": 0.002, "adam_variant": "tf1",
        "batch_size": 100,
        "augmentation_translation": 0.1, "augmentation_rotation": 0.0, "augmentation_zoom": 0.0,
        "lr_schedule": "cosine", "label_smoothing": 0.1,
    }
    params.update(overrides)
    return params


def test_blocks_fixed_trial_yields_exactly_the_expected_spec(default_space):
    spec = default_space.suggest(FixedTrial(block_params()))

    he = {"kernel_initializer": "he_normal"}
    expected = ArchitectureSpec(
        layers=(
            Conv(16, 5, strides=2, padding="same", **he), BatchNorm(),
            Conv(32, 3, padding="valid", **he), Conv(48, 2, padding="same", **he),
            MaxPool(2, strides=1, padding="same"), Dropout(0.35),
            Flatten(), Dropout(0.5), Dense(100, **he), BatchNorm(), Dropout(0.25),
        ),
        optimizer=OptimizerSpec("adam", 0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
        batch_size=100,
        output=Dense(10, activation="softmax", kernel_initializer="glorot_normal"),
        augmentation=Augmentation(translation=0.1),
        lr_schedule="cosine",
        label_smoothing=0.1,
    )
    assert spec == expected
    # 28 -same, stride 2-> 14 -valid 3x3-> 12 -same-> 12 -pool same, stride 1-> 12
    assert [row.shape for row in spec.shape_table() if len(row.shape) == 3][-1] == (12, 12, 48)
    # The sampled params read back off the spec are the ones given.
    assert default_space.params_for_spec(spec) == block_params()


def test_blocks_initializers_with_arguments_and_no_pool(default_space):
    params = block_params(kernel_initializer="truncated_normal(mean=0, stddev=0.01)",
                          bias_initializer="constant(value=0.1)", num_blocks=1,
                          dense_num_layers=0, dense_input_dropout=0.0, adam_variant="keras")
    spec = default_space.suggest(FixedTrial(params))
    conv = spec.conv_layers[0]
    assert conv.kernel_initializer == Initializer("truncated_normal", (("mean", 0), ("stddev", 0.01)))
    assert conv.bias_initializer == Initializer("constant", (("value", 0.1),))
    assert [layer.type for layer in spec.layers] == ["conv", "batch_norm", "flatten"]
    assert spec.optimizer == OptimizerSpec("adam", 0.002)


@pytest.mark.parametrize("baseline", SEED_CNNS, ids=lambda b: b.name)
def test_each_seed_cnn_is_an_exact_point_of_the_default_space(default_space, baseline):
    params = default_space.params_for_spec(baseline.spec)
    if baseline.name == "s002_m10":  # parallel branches: not a stack of blocks
        assert params is None
        return
    assert params is not None
    # A FixedTrial on the params rebuilds the catalog spec, with its documented parameter count.
    spec = default_space.suggest(FixedTrial(params))
    assert spec == baseline.spec
    assert spec.num_params == baseline.documented_params
    assert spec.spec_id == baseline.spec.spec_id
    # So does a study trial enqueued with them (as seeding does): Optuna accepts every value
    # (none is resampled) and the trial records exactly these params.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    trial = study.ask()
    assert default_space.suggest(trial) == baseline.spec
    assert trial.params == params


def test_at_least_19_seed_cnns_are_in_the_default_space(default_space):
    inside = [b.name for b in SEED_CNNS if default_space.params_for_spec(b.spec) is not None]
    assert len(SEED_CNNS) == 21 and len(inside) >= 19
    assert set(inside) == {b.name for b in SEED_CNNS} - {"s002_m10"}
    # The dense-only models of notebook 004 are outside (a block has at least one conv).
    assert not [b for b in BASELINES if b.spec.depth == 0
                and default_space.params_for_spec(b.spec) is not None]


def test_a_baseline_off_the_choices_is_outside(default_space):
    spec = get_baseline("s003_m1").spec
    assert default_space.params_for_spec(spec) is not None
    import dataclasses
    assert default_space.params_for_spec(dataclasses.replace(spec, batch_size=96)) is None
    off_step = dataclasses.replace(spec, layers=(*spec.layers[:2], Dropout(0.33),
                                                 *spec.layers[2:]))
    assert default_space.params_for_spec(off_step) is None  # 0.33 is not on the 0.05 step


def test_block_params_exist_only_for_blocks_that_exist(default_space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    blocks_seen = set()
    for _ in range(40):
        trial = study.ask()
        try:
            spec = default_space.suggest(trial)
        except SpecError:
            spec = None
        params = trial.params
        num_blocks = params["num_blocks"]
        blocks_seen.add(num_blocks)
        for b in range(1, 8):
            present = {k for k in params if k.startswith(f"block{b}_")}
            if b > num_blocks:
                assert not present, (b, num_blocks)
                continue
            assert {f"block{b}_{k}" for k in ("num_convs", "pool", "batch_norm", "dropout",
                                              "strides")} <= present
            assert (f"block{b}_pool_strides" in params) == (params[f"block{b}_pool"] != "none")
            assert (f"block{b}_conv2_filters" in params) == (params[f"block{b}_num_convs"] == 2)
        num_dense = params["dense_num_layers"]
        assert ("dense_dropout" in params) == (num_dense > 0)
        assert {k for k in params if k.endswith("_units")} == {
            f"dense{j}_units" for j in range(1, num_dense + 1)}
        assert ("adam_variant" in params) == (params["optimizer"] == "adam")
        if spec is not None:
            assert len([x for x in spec.layers if isinstance(x, MaxPool)]) == sum(
                params[f"block{b}_pool"] != "none" for b in range(1, num_blocks + 1))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert len(blocks_seen) >= 4


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.TPESampler(seed=0, n_startup_trials=10), optuna.samplers.RandomSampler(seed=0)],
    ids=["tpe", "random"],
)
def test_every_sampled_default_spec_is_a_point_the_space_recognises(default_space, sampler):
    study = optuna.create_study(direction="maximize", sampler=sampler)
    num_specs = 0
    for _ in range(40):
        trial = study.ask()
        try:
            spec = default_space.suggest(trial)
        except SpecError as exc:
            assert "reduces the feature map to 0x0" in str(exc)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        params = default_space.params_for_spec(spec)
        assert params is not None and default_space.suggest(FixedTrial(params)) == spec
        assert 4 <= min(c.filters for c in spec.conv_layers)
        assert max(c.filters for c in spec.conv_layers) <= 512
        assert spec.lr_schedule in ("constant", "cosine", "reduce_on_plateau")
        study.tell(trial, -math.log10(spec.num_params))
        num_specs += 1
    assert num_specs >= 10


def test_a_sampled_dropout_reaches_the_spec_as_the_grid_number():
    space = load_search_space(None)
    noisy = 0.30000000000000004  # what Optuna's low + k * step gives for 0 + 6 * 0.05
    spec = space.suggest(FixedTrial(block_params(block2_dropout=noisy)))
    rates = [layer.rate for layer in spec.layers if isinstance(layer, Dropout)]
    assert 0.3 in rates and noisy not in rates
