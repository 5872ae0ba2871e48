"""Tests for nas_mnist.data: loading, validation and splitting."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_mnist.data import (
    DATA_ENV_VAR,
    DataError,
    DataSplits,
    MnistArrays,
    load_idx_folder,
    load_mnist,
    load_npz,
    make_splits,
    resolve_data_source,
    stratified_subset,
    validate_arrays,
)

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def tiny_mnist(num_train: int = 60, num_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Random MNIST-shaped arrays; labels cycle 0..9 so every class is present."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(num_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(num_test) % 10).astype(np.uint8),
    }


def write_npz(path: Path, **overrides) -> Path:
    arrays = {**tiny_mnist(), **overrides}
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x00000800 | array.ndim
    data = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], suffix: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    for key, name in IDX_NAMES.items():
        write_idx(folder / f"{name}{suffix}", arrays[key])
    return folder


def assert_same(loaded: MnistArrays, arrays: dict[str, np.ndarray]) -> None:
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, key), expected)


@pytest.fixture
def no_env_source(monkeypatch):
    """Clear NAS_MNIST_DATA so that load_mnist() without a path falls through to Keras."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)


# --- good sources -------------------------------------------------------------------------------


def test_load_npz_good(tmp_path):
    path = write_npz(tmp_path / "mnist.npz")
    loaded = load_npz(path)
    assert_same(loaded, tiny_mnist())
    assert loaded.x_train.dtype == np.uint8
    assert loaded.y_train.dtype == np.int32
    assert loaded.source == str(path)


def test_load_npz_accepts_channel_axis_and_float_pixels(tmp_path):
    arrays = tiny_mnist()
    x_train = (arrays["x_train"] / 255.0)[..., None]
    path = write_npz(tmp_path / "float.npz", x_train=x_train, y_train=arrays["y_train"] * 1.0)
    loaded = load_npz(path)
    assert loaded.x_train.shape == (60, 28, 28)
    assert loaded.x_train.dtype == np.float32
    np.testing.assert_array_equal(loaded.y_train, arrays["y_train"])


def test_file_without_npz_suffix_is_tried_as_npz(tmp_path):
    path = tmp_path / "mnist.data"
    write_npz(tmp_path / "tmp.npz").rename(path)
    assert_same(load_mnist(path), tiny_mnist())


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_idx_folder(tmp_path, suffix):
    arrays = tiny_mnist()
    folder = write_idx_folder(tmp_path / "idx", arrays, suffix)
    loaded = load_idx_folder(folder)
    assert_same(loaded, arrays)
    assert loaded.source == str(folder)
    assert_same(load_mnist(folder), arrays)  # a folder given to load_mnist is an IDX folder


def test_load_idx_folder_accepts_dotted_names(tmp_path):
    arrays = tiny_mnist()
    folder = tmp_path / "idx"
    folder.mkdir()
    for key, name in IDX_NAMES.items():
        write_idx(folder / name.replace("-idx", ".idx"), arrays[key])
    assert_same(load_idx_folder(folder), arrays)


# --- source resolution --------------------------------------------------------------------------


def test_resolve_data_source(monkeypatch, tmp_path, no_env_source):
    assert resolve_data_source(None) is None
    monkeypatch.setenv(DATA_ENV_VAR, "")
    assert resolve_data_source(None) is None
    monkeypatch.setenv(DATA_ENV_VAR, "/from/env.npz")
    assert resolve_data_source(None) == "/from/env.npz"
    assert resolve_data_source(tmp_path / "x.npz") == str(tmp_path / "x.npz")


def test_load_mnist_uses_env_var(monkeypatch, tmp_path):
    path = write_npz(tmp_path / "env.npz")
    monkeypatch.setenv(DATA_ENV_VAR, str(path))
    loaded = load_mnist()
    assert loaded.source == str(path)
    assert_same(loaded, tiny_mnist())


def test_load_mnist_env_var_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "gone.npz"))
    with pytest.raises(DataError, match=rf"gone\.npz.*{DATA_ENV_VAR}.*does not exist"):
        load_mnist()


def fake_keras(load_data) -> SimpleNamespace:
    return SimpleNamespace(datasets=SimpleNamespace(mnist=SimpleNamespace(load_data=load_data)))


def test_load_mnist_downloads_with_keras_without_a_source(monkeypatch, no_env_source):
    arrays = tiny_mnist()
    result = ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
    monkeypatch.setitem(sys.modules, "keras", fake_keras(lambda: result))
    loaded = load_mnist()
    assert loaded.source == "keras.datasets.mnist"
    assert_same(loaded, arrays)


def test_keras_download_failure_says_how_to_give_a_local_file(monkeypatch, no_env_source):
    def fail():
        raise OSError("no route to host")

    monkeypatch.setitem(sys.modules, "keras", fake_keras(fail))
    with pytest.raises(DataError, match=rf"no route to host.*--data PATH.*{DATA_ENV_VAR}"):
        load_mnist()


