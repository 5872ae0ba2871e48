"""Space files as an attack: YAML alias bombs, huge quoted values and huge ranges are refused at
load, with one short line that names the file and the key (issue 19, defect 9)."""

from __future__ import annotations

import copy
import json
import time

import pytest
import yaml
from support import SMALL_SPACE

from nas_mnist.cli.main import main
from nas_mnist.search_space.checks import MAX_KERNEL_SIZE, MAX_LAYERS, MAX_WIDTH
from nas_mnist.search_space.space import SearchSpaceError, load_search_space


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion-laughs pattern: each level lists ``width`` aliases of the level below."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    body = yaml.safe_dump({k: v for k, v in SMALL_SPACE.items() if k != "conv"})
    conv = f"conv: {{depth: [3], filters: *a{levels}, kernel_size: [3]}}"
    return "\n".join(["_bomb:", *("  " + line for line in lines), conv, body])


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    start = time.monotonic()
    with pytest.raises(SearchSpaceError, match="anchors and aliases") as caught:
        load_search_space(path)
    assert time.monotonic() - start < 5
    assert str(path) in str(caught.value)


def test_a_single_anchor_is_refused_too(tmp_path):
    path = tmp_path / "anchor.yaml"
    space = yaml.safe_dump(SMALL_SPACE).replace("batch_size:", "batch_size: &b")
    path.write_text(space)
    with pytest.raises(SearchSpaceError, match="anchors and aliases"):
        load_search_space(path)


def test_baselines_list_on_an_alias_bomb_exits_2_with_one_line(workdir, capsys):
    (workdir / "bomb.yaml").write_text(alias_bomb())
    assert main(["baselines", "list", "--space", "bomb.yaml"]) == 2
    err = capsys.readouterr().err
    assert "bomb.yaml" in err and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize(("key", "leaf", "high"), [
    ("filters", {"low": 100_000_000, "high": 1_000_000_000_000}, MAX_WIDTH),
    ("filters", [8, MAX_WIDTH + 1], MAX_WIDTH),
    ("kernel_size", [3, MAX_KERNEL_SIZE + 1], MAX_KERNEL_SIZE),
    ("depth", {"low": 1, "high": 10_000}, MAX_LAYERS),
])
def test_huge_ranges_are_refused_naming_the_file_and_key(tmp_path, key, leaf, high):
    space = copy.deepcopy(SMALL_SPACE)
    space["conv"][key] = leaf
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(space))
    with pytest.raises(SearchSpaceError, match=rf"huge.json: conv.{key}: .*from 1 to {high}$"):
        load_search_space(path)


def test_huge_dense_units_in_the_blocks_layout_are_refused(tmp_path):
    space = yaml.safe_load(open(load_search_space().source).read())  # the shipped default
    space["dense"]["units"] = {"low": 32, "high": 10**12}
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(SearchSpaceError, match=rf"huge.yaml: dense.units: .*from 1 to {MAX_WIDTH}$"):
        load_search_space(path)


def test_search_with_a_huge_range_exits_2_with_one_line(workdir, capsys):
    space = copy.deepcopy(SMALL_SPACE)
    space["conv"]["filters"] = {"low": 100_000_000, "high": 1_000_000_000_000}
    (workdir / "huge.json").write_text(json.dumps(space))
    assert main(["baselines", "list", "--space", "huge.json"]) == 2
    err = capsys.readouterr().err
    assert "huge.json: conv.filters" in err and err.count("\n") == 1, err


def test_quoted_values_in_errors_are_cut(tmp_path):
    space = copy.deepcopy(SMALL_SPACE)
    space["conv"]["padding"] = ["x" * 100_000]
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(SearchSpaceError, match="conv.padding") as caught:
        load_search_space(path)
    assert len(str(caught.value)) < 400


def test_a_parse_error_on_a_long_line_is_cut(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [" + "y" * 100_000 + "\n")
    with pytest.raises(SearchSpaceError, match="cannot parse") as caught:
        load_search_space(path)
    assert len(str(caught.value)) < 600


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deeply_nested_lists_are_refused_without_a_traceback(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SearchSpaceError, match="cannot parse"):
        load_search_space(path)
