"""Tests for nas_mnist.architecture.spec: shape arithmetic, parameter counts, validation and serialisation."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_mnist.architecture.spec import (
    LR_SCHEDULES,
    ArchitectureSpec,
    Augmentation,
    BatchNorm,
    Branches,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Initializer,
    MaxPool,
    OptimizerSpec,
    SpecError,
)


def spatial_sizes(spec: ArchitectureSpec) -> list[int]:
    """Heights of every feature map in the shape table, the 28x28 input first."""
    return [row.shape[0] for row in spec.shape_table() if len(row.shape) == 3]


# A small spec whose every number is worked out by hand below.
SMALL = ArchitectureSpec(
    layers=(
        Conv(32, 3),                    # 28 -> 26, (3*3*1 + 1) * 32 = 320
        BatchNorm(),                    # 4 * 32 = 128
        MaxPool(2),                     # 26 -> 13
        Conv(64, 3, padding="same"),    # 13 -> 13, (3*3*32 + 1) * 64 = 18_496
        Flatten(),                      # 13 * 13 * 64 = 10_816
        Dense(128),                     # (10_816 + 1) * 128 = 1_384_576
        Dropout(0.5),
    ),
    optimizer=OptimizerSpec("adadelta", 1.0),
    batch_size=64,
)
SMALL_PARAMS = 320 + 128 + 18_496 + 1_384_576 + (128 + 1) * 10


# ---------------------------------------------------------------------------------------------
# Shape arithmetic and parameter counts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ((Conv(8, 3),), [28, 26]),                                    # valid: 28 - 3 + 1
        ((Conv(8, 5),), [28, 24]),
        ((Conv(8, 1),), [28, 28]),
        ((Conv(8, 3, padding="same"),), [28, 28]),
        ((Conv(8, 7, padding="same"),), [28, 28]),
        ((Conv(8, 3, strides=2, padding="same"),), [28, 14]),         # ceil(28 / 2)
        ((Conv(8, 3, strides=2),), [28, 13]),                         # (28 - 3) // 2 + 1
        ((Conv(8, 5, strides=3, padding="same"),), [28, 10]),         # ceil(28 / 3)
        ((MaxPool(2), MaxPool(2)), [28, 14, 7]),
        ((MaxPool(2), MaxPool(2), MaxPool(2, padding="same")), [28, 14, 7, 4]),  # ceil(7 / 2)
        ((MaxPool(2), MaxPool(2), MaxPool(2)), [28, 14, 7, 3]),       # floor(7 / 2)
        ((MaxPool(3),), [28, 9]),                                     # (28 - 3) // 3 + 1
        ((MaxPool(3, padding="same"),), [28, 10]),                    # ceil(28 / 3)
        ((MaxPool(3, strides=1),), [28, 26]),
        ((MaxPool(3, strides=1, padding="same"),), [28, 28]),
        ((MaxPool(3, strides=2),), [28, 13]),                         # (28 - 3) // 2 + 1
        ((Conv(8, 5), MaxPool(2), Conv(8, 5), MaxPool(2)), [28, 24, 12, 8, 4]),
    ],
)
def test_feature_map_sizes_match_hand_computed_values(layers, expected):
    spec = ArchitectureSpec(layers=layers)
    assert spatial_sizes(spec) == expected
    # Square kernels on a square image keep the map square.
    for row in spec.shape_table():
        if len(row.shape) == 3:
            assert row.shape[0] == row.shape[1]


def test_shape_table_of_small_spec_row_by_row():
    rows = SMALL.shape_table()
    assert [row.index for row in rows] == list(range(9))
    assert [row.shape for row in rows] == [
        (28, 28, 1),
        (26, 26, 32),
        (26, 26, 32),
        (13, 13, 32),
        (13, 13, 64),
        (10_816,),
        (128,),
        (128,),
        (10,),
    ]
    assert [row.params for row in rows] == [0, 320, 128, 0, 18_496, 0, 1_384_576, 0, 1_290]
    assert [row.description for row in rows] == [
        "input", "conv 32 3x3 valid", "batch_norm", "max_pool 2x2/2 valid", "conv 64 3x3 same",
        "flatten", "dense 128 relu", "dropout 0.5", "dense 10 softmax",
    ]


def test_num_params_of_small_spec_is_computed_by_hand():
    assert SMALL_PARAMS == 1_404_810
    assert SMALL.num_params == SMALL_PARAMS


@pytest.mark.parametrize(
    ("layers", "expected_params"),
    [
        ((), 785 * 10),                                               # implicit Flatten, output only
        ((Flatten(), Dense(64)), 785 * 64 + 65 * 10),
        ((Flatten(), Dense(64), BatchNorm()), 785 * 64 + 4 * 64 + 65 * 10),
        ((Conv(4, 3, strides=2, padding="same"),), 10 * 4 + (14 * 14 * 4 + 1) * 10),
        ((MaxPool(2),), (14 * 14 + 1) * 10),                          # no Flatten given
        # Two branches: 1x1 conv (1*1*1+1)*4 = 8 and 3x3 conv (9+1)*6 = 60, concatenated to 10 channels.
        ((Branches(((Conv(4, 1),), (Conv(6, 3, padding="same"),))), Conv(2, 1)),
         8 + 60 + (1 * 1 * 10 + 1) * 2 + (28 * 28 * 2 + 1) * 10),
    ],
)
def test_num_params_counts_conv_batch_norm_and_dense_by_hand(layers, expected_params):
    assert ArchitectureSpec(layers=layers).num_params == expected_params


def test_branches_concatenate_channels_and_count_every_branch():
    spec = ArchitectureSpec(layers=(
        Branches((
            (Conv(4, 1, padding="same"),),
            (Conv(6, 3, padding="same"),),
            (Conv(2, 1, padding="same"), MaxPool(3, strides=1, padding="same")),
        )),
    ))
    row = spec.shape_table()[1]
    assert row.shape == (28, 28, 12)
    assert row.params == (1 + 1) * 4 + (9 + 1) * 6 + (1 + 1) * 2
    # A Branches block counts as one conv layer, by its widest kernel.
    assert spec.depth == 1
    assert spec.kernel_sizes == (3,)


@pytest.mark.parametrize(
    ("layers", "where", "chain"),
    [
        (tuple(Conv(8, 7) for _ in range(5)), "layer 5 (conv 8 7x7 valid)",
         "28 -> 22 -> 16 -> 10 -> 4 -> 0"),
        (tuple(MaxPool(2) for _ in range(5)), "layer 5 (max_pool 2x2/2 valid)",
         "28 -> 14 -> 7 -> 3 -> 1 -> 0"),
        ((Conv(8, 5), BatchNorm(), MaxPool(2), Conv(8, 5), MaxPool(2), Dropout(0.1), Conv(8, 5)),
         "layer 7 (conv 8 5x5 valid)", "28 -> 24 -> 12 -> 8 -> 4 -> 0"),
    ],
)
def test_impossible_spec_names_the_layer_and_shows_the_size_chain(layers, where, chain):
    with pytest.raises(SpecError) as info:
        ArchitectureSpec(layers=layers)
    message = str(info.value)
    assert message.startswith(where)
    assert "0x0" in message
    assert f"({chain})" in message
    assert "padding='same'" in message


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layers": (Conv(8, 3), Dense(16), Flatten())}, r"^layer 2 \(dense\) needs a vector input"),
        ({"layers": (Dense(16),)}, r"^layer 1 \(dense\) needs a vector input; put a Flatten"),
        ({"layers": (Flatten(), Conv(8, 3))}, r"^layer 2 \(conv 8 3x3 valid\) comes after Flatten"),
        ({"layers": (Flatten(), Dense(8), MaxPool(2))}, r"^layer 3 \(max_pool .*\) comes after"),
        ({"layers": (Flatten(), Branches(((Conv(1, 1),), (Conv(1, 1),))))},
         r"^layer 2 \(branches\) comes after Flatten"),
        ({"layers": (Flatten(), Dense(8), Flatten())}, r"^layer 3: a second Flatten"),
        ({"layers": (Flatten(), Dropout(1.0))}, r"^layer 2: dropout rate must be in \[0, 1\), got 1.0"),
        ({"layers": (Flatten(), Dropout(-0.1))}, r"dropout rate must be in \[0, 1\)"),
        ({"layers": (Flatten(), Dropout(float("nan")))}, r"dropout rate must be in \[0, 1\)"),
        ({"layers": (Conv(8, 3, padding="full"),)}, r"^layer 1: padding must be 'valid' or 'same'"),
        ({"layers": (MaxPool(2, padding="SAME"),)}, r"padding must be 'valid' or 'same'"),
        ({"layers": (Conv(0, 3),)}, r"^layer 1: filters/units must be a positive integer, got 0"),
        ({"layers": (Conv(8.0, 3),)}, r"filters/units must be a positive integer, got 8.0"),
        ({"layers": (Conv(8, 0),)}, r"kernel/pool size must be a positive integer, got 0"),
        ({"layers": (Conv(8, 3, strides=0),)}, r"strides must be a positive integer, got 0"),
        ({"layers": (Conv(8, 3, strides=None),)}, r"conv strides must be a positive integer"),
        ({"layers": (Conv(8, 3, activation="leaky"),)}, r"activation 'leaky' is not one of"),
        ({"layers": (Flatten(), Dense(True))}, r"filters/units must be a positive integer"),
        ({"layers": ((Conv(8, 3),),)}, r"^layer 1: .* is not a layer here"),
        ({"layers": (), "optimizer": OptimizerSpec("adamw", 1e-3)},
         r"^optimizer 'adamw' is not one of \['adam', 'adadelta', 'sgd', 'rmsprop'\]"),
        ({"layers": (), "optimizer": OptimizerSpec("adam", 0.0)}, r"learning_rate must be a positive"),
        ({"layers": (), "optimizer": OptimizerSpec("adam", float("inf"))}, r"learning_rate must be"),
        ({"layers": (), "optimizer": "adam"}, r"optimizer must be an OptimizerSpec"),
        ({"layers": (), "batch_size": 0}, r"^batch_size must be a positive integer, got 0$"),
        ({"layers": (), "batch_size": 32.0}, r"batch_size must be a positive integer, got 32.0"),
        ({"layers": (), "batch_size": True}, r"batch_size must be a positive integer, got True"),
        ({"layers": (), "output": Dense(5, activation="softmax")},
         r"^the output layer must be Dense\(10, activation='softmax'\)"),
        ({"layers": (), "output": Dense(10, activation="relu")}, r"output layer must be Dense\(10"),
        ({"layers": (), "output": Flatten()}, r"output layer must be Dense\(10"),
        ({"layers": (Branches(((Conv(4, 1),), (Conv(4, 3),))),)},
         r"^layer 1 \(branches\) ends its branches at different sizes \(28x28, 26x26\)"),
        ({"layers": (Branches(((Conv(4, 1),), (MaxPool(2, padding="same"),))),)},
         r"different sizes \(28x28, 14x14\)"),
        ({"layers": (Branches(((Conv(4, 1),),)),)}, r"branches needs at least two branches"),
        ({"layers": (Branches(((Conv(4, 1),), ())),)}, r"^layer 1 branch 2: a branch is a non-empty"),
        ({"layers": (Branches(((Conv(4, 1),), (Flatten(),))),)},
         r"^layer 1 branch 2 layer 1: .* is not a layer here"),
        ({"layers": (Branches(((Conv(4, 1),), (Conv(4, 29),))),)},
         r"^layer 1 branch 2 layer 1 \(conv 4 29x29 valid\) reduces the feature map to 0x0"),
    ],
)
def test_invalid_specs_raise_spec_error_saying_what_is_wrong(kwargs, match):
    with pytest.raises(SpecError, match=match):
        ArchitectureSpec(**kwargs)


@pytest.mark.parametrize(
    "optimizer",
    [
        OptimizerSpec("sgd", 0.01, momentum=1.5),        # documented range [0, 1)
        OptimizerSpec("rmsprop", 0.01, rho=1.0),         # documented range (0, 1)
        OptimizerSpec("adam", 0.01, epsilon=-1.0),       # documented > 0
        OptimizerSpec("adam", 0.01, momentum=0.9),       # Adam has no momentum argument
    ],
    ids=["sgd-momentum-1.5", "rmsprop-rho-1", "adam-epsilon-negative", "adam-momentum"],
)
def test_optimizer_fields_outside_their_documented_range_raise_spec_error(optimizer):
    with pytest.raises(SpecError):
        ArchitectureSpec(layers=(), optimizer=optimizer)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"layers": [], "epochs": 3}, r"^unknown spec keys \['epochs'\]"),
        ({"layers": [{"type": "conv3d", "filters": 8}]}, r"^layer 1: unknown layer type 'conv3d'"),
        ({"layers": [{"type": "conv", "filters": 8, "kernel_size": 3, "dilation_rate": 2}]},
         r"^layer 1: unknown field\(s\) \['dilation_rate'\] for 'conv'"),
        ({"layers": [{"type": "conv", "filters": 8}]}, r"^layer 1: .*kernel_size"),
        ({"layers": [{"filters": 8, "kernel_size": 3}]}, r"^layer 1: a layer is an object with a 'type'"),
        ({"layers": [], "output": {"type": "dense", "units": 3, "activation": "softmax"}},
         r"output layer must be Dense\(10"),
        ({"layers": [], "optimizer": {"name": "adam", "learning_rate": 1e-3, "nesterov": True}},
         r"^bad optimizer"),
        ({"layers": [], "optimizer": {"name": "adam"}}, r"^bad optimizer"),
        ({"layers": [{"type": "branches", "branches": [[{"type": "max_pool"}], [{"type": "dense",
                                                                               "units": 3}]]}]},
         r"^layer 1 branch 2 layer 1: .* is not a layer here"),
        ({"layers": [{"type": "dense", "units": 3, "kernel_initializer": 5}]},
         r"an initializer is a name or an object with 'name'"),
        ([1, 2], r"^a spec is a JSON object, got list"),
    ],
)
def test_from_dict_rejects_malformed_data_with_spec_error(data, match):
    with pytest.raises(SpecError, match=match):
        ArchitectureSpec.from_dict(data)


def test_initializer_string_arguments_round_trip():
    data = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 8, "kernel_initializer":
                                             {"name": "variance_scaling", "mode": "fan_in"}}]}
    spec = ArchitectureSpec.from_dict(data)
    assert spec.layers[1].kernel_initializer.arguments == (("mode", "fan_in"),)
    assert ArchitectureSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "data",
    [
        {"layers": None},
        {"layers": [{"type": "branches", "branches": 5}]},
        {"layers": [{"type": "flatten"}, {"type": "dense", "units": 8, "kernel_initializer":
                                          {"name": "variance_scaling", "scale": []}}]},
    ],
    ids=["layers-null", "branches-int", "initializer-list-argument"],
)
def test_from_dict_raises_only_spec_error(data):
    try:
        ArchitectureSpec.from_dict(data)
    except SpecError:
        return
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped from_dict instead of SpecError: {exc}")
    pytest.fail("from_dict accepted malformed data")


def test_from_json_rejects_invalid_json():
    with pytest.raises(SpecError, match=r"^spec is not valid JSON"):
        ArchitectureSpec.from_json("{layers: []")


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        SMALL.batch_size = 32  # type: ignore[misc]
    with pytest.raises(AttributeError):
        SMALL.layers[0].filters = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------

ROUND_TRIP_SPECS = [
    SMALL,
    ArchitectureSpec(layers=()),
    ArchitectureSpec(layers=(Flatten(), Dense(64, activation="tanh"), BatchNorm(), Dropout(0))),
    ArchitectureSpec(
        layers=(
            Branches((
                (Conv(8, 1, padding="same"),),
                (Conv(8, 3, padding="same", kernel_initializer="he_normal"),),
                (Conv(4, 1, padding="same"), MaxPool(3, strides=1, padding="same")),
            )),
            Conv(16, 5, strides=2, padding="same"),
            MaxPool(3, strides=2),
            Dropout(0.125),
        ),
        optimizer=OptimizerSpec("sgd", 0.05, momentum=0.9),
        batch_size=32,
    ),
    ArchitectureSpec(
        layers=(
            Conv(6, 5, activation="tanh",
                 kernel_initializer=Initializer("truncated_normal", (("stddev", 0.01),)),
                 bias_initializer=Initializer("constant", (("value", 0.1),))),
            MaxPool(2, padding="same"),
            Flatten(),
            Dense(84, kernel_initializer=Initializer("random_normal",
                                                     (("stddev", 0.05), ("mean", 0.0)))),
        ),
        optimizer=OptimizerSpec("adam", 3e-4, beta_1=0.85, beta_2=0.995, epsilon=1e-6),
        batch_size=50,
        output=Dense(10, activation="softmax", kernel_initializer="zeros",
                     bias_initializer=Initializer("constant", (("value", 0.5),))),
    ),
]


@pytest.mark.parametrize("spec", ROUND_TRIP_SPECS)
def test_dict_and_json_round_trips_are_exact(spec):
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON values only
    assert ArchitectureSpec.from_dict(data) == spec
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert ArchitectureSpec.from_json(spec.to_json(indent=2)) == spec
    assert ArchitectureSpec.from_dict(data).to_json() == spec.to_json()


def test_to_dict_uses_keras_argument_names():
    data = SMALL.to_dict()
    assert set(data) == {"layers", "output", "optimizer", "batch_size"}
    assert data["layers"][0] == {
        "type": "conv", "filters": 32, "kernel_size": 3, "strides": 1, "padding": "valid",
        "activation": "relu", "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
    }
    assert data["layers"][2] == {"type": "max_pool", "pool_size": 2, "strides": None, "padding": "valid"}
    assert data["layers"][6] == {"type": "dropout", "rate": 0.5}
    assert data["optimizer"] == {"name": "adadelta", "learning_rate": 1.0}  # unset fields left out
    assert data["batch_size"] == 64


def test_from_dict_fills_documented_defaults():
    spec = ArchitectureSpec.from_dict({"layers": [{"type": "conv", "filters": 8, "kernel_size": 3}]})
    assert spec == ArchitectureSpec(layers=(Conv(8, 3),))
    assert spec.optimizer == OptimizerSpec("adam", 1e-3)
    assert spec.batch_size == 128
    assert spec.output == Dense(10, activation="softmax")


def test_to_json_is_canonical():
    text = SMALL.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True)


def test_spec_id_is_stable_and_distinguishes_specs():
    same = ArchitectureSpec.from_json(SMALL.to_json())
    assert re.fullmatch(r"[0-9a-f]{12}", SMALL.spec_id)
    assert SMALL.spec_id == hashlib.sha256(SMALL.to_json().encode()).hexdigest()[:12]
    assert same.spec_id == SMALL.spec_id
    variants = [
        ArchitectureSpec(layers=SMALL.layers, optimizer=SMALL.optimizer, batch_size=128),
        ArchitectureSpec(layers=SMALL.layers, optimizer=OptimizerSpec("adadelta", 0.5), batch_size=64),
        ArchitectureSpec(layers=(Conv(33, 3), *SMALL.layers[1:]), optimizer=SMALL.optimizer,
                         batch_size=64),
        ArchitectureSpec(layers=(*SMALL.layers[:-1], Dropout(0.25)), optimizer=SMALL.optimizer,
                         batch_size=64),
        *ROUND_TRIP_SPECS[1:],
    ]
    ids = [SMALL.spec_id, *(v.spec_id for v in variants)]
    assert len(set(ids)) == len(ids)


def test_equal_specs_have_equal_spec_ids():
    as_int = ArchitectureSpec(layers=(Flatten(), Dropout(0)), optimizer=OptimizerSpec("adadelta", 1))
    as_float = ArchitectureSpec(layers=(Flatten(), Dropout(0.0)),
                                optimizer=OptimizerSpec("adadelta", 1.0))
    assert as_int == as_float
    assert as_int.spec_id == as_float.spec_id


def test_initializer_json_forms():
    plain = Initializer("he_normal")
    assert plain.to_json() == "he_normal"
    assert str(plain) == "he_normal"
    assert Initializer.from_json("he_normal") == plain

    # Arguments are sorted and stored as floats, whatever order and type they came in.
    with_args = Initializer("truncated_normal", (("stddev", 0.01), ("mean", 0)))
    assert with_args.arguments == (("mean", 0.0), ("stddev", 0.01))
    assert with_args.to_json() == {"name": "truncated_normal", "mean": 0.0, "stddev": 0.01}
    assert Initializer.from_json({"name": "truncated_normal", "stddev": 0.01, "mean": 0.0}) == with_args
    assert Initializer.from_json(with_args) is with_args
    assert str(with_args) == "truncated_normal(mean=0, stddev=0.01)"


def test_layers_accept_initializer_names_and_objects():
    conv = Conv(8, 3, kernel_initializer="he_uniform",
                bias_initializer={"name": "constant", "value": 0.1})
    assert conv.kernel_initializer == Initializer("he_uniform")
    assert conv.bias_initializer == Initializer("constant", (("value", 0.1),))
    assert Dense(8).kernel_initializer == Initializer("glorot_uniform")
    assert Dense(8).bias_initializer == Initializer("zeros")


@pytest.mark.parametrize("value", [5, None, {"stddev": 0.1}, ["he_normal"]])
def test_initializer_from_json_rejects_other_forms(value):
    with pytest.raises(SpecError, match="an initializer is a name or an object with 'name'"):
        Initializer.from_json(value)


def test_initializer_name_must_be_non_empty():
    with pytest.raises(SpecError, match="non-empty string"):
        Initializer("")


# ---------------------------------------------------------------------------------------------
# Property test: random conv stacks
# ---------------------------------------------------------------------------------------------

_conv_block = st.tuples(
    st.integers(1, 16),                        # filters
    st.integers(1, 7),                         # kernel_size
    st.sampled_from(["same", "valid"]),        # conv padding
    st.none() | st.tuples(st.integers(2, 3), st.sampled_from(["same", "valid"])),  # optional pool
)


@settings(max_examples=200, deadline=None)
@given(blocks=st.lists(_conv_block, min_size=1, max_size=6), batch_norm=st.booleans())
def test_random_conv_stacks_round_trip_and_count_params(blocks, batch_norm):
    layers: list = []
    size, channels, expected_params, possible = 28, 1, 0, True
    for filters, kernel_size, padding, pool in blocks:
        layers.append(Conv(filters, kernel_size, padding=padding))
        if padding == "valid":  # stride 1: 'same' keeps the size, 'valid' loses kernel_size - 1
            size = size - kernel_size + 1
        possible = possible and size > 0
        expected_params += (kernel_size * kernel_size * channels + 1) * filters
        channels = filters
        if batch_norm:
            layers.append(BatchNorm())
            expected_params += 4 * channels
        if pool is not None:
            pool_size, pool_padding = pool
            layers.append(MaxPool(pool_size, padding=pool_padding))
            if pool_padding == "same":  # strides = pool_size: ceil(n / s), floor((n - k) / s) + 1
                size = -(-size // pool_size)
            else:
                size = (size - pool_size) // pool_size + 1
            possible = possible and size > 0

    if not possible:
        with pytest.raises(SpecError, match=r"reduces the feature map to 0x0 \(28( -> \d+)+ -> 0\)"):
            ArchitectureSpec(layers=tuple(layers))
        return

    spec = ArchitectureSpec(layers=tuple(layers))
    expected_params += (size * size * channels + 1) * 10
    assert spec.shape_table()[-2].shape == (size * size * channels,)  # the implicit Flatten
    assert spec.num_params == sum(row.params for row in spec.shape_table()) == expected_params > 0
    assert spec.depth == len(blocks)
    assert ArchitectureSpec.from_dict(spec.to_dict()) == spec
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert ArchitectureSpec.from_json(spec.to_json()).spec_id == spec.spec_id


# ---------------------------------------------------------------------------------------------
# Flat params for MLflow
# ---------------------------------------------------------------------------------------------


def test_flat_params_are_plain_scalars_with_arch_and_layer_keys():
    spec = ROUND_TRIP_SPECS[3]  # branches, strides, a pool with strides, dropout, sgd momentum
    params = spec.flat_params()
    for key, value in params.items():
        assert isinstance(key, str)
        assert value is not None, key
        assert isinstance(value, (str, int, float)) and not isinstance(value, bool), (key, value)
    assert params["arch.depth"] == spec.depth == 2
    assert params["arch.kernel_sizes"] == "3,5"
    assert params["arch.params"] == spec.num_params
    assert params["arch.batch_size"] == 32
    assert params["spec_id"] == spec.spec_id
    assert params["optimizer.name"] == "sgd"
    assert params["optimizer.momentum"] == 0.9
    assert "optimizer.rho" not in params  # unset optimizer fields are left out
    assert params["layer_01.type"] == "branches"
    assert params["layer_01.branches"].startswith("branches[conv 8 1x1 same | conv 8 3x3 same")
    assert params["layer_02.type"] == "conv"
    assert params["layer_02.kernel_size"] == 5
    assert params["layer_02.strides"] == 2
    assert params["layer_03.strides"] == 2
    assert params["layer_04.rate"] == 0.125
    assert params["output.units"] == 10
    assert params["output.activation"] == "softmax"


def test_flat_params_render_initializers_and_drop_none():
    params = ROUND_TRIP_SPECS[4].flat_params()
    assert params["layer_01.kernel_initializer"] == "truncated_normal(stddev=0.01)"
    assert params["layer_01.bias_initializer"] == "constant(value=0.1)"
    assert params["layer_02.type"] == "max_pool"
    assert "layer_02.strides" not in params  # MaxPool strides=None
    assert params["output.kernel_initializer"] == "zeros"
    assert params["optimizer.epsilon"] == 1e-6
    assert all(v is not None and not isinstance(v, (dict, list, tuple)) for v in params.values())


def test_summary_facts():
    summary = SMALL.summary()
    assert summary == {
        "depth": 2, "kernel_sizes": "3,3", "filters": "32,64", "paddings": "valid,same",
        "num_pools": 1, "num_batch_norm": 1, "dropout_rates": "0.5", "dense_units": "128",
        "optimizer": "adadelta", "learning_rate": 1.0, "batch_size": 64, "params": 1_404_810,
    }


def test_spec_module_imports_no_keras_or_tensorflow():
    code = ("import sys, nas_mnist.architecture.spec; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Training levers: augmentation, lr_schedule, label_smoothing
# ---------------------------------------------------------------------------------------------

LEVERS = ArchitectureSpec(
    layers=SMALL.layers, optimizer=SMALL.optimizer, batch_size=64,
    augmentation=Augmentation(translation=0.1, rotation=0.05, zoom=0.1),
    lr_schedule="cosine", label_smoothing=0.1,
)


def test_training_levers_default_to_the_notebook_recipe_and_stay_out_of_json():
    assert SMALL.augmentation == Augmentation() and not SMALL.augmentation.enabled
    assert SMALL.lr_schedule == "constant" and SMALL.label_smoothing == 0.0
    assert set(SMALL.to_dict()) == {"layers", "output", "optimizer", "batch_size"}
    # The spec_id of a spec without levers is the hash of the JSON it had before levers existed.
    legacy = json.dumps({k: SMALL.to_dict()[k] for k in ("layers", "output", "optimizer",
                                                          "batch_size")}, sort_keys=True)
    assert SMALL.spec_id == hashlib.sha256(legacy.encode()).hexdigest()[:12]
    explicit = ArchitectureSpec(layers=SMALL.layers, optimizer=SMALL.optimizer, batch_size=64,
                                augmentation=Augmentation(0, 0, 0), lr_schedule="constant",
                                label_smoothing=0)
    assert explicit == SMALL and explicit.spec_id == SMALL.spec_id


@pytest.mark.parametrize("spec", [
    LEVERS,
    ArchitectureSpec(layers=(Conv(4, 3),), augmentation=Augmentation(rotation=0.5)),
    ArchitectureSpec(layers=(Conv(4, 3),), lr_schedule="reduce_on_plateau"),
    ArchitectureSpec(layers=(), label_smoothing=0.25),
])
def test_training_levers_round_trip_exactly(spec):
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert ArchitectureSpec.from_dict(data) == spec
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert spec.spec_id != ArchitectureSpec(layers=spec.layers).spec_id


def test_training_levers_json_form_and_params():
    data = LEVERS.to_dict()
    assert data["augmentation"] == {"translation": 0.1, "rotation": 0.05, "zoom": 0.1}
    assert data["lr_schedule"] == "cosine"
    assert data["label_smoothing"] == 0.1
    only_rotation = ArchitectureSpec(layers=(), augmentation=Augmentation(rotation=0.05))
    assert only_rotation.to_dict()["augmentation"] == {"rotation": 0.05}  # zero factors left out
    assert LEVERS.num_params == SMALL.num_params == SMALL_PARAMS  # augmentation has no weights
    assert LEVERS.spec_id != SMALL.spec_id


def test_from_dict_accepts_levers_missing_or_present():
    base = {"layers": [{"type": "conv", "filters": 8, "kernel_size": 3}]}
    assert ArchitectureSpec.from_dict(base) == ArchitectureSpec(layers=(Conv(8, 3),))
    spec = ArchitectureSpec.from_dict({**base, "augmentation": {"zoom": 0.2},
                                       "lr_schedule": "reduce_on_plateau", "label_smoothing": 0.05})
    assert spec.augmentation == Augmentation(zoom=0.2)
    assert spec.lr_schedule == "reduce_on_plateau"
    assert spec.label_smoothing == 0.05


def test_summary_and_flat_params_show_levers_only_when_set():
    assert not {"augmentation", "lr_schedule", "label_smoothing"} & set(SMALL.summary())
    summary = LEVERS.summary()
    assert summary["augmentation"] == "translation=0.1,rotation=0.05,zoom=0.1"
    assert summary["lr_schedule"] == "cosine"
    assert summary["label_smoothing"] == 0.1
    params = LEVERS.flat_params()
    assert params["arch.augmentation"] == "translation=0.1,rotation=0.05,zoom=0.1"
    assert params["augmentation.rotation"] == 0.05
    assert params["arch.lr_schedule"] == "cosine"
    assert params["arch.label_smoothing"] == 0.1
    assert all(isinstance(v, (str, int, float)) for v in params.values())
    assert not any(k.startswith("augmentation.") for k in SMALL.flat_params())


def test_augmentation_enabled():
    assert not Augmentation().enabled
    assert Augmentation(zoom=0.1).enabled
    assert Augmentation(translation=1 / 28).enabled
    assert isinstance(Augmentation(0).translation, float)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"augmentation": Augmentation(translation=0.6)}, r"augmentation translation .*\[0, 0\.5\]"),
    ({"augmentation": Augmentation(rotation=-0.1)}, r"augmentation rotation"),
    ({"augmentation": Augmentation(zoom=float("nan"))}, r"augmentation zoom"),
    ({"augmentation": Augmentation(zoom="0.1")}, r"augmentation zoom"),
    ({"augmentation": Augmentation(translation=True)}, r"augmentation translation"),
    ({"augmentation": 0.1}, r"augmentation must be an Augmentation"),
    ({"lr_schedule": "step"}, r"lr_schedule 'step' is not one of \['constant', 'cosine'"),
    ({"label_smoothing": 0.5}, r"label_smoothing must be a number in \[0, 0\.5\)"),
    ({"label_smoothing": -0.1}, r"label_smoothing"),
    ({"label_smoothing": None}, r"label_smoothing"),
])
def test_invalid_training_levers_raise_spec_error(kwargs, match):
    with pytest.raises(SpecError, match=match):
        ArchitectureSpec(layers=(), **kwargs)


@pytest.mark.parametrize(("data", "match"), [
    ({"augmentation": {"shear": 0.1}}, r"augmentation: unknown key\(s\) \['shear'\]"),
    ({"augmentation": [0.1]}, r"augmentation is an object"),
    ({"augmentation": {"zoom": 2}}, r"augmentation zoom"),
    ({"lr_schedule": "linear"}, r"lr_schedule"),
    ({"label_smoothing": "a"}, r"label_smoothing"),
    ({"schedule": "cosine"}, r"unknown spec keys \['schedule'\]; expected .*lr_schedule"),
])
def test_from_dict_rejects_bad_levers_with_spec_error(data, match):
    with pytest.raises(SpecError, match=match):
        ArchitectureSpec.from_dict({"layers": [], **data})


def test_lr_schedules_are_the_documented_three():
    assert LR_SCHEDULES == ("constant", "cosine", "reduce_on_plateau")