# --- bad sources --------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(DataError, match=r"nope\.npz does not exist"):
        load_npz(path)
    with pytest.raises(DataError, match=r"nope\.npz does not exist.*--data"):
        load_mnist(path)


def test_truncated_npz(tmp_path):
    path = write_npz(tmp_path / "cut.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.npz is not a readable \.npz archive.*corrupt"):
        load_npz(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is neither an \.npz archive"):
        load_mnist(path)


def test_object_array_is_refused_without_unpickling(tmp_path):
    path = write_npz(tmp_path / "obj.npz", y_train=np.array([1, "a"], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz: y_train holds an object array.*pickle"):
        load_npz(path)


def test_missing_key(tmp_path):
    path = write_npz(tmp_path / "keys.npz", y_test=None)
    with pytest.raises(DataError, match=r"keys\.npz lacks key\(s\) y_test: found") as info:
        load_npz(path)
    assert "found ['x_test', 'x_train', 'y_train']" in str(info.value)
    assert "expected ['x_train', 'y_train', 'x_test', 'y_test']" in str(info.value)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"x_train": np.zeros((60, 28, 27), np.uint8)}, r"x_train has shape \(60, 28, 27\)"),
        ({"x_test": np.zeros((20, 784), np.uint8)}, r"x_test has shape \(20, 784\)"),
        ({"y_train": np.full(60, 10)}, r"y_train has labels in 10\.\.10; expected .*0\.\.9"),
        ({"y_test": np.full(20, -1)}, r"y_test has labels in -1\.\.-1"),
        ({"y_train": np.zeros((60, 10))}, r"y_train has shape \(60, 10\).*not one-hot"),
        ({"y_train": np.full(60, 0.5)}, r"y_train holds non-integral float labels"),
        ({"x_train": np.full((60, 28, 28), np.nan)}, r"x_train holds NaN or infinite"),
        ({"x_train": np.full((60, 28, 28), 2.0)}, r"x_train has float pixels in \[2, 2\]"),
        ({"x_train": np.full((60, 28, 28), 256)}, r"x_train has integer pixels in 256\.\.256"),
        ({"y_train": np.zeros(59, np.uint8)}, r"x_train has 60 images but y_train has 59"),
        ({"x_test": np.zeros((0, 28, 28), np.uint8)}, r"x_test holds no images"),
        ({"x_train": np.zeros((60, 28, 28), bool)}, r"x_train has dtype bool"),
    ],
)
def test_malformed_arrays(tmp_path, override, pattern):
    path = write_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(DataError, match=rf"bad\.npz: {pattern}"):
        load_npz(path)


def test_validate_arrays_refuses_object_dtype():
    arrays = {**tiny_mnist(), "x_test": np.empty((20, 28, 28), dtype=object)}
    with pytest.raises(DataError, match=r"memory: x_test is an object array"):
        validate_arrays(**arrays, source="memory")


