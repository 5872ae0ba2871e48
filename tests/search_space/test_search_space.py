"""Tests for nas_mnist.search_space.space: loading space files and sampling specs through Optuna."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
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
from nas_mnist.search_space.space import (
    DEFAULT_SPACE_PATH,
    SearchSpace,
    SearchSpaceError,
    load_search_space,
    parse_initializer,
    search_space_from_dict,
    shipped_spaces,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


PER_LAYER_SPACE_PATH = Path(__file__).with_name("per_layer.yaml")


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return load_search_space()


@pytest.fixture(scope="module")
def per_layer_space() -> SearchSpace:
    """The per-layer layout (conv/pooling sections): the default space before the blocks layout."""
    return load_search_space(PER_LAYER_SPACE_PATH)


def default_params(**overrides) -> dict:
    """A full FixedTrial parameter set for the per-layer space: depth 3, 2 dense layers, adam."""
    params = {
        "depth": 3,
        "pool_every": 1,
        "pool_padding": "same",
        "batch_norm": "after_conv",
        "conv_dropout": 0.25,
        "dense_dropout": 0.5,
        "conv1_filters": 32, "conv1_kernel_size": 3, "conv1_padding": "same",
        "conv1_kernel_initializer": "he_normal",
        "conv2_filters": 64, "conv2_kernel_size": 5, "conv2_padding": "valid",
        "conv2_kernel_initializer": "glorot_uniform",
        "conv3_filters": 128, "conv3_kernel_size": 2, "conv3_padding": "same",
        "conv3_kernel_initializer": "glorot_uniform",
        "dense_num_layers": 2,
        "dense1_units": 256, "dense1_kernel_initializer": "glorot_uniform",
        "dense2_units": 64, "dense2_kernel_initializer": "glorot_uniform",
        "optimizer": "adam",
        "learning_rate_adam": 0.002,
        "output_kernel_initializer": "glorot_normal",
        "batch_size": 64,
    }
    params.update(overrides)
    return params


# ---------------------------------------------------------------------------------------------
# The default space
# ---------------------------------------------------------------------------------------------


def test_default_space_loads(default_space):
    assert default_space.name == "default"
    assert Path(default_space.source) == DEFAULT_SPACE_PATH
    assert DEFAULT_SPACE_PATH.name == "default.yaml" and DEFAULT_SPACE_PATH.is_file()
    assert default_space.layout == "blocks"
    assert default_space.config["blocks"]["num_blocks"] == {"low": 1, "high": 7}
    assert default_space.config["blocks"]["kernel_size"] == [2, 3, 5, 7]
    assert default_space.config["optimizer"]["name"] == ["adam", "adadelta", "sgd", "rmsprop"]
    assert load_search_space(DEFAULT_SPACE_PATH).config == default_space.config
    assert str(DEFAULT_SPACE_PATH) in default_space.describe()


def test_per_layer_space_loads(per_layer_space):
    assert per_layer_space.layout == "per_layer"
    assert per_layer_space.config["conv"]["depth"] == [3, 5, 7]
    assert per_layer_space.config["conv"]["kernel_size"] == [2, 3, 5, 7]
    assert per_layer_space.config["optimizer"]["name"] == ["adam", "adadelta", "sgd", "rmsprop"]


def test_fixed_trial_yields_exactly_the_expected_spec(per_layer_space):
    spec = per_layer_space.suggest(FixedTrial(default_params()))

    pool = MaxPool(2, padding="same")
    expected = ArchitectureSpec(
        layers=(
            Conv(32, 3, padding="same", kernel_initializer="he_normal"), BatchNorm(), pool, Dropout(0.25),
            Conv(64, 5, padding="valid"), BatchNorm(), pool, Dropout(0.25),
            Conv(128, 2, padding="same"), BatchNorm(), pool, Dropout(0.25),
            Flatten(),
            Dense(256), Dropout(0.5),
            Dense(64), Dropout(0.5),
        ),
        optimizer=OptimizerSpec("adam", 0.002),
        batch_size=64,
        output=Dense(10, activation="softmax", kernel_initializer="glorot_normal"),
    )
    assert spec == expected
    assert [layer.type for layer in spec.layers] == [
        "conv", "batch_norm", "max_pool", "dropout",
        "conv", "batch_norm", "max_pool", "dropout",
        "conv", "batch_norm", "max_pool", "dropout",
        "flatten", "dense", "dropout", "dense", "dropout",
    ]
    assert spec.optimizer == OptimizerSpec("adam", learning_rate=0.002)
    assert spec.optimizer.momentum is None
    assert spec.batch_size == 64
    # 28 -same-> 28 -pool-> 14 -valid 5x5-> 10 -pool-> 5 -same-> 5 -pool(same)-> 3
    assert [row.shape for row in spec.shape_table() if len(row.shape) == 3][-1] == (3, 3, 128)
    # Fixed leaves of the file: strides 1, relu, zeros bias.
    assert all(c.strides == 1 and c.activation == "relu" for c in spec.conv_layers)


@pytest.mark.parametrize(
    ("batch_norm", "types"),
    [
        ("none", ["conv", "conv", "max_pool", "conv", "flatten", "dense", "dense"]),
        ("after_conv", ["conv", "batch_norm", "conv", "batch_norm", "max_pool", "conv", "batch_norm",
                        "flatten", "dense", "dense"]),
        ("after_pool_block", ["conv", "conv", "max_pool", "batch_norm", "conv", "flatten", "dense",
                              "dense"]),
        ("dense_head", ["conv", "conv", "max_pool", "conv", "flatten", "dense", "batch_norm",
                        "dense", "batch_norm"]),
    ],
)
def test_batch_norm_placements(per_layer_space, batch_norm, types):
    # pool_every 2 with depth 3: a single pool, after conv 2; zero dropout adds no Dropout layers.
    params = default_params(batch_norm=batch_norm, pool_every=2, conv_dropout=0.0, dense_dropout=0.0)
    spec = per_layer_space.suggest(FixedTrial(params))
    assert [layer.type for layer in spec.layers] == types


def test_pool_every_and_dropout_follow_each_pooling_block(per_layer_space):
    params = default_params(depth=5, pool_every=2, batch_norm="none", conv_dropout=0.1,
                            dense_num_layers=1, dense_dropout=0.0,
                            conv4_filters=16, conv4_kernel_size=3, conv4_padding="same",
                            conv4_kernel_initializer="he_normal",
                            conv5_filters=16, conv5_kernel_size=3, conv5_padding="same",
                            conv5_kernel_initializer="he_normal")
    spec = per_layer_space.suggest(FixedTrial(params))
    assert [layer.type for layer in spec.layers] == [
        "conv", "conv", "max_pool", "dropout", "conv", "conv", "max_pool", "dropout", "conv",
        "flatten", "dense",
    ]
    assert spec.depth == 5
    assert spec.layers[3] == Dropout(0.1)


@pytest.mark.parametrize(
    ("name", "learning_rate", "momentum"),
    [("sgd", 0.01, 0.9), ("adam", 0.001, None), ("adadelta", 1.0, None), ("rmsprop", 0.001, None)],
)
def test_only_sgd_gets_momentum(per_layer_space, name, learning_rate, momentum):
    params = default_params(optimizer=name, **{f"learning_rate_{name}": learning_rate})
    del params["learning_rate_adam"]
    if name == "adam":
        params["learning_rate_adam"] = learning_rate
    spec = per_layer_space.suggest(FixedTrial(params))
    assert spec.optimizer == OptimizerSpec(name, learning_rate, momentum=momentum)


def test_params_for_spec_gives_back_the_params_of_a_sampled_spec(per_layer_space):
    spec = per_layer_space.suggest(FixedTrial(default_params()))
    params = per_layer_space.params_for_spec(spec)
    assert params is not None
    assert per_layer_space.suggest(FixedTrial(params)) == spec
    # A spec outside the space (filters 7 is not a choice) has no params.
    outside = ArchitectureSpec(layers=(Conv(7, 3), MaxPool(2, padding="same"), Flatten(), Dense(64)))
    assert per_layer_space.params_for_spec(outside) is None


def test_learning_rate_is_a_parameter_per_optimizer(per_layer_space):
    # The learning rate of sgd is named learning_rate_sgd: an adam value does not stand in for it.
    params = default_params(optimizer="sgd")
    with pytest.raises(ValueError, match="learning_rate_sgd"):
        per_layer_space.suggest(FixedTrial(params))


def test_per_layer_params_exist_only_for_layers_that_exist(per_layer_space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    depths_seen = set()
    for _ in range(30):
        trial = study.ask()
        try:
            spec = per_layer_space.suggest(trial)
        except SpecError:
            spec = None
        params = trial.params
        depth, num_dense = params["depth"], params["dense_num_layers"]
        depths_seen.add(depth)
        for i in range(1, 8):
            keys = {f"conv{i}_{k}" for k in ("filters", "kernel_size", "padding", "kernel_initializer")}
            if i <= depth:
                assert keys <= set(params), (i, depth)
            else:
                assert not keys & set(params), (i, depth)
        assert ("dense1_units" in params) and (("dense2_units" in params) == (num_dense == 2))
        assert [k for k in params if k.startswith("learning_rate_")] == [
            f"learning_rate_{params['optimizer']}"]
        # Fixed leaves (strides, activation, pool size, momentum) are never Optuna parameters.
        assert not [k for k in params if "strides" in k or "momentum" in k or k == "pool_size"]
        if spec is not None:
            assert spec.depth == depth
            assert [c.kernel_size for c in spec.conv_layers] == [
                params[f"conv{i}_kernel_size"] for i in range(1, depth + 1)]
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert 3 in depths_seen and len(depths_seen) >= 2


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.TPESampler(seed=0, n_startup_trials=10), optuna.samplers.RandomSampler(seed=0)],
    ids=["tpe", "random"],
)
def test_sampling_the_per_layer_space_gives_specs_or_spec_errors(per_layer_space, sampler):
    config = per_layer_space.config
    study = optuna.create_study(direction="maximize", sampler=sampler)
    num_specs = num_impossible = 0
    for _ in range(50):
        trial = study.ask()
        try:
            spec = per_layer_space.suggest(trial)
        except SpecError as exc:
            assert "reduces the feature map to 0x0" in str(exc)
            num_impossible += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        assert isinstance(spec, ArchitectureSpec)
        assert spec.depth == trial.params["depth"] in config["conv"]["depth"]
        assert set(spec.kernel_sizes) <= set(config["conv"]["kernel_size"])
        assert {c.filters for c in spec.conv_layers} <= set(config["conv"]["filters"])
        assert spec.batch_size in config["batch_size"]
        assert spec.optimizer.name in config["optimizer"]["name"]
        lr_range = config["optimizer"]["learning_rate"][spec.optimizer.name]
        assert lr_range["low"] <= spec.optimizer.learning_rate <= lr_range["high"]
        assert spec.optimizer.momentum == (0.9 if spec.optimizer.name == "sgd" else None)
        assert all(0 <= x.rate < 1 for x in spec.layers if isinstance(x, Dropout))
        assert spec.num_params > 0
        study.tell(trial, -math.log10(spec.num_params))
        num_specs += 1
    assert num_specs + num_impossible == 50
    assert num_specs > 0


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


def test_shipped_spaces_load_and_sample():
    for name in shipped_spaces():
        space = load_search_space(name)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        specs = 0
        for _ in range(10):
            try:
                specs += isinstance(space.suggest(study.ask()), ArchitectureSpec)
            except SpecError:
                pass
        assert specs > 0, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("he_normal", Initializer("he_normal")),
        ("truncated_normal(mean=0, stddev=0.01)",
         Initializer("truncated_normal", (("mean", 0.0), ("stddev", 0.01)))),
        (" constant( value = 0.1 ) ", Initializer("constant", (("value", 0.1),))),
    ],
)
def test_parse_initializer_reads_the_text_form(text, expected):
    assert parse_initializer(text) == expected
    assert parse_initializer(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "he normal", "constant(value)", "constant(value=abc)",
                                  "constant(value=inf)"])
def test_parse_initializer_rejects_malformed_text(text):
    with pytest.raises(SpecError, match="initializer"):
        parse_initializer(text)


def blocks_space() -> dict:
    return {
        "name": "tiny_blocks",
        "blocks": {"num_blocks": [1, 2], "num_convs": [1, 2], "filters": [8, 16],
                   "kernel_size": [3, 5], "padding": ["same", "valid"], "pool": ["none", "valid"],
                   "batch_norm": [False, True], "dropout": {"low": 0.0, "high": 0.5, "step": 0.25}},
        "dense": {"num_layers": [0, 1], "units": {"low": 16, "high": 64, "log": True}},
        "optimizer": {"name": ["adam"], "learning_rate": {"adam": {"low": 1e-3, "high": 1e-2,
                                                                   "log": True}}},
    }


def _blocks_with(mutate) -> dict:
    data = blocks_space()
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_blocks_with(lambda d: d["blocks"].update(filters={"low": 8, "high": math.inf})),
         r"blocks\.filters\.high: inf is not a finite number"),
        (_blocks_with(lambda d: d["blocks"].update(dropout={"low": 0.0, "high": 0.5, "step": 0})),
         r"blocks\.dropout\.step: must be a positive number, got 0"),
        (_blocks_with(lambda d: d["dense"].update(units={"low": 16, "high": 64, "log": True,
                                                         "step": 16})),
         r"dense\.units\.step: a log range takes no step"),
        (_blocks_with(lambda d: d["blocks"].update(filters={"low": 8, "high": 64,
                                                            "log": "yes"})),
         r"blocks\.filters\.log: must be true or false"),
        (_blocks_with(lambda d: d["blocks"].update(num_blocks={"low": 1, "high": 3,
                                                               "step": 0.5})),
         r"blocks\.num_blocks\.step: an int range needs an integer step"),
        (_blocks_with(lambda d: d["blocks"].update(num_convs=[1, 3])),
         r"blocks\.num_convs: 3 is not valid; expected 1 or 2"),
        (_blocks_with(lambda d: d["blocks"].update(pool=["none", "average"])),
         r"blocks\.pool: 'average' is not valid"),
        (_blocks_with(lambda d: d["blocks"].update(batch_norm=[0, 1])),
         r"blocks\.batch_norm: 0 is not valid; expected true or false"),
        (_blocks_with(lambda d: d["blocks"].pop("filters")), r"missing blocks\.filters"),
        (_blocks_with(lambda d: d.update(pooling={"every": 1})),
         r"unknown section\(s\) \['pooling'\].*the blocks layout replaces conv/pooling"),
        (_blocks_with(lambda d: d["blocks"].update(depth=3)),
         r"unknown key\(s\) \['depth'\] in 'blocks'"),
        (_blocks_with(lambda d: d.update(initializers={"kernel": ["he_normal", "constant(v)"]})),
         r"initializers\.kernel: initializer 'constant\(v\)'"),
        (_blocks_with(lambda d: d["dense"].pop("units")), r"missing dense\.units"),
        (_blocks_with(lambda d: d["optimizer"].update(variants={"adam": {"x": {"rho": 0.9}}})),
         r"optimizer\.variants\.adam\.x: optimizer 'adam' takes no rho"),
        (_blocks_with(lambda d: d["optimizer"].update(variants={"adam": {"x": {"lr": 0.1}}})),
         r"optimizer\.variants\.adam\.x: unknown argument\(s\) \['lr'\]"),
        (_blocks_with(lambda d: d.update(training={"augmentation": {"rotation": [0.0, 0.6]}})),
         r"training\.augmentation\.rotation: 0\.6 is not valid"),
        (_blocks_with(lambda d: d.update(training={"lr_schedule": ["constant", "step"]})),
         r"training\.lr_schedule: 'step' is not valid"),
        (_blocks_with(lambda d: d.update(training={"label_smoothing": 0.5})),
         r"training\.label_smoothing: 0\.5 is not valid"),
        # Every combination of block choices shrinks the map to zero: at least 3 blocks of
        # 'valid' 7x7 convs with stride 2.
        (_blocks_with(lambda d: d["blocks"].update(num_blocks={"low": 3, "high": 5},
                                                   kernel_size=[7], padding="valid",
                                                   strides=2)),
         r"no choice of this space gives a valid architecture; .* layer \d+ \(conv 8 7x7/2 "
         r"valid\) reduces the feature map to 0x0 \(28 -> 11 -> 3 -> 0\)"),
    ],
)
def test_malformed_blocks_space_raises_search_space_error_naming_the_file(tmp_path, data, match):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert re.search(match, message), message


def test_blocks_space_loads_and_its_least_shrinking_point_is_valid():
    space = search_space_from_dict(blocks_space(), source="tiny.yaml")
    assert space.layout == "blocks" and space.name == "tiny_blocks"
    spec = space.suggest(FixedTrial({"num_blocks": 1, "block1_num_convs": 1,
                                     "block1_conv1_filters": 8, "block1_conv1_kernel_size": 5,
                                     "block1_conv1_padding": "valid", "block1_pool": "valid",
                                     "block1_batch_norm": False, "block1_dropout": 0.25,
                                     "dense_num_layers": 1, "dense1_units": 20,
                                     "learning_rate_adam": 0.005}))
    assert [layer.type for layer in spec.layers] == ["conv", "max_pool", "dropout", "flatten",
                                                     "dense"]
    assert spec.layers[1] == MaxPool(2) and spec.layers[4] == Dense(20)


# ---------------------------------------------------------------------------------------------
# Malformed space files
# ---------------------------------------------------------------------------------------------


def small_space() -> dict:
    return {
        "name": "small",
        "batch_size": [32, 64],
        "batch_norm": "after_conv",
        "conv": {"depth": [1, 2], "filters": [8, 16], "kernel_size": {"low": 2, "high": 5},
                 "padding": "same"},
        "pooling": {"every": 1},
        "dropout": {"conv": {"low": 0.0, "high": 0.5}},
        "dense": {"num_layers": 1, "units": [32, 64]},
        "optimizer": {
            "name": ["adam", "sgd"],
            "momentum": {"sgd": 0.9},
            "learning_rate": {"adam": {"low": 1e-4, "high": 1e-2, "log": True},
                              "sgd": {"low": 1e-3, "high": 0.1, "log": True}},
        },
    }


SMALL_SPACE_TOML = """\
name = "small"
batch_size = [32, 64]
batch_norm = "after_conv"

