"""Tests for nas_mnist.search_space.space: loading space files and sampling specs through Optuna."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import FixedTrial

from nas_mnist.architecture.spec import (
    ArchitectureSpec,
    Conv,
    Dense,
    MaxPool,
    OptimizerSpec,
    SpecError,
)
from nas_mnist.search_space.space import (
    DEFAULT_SPACE_PATH,
    SearchSpaceError,
    load_search_space,
    search_space_from_dict,
    shipped_spaces,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


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


@pytest.mark.parametrize(
    ("leaf", "match"),
    [
        # Optuna's IntDistribution says "low >= 1"; the message stays the space file's own.
        ({"low": 0, "high": 4, "log": True}, r"^space\.yaml: conv\.depth: a log range needs low > 0, got 0$"),
        ({"low": 3, "high": 1}, r"^space\.yaml: conv\.depth: low 3 is above high 1$"),
        ({"low": 1, "high": 3, "step": -1}, r"^space\.yaml: conv\.depth\.step: must be a positive number, got -1$"),
        ([], r"^space\.yaml: conv\.depth: an empty list of choices$"),
    ],
)
def test_range_and_choice_leaves_are_checked_by_optunas_distributions(leaf, match):
    data = _with(lambda d: d["conv"].update(depth=leaf))
    with pytest.raises(SearchSpaceError, match=match):
        search_space_from_dict(data, source="space.yaml")


def test_a_range_not_divisible_by_its_step_loads_without_a_warning():
    data = _with(lambda d: d["conv"].update(depth={"low": 1, "high": 4, "step": 2}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        space = search_space_from_dict(data, source="space.yaml")
    assert space.config["conv"]["depth"] == {"low": 1, "high": 4, "step": 2}


def test_search_space_module_imports_no_keras_or_tensorflow():
    code = ("import sys, nas_mnist.search_space.space; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