def test_idx_folder_missing_one_file(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", tiny_mnist(), ".gz")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"idx lacks the IDX file\(s\) t10k-labels-idx1-ubyte "):
        load_idx_folder(folder)


def test_idx_file_with_wrong_magic_or_length(tmp_path):
    arrays = tiny_mnist()
    folder = write_idx_folder(tmp_path / "idx", arrays)
    labels = folder / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte has 63 bytes.*implies 68"):
        load_idx_folder(folder)
    write_idx(labels, arrays["x_train"])  # images where labels belong
    with pytest.raises(DataError, match=r"expected magic number 0x00000801, found 0x00000803"):
        load_idx_folder(folder)


def returns_within(call, seconds: float = 10.0, fifo: Path | None = None):
    """``call()``'s result or exception, failing the test if it has not returned within
    ``seconds`` (a reader blocked on ``fifo`` is then released by opening its writing end)."""
    import os
    import threading

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # end-of-file for the reader
        pytest.fail(f"still waiting after {seconds:g} s: it reads from the pipe")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_a_fifo_given_as_data_is_refused_at_once_naming_it(tmp_path):
    """``--data`` on a named pipe waited for a writer without limit (issue 19)."""
    import os

    from nas_mnist.data import data_fingerprint

    pipe = tmp_path / "mnist.npz"
    os.mkfifo(pipe)
    for call in (load_mnist, load_npz, data_fingerprint):
        with pytest.raises(DataError) as raised:
            returns_within(lambda call=call: call(pipe), fifo=pipe)
        message = str(raised.value)
        assert str(pipe) in message and "not a regular file" in message and "\n" not in message


def test_an_idx_file_that_is_a_fifo_is_refused_naming_it(tmp_path):
    import os

    folder = write_idx_folder(tmp_path / "idx", tiny_mnist())
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.unlink()
    os.mkfifo(labels)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is not a regular file"):
        returns_within(lambda: load_mnist(folder), fifo=labels)


def test_a_character_device_is_refused_before_it_is_read():
    """/dev/zero never ends: reading it would fill the memory."""
    with pytest.raises(DataError, match=r"/dev/zero is not a regular file"):
        returns_within(lambda: load_mnist("/dev/zero"))


# --- splits -------------------------------------------------------------------------------------


def make_arrays(num_train: int = 200, num_test: int = 30, seed: int = 0) -> MnistArrays:
    return validate_arrays(**tiny_mnist(num_train, num_test, seed), source="memory")


def test_validation_split_is_the_last_training_images():
    arrays = make_arrays()
    splits = make_splits(arrays, validation_size=50)
    assert (splits.num_train, splits.num_val, splits.num_test) == (150, 50, 30)
    np.testing.assert_array_equal(splits.x_val[..., 0], arrays.x_train[150:] / np.float32(255))
    np.testing.assert_array_equal(splits.y_val, arrays.y_train[150:])
    np.testing.assert_array_equal(splits.x_train[..., 0], arrays.x_train[:150] / np.float32(255))
    assert splits.describe() == "MNIST: 150 train / 50 validation / 30 test images from memory"


def test_split_dtypes_shapes_and_range():
    splits = make_splits(make_arrays(), validation_size=50)
    for x, n in ((splits.x_train, 150), (splits.x_val, 50), (splits.x_test, 30)):
        assert x.dtype == np.float32
        assert x.shape == (n, 28, 28, 1)
        assert x.flags.c_contiguous
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.max() == 1.0  # 255 maps to exactly 1
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert y.dtype == np.int32
        assert set(np.unique(y)) <= set(range(10))


def test_float_pixels_are_kept_not_rescaled():
    raw = tiny_mnist()
    arrays = validate_arrays(**{**raw, "x_train": raw["x_train"] / 256.0}, source="memory")
    splits = make_splits(arrays, validation_size=10)
    np.testing.assert_allclose(splits.x_train[..., 0], raw["x_train"][:50] / 256.0, rtol=1e-6)


def test_validation_size_too_large():
    with pytest.raises(DataError, match=r"memory: the training set has 200 images.*Lower"):
        make_splits(make_arrays(), validation_size=200)
    with pytest.raises(ValueError, match=r"validation_size must be at least 1"):
        make_splits(make_arrays(), validation_size=0)


@pytest.mark.parametrize("size", [9, 151])
def test_max_train_samples_out_of_range(size):
    with pytest.raises(ValueError, match=rf"between 10 and the 150 training images.*got {size}"):
        make_splits(make_arrays(), validation_size=50, max_train_samples=size)


def test_stratified_subset_keeps_proportions_and_is_seeded():
    rng = np.random.default_rng(1)
    labels = rng.choice(10, size=1000, p=np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum())
    x_train = np.repeat(np.arange(1000, dtype=np.float32)[:, None, None] / 1000, 28, 1)
    x_train = np.repeat(x_train, 28, 2)  # image i is filled with i / 1000: identifies its index
    raw = {**tiny_mnist(), "x_train": x_train, "y_train": labels}
    arrays = validate_arrays(**raw, source="memory")

    splits = make_splits(arrays, validation_size=200, max_train_samples=123, seed=7)
    index = np.rint(splits.x_train[:, 0, 0, 0] * 1000).astype(int)
    assert splits.num_train == 123
    assert len(set(index)) == 123 and index.max() < 800  # distinct, from the training part only
    np.testing.assert_array_equal(splits.y_train, labels[index])
    expected = np.bincount(labels[:800], minlength=10) * 123 / 800
    assert np.all(np.abs(np.bincount(splits.y_train, minlength=10) - expected) < 1)
    np.testing.assert_array_equal(splits.y_val, labels[800:])  # validation untouched

    again = make_splits(arrays, validation_size=200, max_train_samples=123, seed=7)
    np.testing.assert_array_equal(again.x_train, splits.x_train)
    other = make_splits(arrays, validation_size=200, max_train_samples=123, seed=8)
    assert not np.array_equal(other.x_train, splits.x_train)


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=10, max_size=300),
    fraction=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_subset_quotas(labels, fraction, seed):
    labels = np.array(labels)
    size = round(fraction * len(labels))
    index = stratified_subset(labels, size, seed)
    assert len(index) == len(np.unique(index)) == size
    counts = np.bincount(labels, minlength=10)
    chosen = np.bincount(labels[index], minlength=10)
    assert np.all(np.abs(chosen - counts * size / len(labels)) < 1)
    np.testing.assert_array_equal(index, stratified_subset(labels, size, seed))


# --- real MNIST ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_mnist_classic_split(real_mnist_path):
    arrays = load_mnist(real_mnist_path)
    splits = make_splits(arrays)
    assert isinstance(splits, DataSplits)
    assert (splits.num_train, splits.num_val, splits.num_test) == (50_000, 10_000, 10_000)
    # Published training-set class counts (LeCun et al.), over train + validation.
    published = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    total = np.bincount(splits.y_train, minlength=10) + np.bincount(splits.y_val, minlength=10)
    assert total.tolist() == published
    assert splits.x_train.dtype == np.float32 and splits.x_train.max() == 1.0