[conv]
depth = [1, 2]
filters = [8, 16]
kernel_size = {low = 2, high = 5}
padding = "same"

[pooling]
every = 1

[dropout]
conv = {low = 0.0, high = 0.5}

[dense]
num_layers = 1
units = [32, 64]

[optimizer]
name = ["adam", "sgd"]
momentum = {sgd = 0.9}

[optimizer.learning_rate]
adam = {low = 1.0e-4, high = 1.0e-2, log = true}
sgd = {low = 1.0e-3, high = 0.1, log = true}
"""


def test_json_and_toml_spaces_load_the_same_as_yaml(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_space()))
    (tmp_path / "s.json").write_text(json.dumps(small_space()))
    (tmp_path / "s.toml").write_text(SMALL_SPACE_TOML)
    spaces = [load_search_space(tmp_path / f"s.{suffix}") for suffix in ("yaml", "json", "toml")]
    for space in spaces:
        assert space.config == small_space()
        assert space.name == "small"
    params = {"depth": 2, "conv1_filters": 8, "conv1_kernel_size": 2, "conv2_filters": 16,
              "conv2_kernel_size": 5, "conv_dropout": 0.2, "dense1_units": 64, "optimizer": "sgd",
              "learning_rate_sgd": 0.01, "batch_size": 32}
    specs = [space.suggest(FixedTrial(params)) for space in spaces]
    assert specs[0] == specs[1] == specs[2]
    assert [layer.type for layer in specs[0].layers] == [
        "conv", "batch_norm", "max_pool", "dropout", "conv", "batch_norm", "max_pool", "dropout",
        "flatten", "dense",
    ]
    assert specs[0].conv_layers == (Conv(8, 2, padding="same"), Conv(16, 5, padding="same"))
    assert specs[0].optimizer == OptimizerSpec("sgd", 0.01, momentum=0.9)


def test_name_defaults_to_file_stem(tmp_path):
    data = small_space()
    del data["name"]
    path = tmp_path / "my_space.yml"
    path.write_text(yaml.safe_dump(data))
    assert load_search_space(path).name == "my_space"
    assert search_space_from_dict(data).name == "custom"


def _with(mutate) -> dict:
    data = small_space()
    mutate(data)
    return data


def _missing_sgd_learning_rate(d: dict) -> None:
    del d["optimizer"]["learning_rate"]["sgd"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_with(lambda d: d.update(convolution={})), r"unknown section\(s\) \['convolution'\]"),
        (_with(lambda d: d["conv"].update(dilation=2)), r"unknown key\(s\) \['dilation'\] in 'conv'"),
        (_with(lambda d: d["conv"].update(kernel_size=[])), r"conv\.kernel_size: an empty list of choices"),
        (_with(lambda d: d["dropout"].update(conv={"low": 0.5, "high": 0.1})),
         r"dropout\.conv: low 0\.5 is above high 0\.1"),
        (_with(lambda d: d["optimizer"]["learning_rate"].update(adam={"low": 0, "high": 0.1,
                                                                      "log": True})),
         r"optimizer\.learning_rate\.adam: a log range needs low > 0"),
        (_with(lambda d: d["optimizer"].update(name=["adam", "adamw"])),
         r"optimizer\.name: 'adamw' is not one of"),
        pytest.param(
            _with(_missing_sgd_learning_rate),
            r"optimizer\.learning_rate has no entry for optimizer 'sgd'",
            id="missing-learning-rate-entry",
        ),
        (_with(lambda d: d.pop("pooling")), r"missing section 'pooling'"),
        (_with(lambda d: d["conv"].pop("filters")), r"missing conv\.filters"),
        (_with(lambda d: d["conv"].update(depth=[0, 2])), r"conv\.depth: 0 is not valid"),
        (_with(lambda d: d["conv"].update(padding="full")), r"conv\.padding: 'full' is not valid"),
        (_with(lambda d: d.update(batch_norm="sometimes")), r"batch_norm: 'sometimes' is not valid"),
        (_with(lambda d: d["dropout"].update(dense=1.0)), r"dropout\.dense: 1\.0 is not valid"),
        (_with(lambda d: d["conv"].update(filters={"low": 8, "high": 64, "base": 2})),
         r"conv\.filters: unknown range key\(s\) \['base'\]"),
        (_with(lambda d: d["conv"].update(filters={"low": 8})), r"conv\.filters: a range needs 'low'"),
        (_with(lambda d: d["optimizer"].pop("learning_rate")), r"needs 'name' and 'learning_rate'"),
        (_with(lambda d: d.update(conv=[1, 2])), r"section 'conv' must be a mapping"),
        ([1, 2], r"a search space is a mapping of sections"),
    ],
)
def test_malformed_space_content_raises_search_space_error_naming_the_file(tmp_path, data, match):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert re.search(match, message), message


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("space.yaml", "conv: [1, 2\npooling: {every: 1}\n", r"cannot parse the search-space file"),
        ("space.json", '{"conv": {"depth": 3,}}', r"cannot parse the search-space file"),
        ("space.toml", "conv = [\n", r"cannot parse the search-space file"),
        ("space.txt", "conv: {}\n", r"unknown search-space format '\.txt'; use \.yaml, \.json or \.toml"),
        ("space.yaml", "", r"a search space is a mapping of sections"),
    ],
)
def test_unparsable_space_files_raise_search_space_error_naming_the_file(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path)
    assert str(info.value).startswith(f"{path}: ")
    assert re.search(match, str(info.value)), str(info.value)


def test_missing_space_file_raises_search_space_error_naming_the_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path)
    assert str(info.value).startswith(f"{path}: search-space file not found")


def test_search_space_from_dict_names_its_source():
    with pytest.raises(SearchSpaceError, match=r"^spaces/x\.json: missing section 'optimizer'"):
        search_space_from_dict({"conv": {"depth": 1, "filters": 8, "kernel_size": 3},
                                "pooling": {"every": 1}}, source="spaces/x.json")


def test_empty_dense_section_is_rejected():
    # An empty dense mapping used to pass validation and fail in suggest with KeyError('units').
    data = _with(lambda d: d.update(dense={}))
    with pytest.raises(SearchSpaceError, match=r"^space\.yaml: missing dense\.units"):
        search_space_from_dict(data, source="space.yaml")


def test_search_space_module_imports_no_keras_or_tensorflow():
    code = ("import sys, nas_mnist.search_space.space; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_floats_on_a_step_grid_come_back_without_binary_noise():
    from nas_mnist.search_space.space import round_to_step

    assert 0 + 6 * 0.05 != 0.3 and round_to_step(0 + 6 * 0.05, 0.0, 0.05) == 0.3
    assert round_to_step(0.7000000000000001, 0.0, 0.05) == 0.7
    assert round_to_step(0.35, 0.1, 0.05) == 0.35 and round_to_step(3.0, 1, 1) == 3.0


def test_a_sampled_dropout_reaches_the_spec_as_the_grid_number():
    space = load_search_space(None)
    noisy = 0.30000000000000004  # what Optuna's low + k * step gives for 0 + 6 * 0.05
    spec = space.suggest(FixedTrial(block_params(block2_dropout=noisy)))
    rates = [layer.rate for layer in spec.layers if isinstance(layer, Dropout)]
    assert 0.3 in rates and noisy not in rates
