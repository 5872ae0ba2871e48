"""Tests for nas_mnist.architecture.baselines: the 24 documented hand-built models, as specs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nas_mnist.architecture.baselines import (
    BASELINE_NAMES,
    BASELINES,
    Baseline,
    get_baseline,
    select_baselines,
)
from nas_mnist.architecture.spec import ArchitectureSpec, Branches, Conv, MaxPool

SHARED = Path(__file__).resolve().parents[3] / "shared"

# name -> (total params, reported test accuracy), copied from shared/baselines.md in its order.
DOCUMENTED: dict[str, tuple[int, float]] = {
    "s000_m1": (612_362, 0.9927),
    "s000_m2": (1_053_962, 0.9930),
    "s000_m3": (10_535_268, 0.9921),
    "s001_m1": (136_906, 0.9935),
    "s001_m2": (13_338, 0.9843),
    "s001_m3": (144_406, 0.9535),
    "s002_m1": (646_410, 0.9936),
    "s002_m2": (1_211_274, 0.9940),
    "s002_m3": (696_330, 0.9929),
    "s002_m4": (3_842_890, 0.9937),
    "s002_m5": (1_211_274, 0.9938),
    "s002_m6": (7_396_362, 0.9938),
    "s002_m7": (2_686_602, 0.9948),
    "s002_m8": (2_588_298, 0.9951),
    "s002_m9": (3_210_378, 0.9954),
    "s002_m10": (37_987_722, 0.9944),
    "s003_m1": (87_914, 0.9863),
    "s003_m2": (650_962, 0.9921),
    "s003_m3": (778_574, 0.9893),
    "s003_m4": (1_562_474, 0.9901),
    "s004_linear": (7_960, 0.916),
    "s004_mlp": (5_695_510, 0.984),
    "s004_mlp_dropout": (5_695_510, 0.984),
    "s004_cnn": (83_466, 0.992),
}


def _ids(baseline: Baseline) -> str:
    return baseline.name


# --- the catalog matches the documented table ------------------------------------------------


def test_catalog_has_the_24_documented_names_in_order() -> None:
    assert BASELINE_NAMES == tuple(DOCUMENTED)
    assert len(set(BASELINE_NAMES)) == len(BASELINES) == 24


def test_documented_table_matches_shared_baselines_md() -> None:
    """The copy above agrees with shared/baselines.md (when the shared folder is present)."""
    path = SHARED / "baselines.md"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rows = re.findall(r"^\| (s\d{3}_\w+) \|[^|]*\| ([\d,]+) \*? *\|[^|]*\| ([\d.]+) \|$",
                      path.read_text(), flags=re.MULTILINE)
    table = {name: (int(params.replace(",", "")), float(acc)) for name, params, acc in rows}
    assert list(table) == list(DOCUMENTED)
    assert table == DOCUMENTED


@pytest.mark.parametrize("baseline", BASELINES, ids=_ids)
def test_documented_facts(baseline: Baseline) -> None:
    params, reported = DOCUMENTED[baseline.name]
    assert baseline.documented_params == params
    assert baseline.reported_test_accuracy == pytest.approx(reported, abs=1e-12)
    assert re.fullmatch(r"seeds/00[0-4]_[0-9a-f]{16}\.txt, .+", baseline.source)
    assert baseline.source.startswith(f"seeds/{baseline.name[1:4]}_")
    assert baseline.description
    assert baseline.epochs > 0


@pytest.mark.parametrize("baseline", BASELINES, ids=_ids)
def test_spec_num_params_equals_documented_params(baseline: Baseline) -> None:
    assert baseline.spec.num_params == baseline.documented_params


@pytest.mark.parametrize("baseline", BASELINES, ids=_ids)
def test_spec_json_round_trip_is_exact(baseline: Baseline) -> None:
    spec = baseline.spec
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert ArchitectureSpec.from_dict(spec.to_dict()) == spec
    assert ArchitectureSpec.from_json(spec.to_json()).spec_id == spec.spec_id


def test_spec_ids_are_distinct() -> None:
    # s002_m2 and s002_m5 have equal parameter counts but different layers.
    assert len({b.spec.spec_id for b in BASELINES}) == 24


# --- recipes read off the notebooks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "optimizer", "learning_rate", "batch_size", "epochs"),
    [
        ("s000", "adam", 1e-3, 128, 15),
        ("s001", "adadelta", 1.0, 128, 12),
        ("s002", "adadelta", 1.0, 128, 13),
        ("s003", "adam", 1e-3, 200, 10),
        ("s004_m", "adam", 1e-3, 100, 34),
        ("s004_cnn", "adam", 1e-3, 100, 34),
        ("s004_linear", "sgd", 0.5, 100, 17),
    ],
)
def test_training_recipes(prefix: str, optimizer: str, learning_rate: float, batch_size: int,
                          epochs: int) -> None:
    selected = [b for b in BASELINES if b.name.startswith(prefix)]
    assert selected
    for baseline in selected:
        assert baseline.spec.optimizer.name == optimizer
        assert baseline.spec.optimizer.learning_rate == learning_rate
        assert baseline.spec.batch_size == batch_size
        assert baseline.epochs == epochs


def test_seed_004_adam_uses_tf1_epsilon() -> None:
    for name in ("s004_mlp", "s004_mlp_dropout", "s004_cnn"):
        optimizer = get_baseline(name).spec.optimizer
        assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-8)


def test_initializers_follow_the_notebooks() -> None:
    s002 = get_baseline("s002_m9").spec
    assert all(c.kernel_initializer.name == "he_normal" for c in s002.conv_layers)
    assert s002.output.kernel_initializer.name == "glorot_uniform"
    s003 = get_baseline("s003_m1").spec
    assert s003.output.kernel_initializer.name == "glorot_normal"
    cnn = get_baseline("s004_cnn").spec
    assert str(cnn.conv_layers[0].kernel_initializer) == "truncated_normal(mean=0, stddev=0.01)"
    assert str(cnn.conv_layers[0].bias_initializer) == "constant(value=0.1)"


def test_s001_m2_uses_conv_strides_2() -> None:
    assert [c.strides for c in get_baseline("s001_m2").spec.conv_layers] == [1, 2, 2]


def test_s002_m10_stem_has_four_branches() -> None:
    stem = get_baseline("s002_m10").spec.layers[0]
    assert isinstance(stem, Branches)
    assert [len(b) for b in stem.branches] == [1, 1, 1, 2]
    assert [b[0].kernel_size for b in stem.branches] == [1, 3, 5, 1]
    assert all(isinstance(b[0], Conv) and b[0].filters == 32 for b in stem.branches)
    assert stem.branches[3][1] == MaxPool(3, strides=1, padding="same")
    assert get_baseline("s002_m10").spec.shape_table()[1].shape == (28, 28, 128)


# --- the Keras models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builder():
    """nas_mnist.model.builder, imported only when a test builds a Keras model."""
    return pytest.importorskip("nas_mnist.model.builder")


@pytest.mark.parametrize("baseline", BASELINES, ids=_ids)
def test_keras_model_count_params_equals_documented_params(builder, baseline: Baseline) -> None:
    import keras

    model = builder.build_model(baseline.spec)
    try:
        assert model.count_params() == baseline.documented_params
        assert tuple(model.output.shape) == (None, 10)
    finally:
        del model
        keras.backend.clear_session()


# --- lookup and selection --------------------------------------------------------------------


def test_get_baseline() -> None:
    assert get_baseline("s002_m9").reported_test_accuracy == 0.9954
    with pytest.raises(ValueError, match=r"unknown baseline 'nope'; choose from: s000_m1, "):
        get_baseline("nope")


def test_select_all_and_none() -> None:
    assert select_baselines("all") == BASELINES
    assert select_baselines(" ALL ") == BASELINES
    assert select_baselines("none") == ()


def test_select_list_keeps_order_and_drops_duplicates() -> None:
    chosen = select_baselines("s002_m9, s000_m1,s002_m9,")
    assert [b.name for b in chosen] == ["s002_m9", "s000_m1"]


def test_select_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown baseline 'x'; choose from: s000_m1, .*s004_cnn"):
        select_baselines("s000_m1,x")


@pytest.mark.parametrize("selection", ["", " , ", "all,s000_m1", "s000_m1,none"])
def test_select_rejects_empty_or_mixed(selection: str) -> None:
    with pytest.raises(ValueError, match="'all'"):
        select_baselines(selection)
