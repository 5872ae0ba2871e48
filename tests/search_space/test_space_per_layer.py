"""Tests for the per-layer layout (nas_mnist.search_space.per_layer): sampling and spec -> params."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import FixedTrial

from nas_mnist.architecture.spec import (
    ArchitectureSpec,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    OptimizerSpec,
    SpecError,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


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
