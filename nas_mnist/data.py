"""Load MNIST from a local file or Keras' download, validate it, and split it.

Sources, in order: an explicit path (an ``.npz`` file or a folder of IDX files), the
``NAS_MNIST_DATA`` environment variable (same meaning), then ``keras.datasets.mnist.load_data()``,
which downloads the set once and caches it under ``~/.keras/datasets``.

The validation split is the classic one: the last 10,000 of the 60,000 training images, as in the
``mnist.pkl.gz`` distribution of LeCun, Cortes and Burges, "The MNIST database of handwritten
digits" (yann.lecun.com/exdb/mnist), used by e.g. the deeplearning.net tutorials. The test set is
the official 10,000-image test set and is never used for model selection.

Keras is imported only inside the download path, so loading a local file does not pay for
TensorFlow start-up.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas_mnist.errors import InputError

logger = logging.getLogger(__name__)

DATA_ENV_VAR = "NAS_MNIST_DATA"
"""Environment variable naming a local MNIST source (an ``.npz`` file or an IDX folder)."""

DEFAULT_VALIDATION_SIZE = 10_000
"""Images held out from the end of the training set: the classic 50,000/10,000 split."""

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
KERAS_SOURCE = "keras.datasets.mnist"

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", _IDX_IMAGES_MAGIC),
    "y_train": ("train-labels-idx1-ubyte", _IDX_LABELS_MAGIC),
    "x_test": ("t10k-images-idx3-ubyte", _IDX_IMAGES_MAGIC),
    "y_test": ("t10k-labels-idx1-ubyte", _IDX_LABELS_MAGIC),
}


class DataError(InputError):
    """A data source is missing or malformed; ``str(err)`` names the file and the problem and
    says what to do."""


def _require_regular_file(path: Path, source: str) -> None:
    """Refuse anything but a regular file (symbolic links followed): a named pipe waits for a
    writer without limit, a device such as /dev/zero never ends.

    Raises:
        DataError: naming ``source``.
    """
    if not stat.S_ISREG(path.stat().st_mode):
        raise DataError(f"{source} is not a regular file (a named pipe, a device or a socket); "
                        "pass an MNIST .npz file or a folder of the four IDX files.")


@dataclass(frozen=True, eq=False)
class MnistArrays:
    """MNIST as loaded and validated, before splitting.

    Attributes:
        x_train: uint8 array (n, 28, 28), values 0..255; or float32 with values in [0, 1] if
            the source held floats.
        y_train: int32 array (n,), values 0..9.
        x_test: Same dtype and layout as ``x_train``, (k, 28, 28).
        y_test: int32 array (k,), values 0..9.
        source: Where the arrays came from: a path, or ``"keras.datasets.mnist"``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and test sets ready for a Keras model.

    Attributes:
        x_train: float32 array (n, 28, 28, 1), values in [0, 1], C-contiguous.
        y_train: int32 array (n,), values 0..9.
        x_val: float32 array (m, 28, 28, 1), values in [0, 1].
        y_val: int32 array (m,), values 0..9.
        x_test: float32 array (k, 28, 28, 1), values in [0, 1].
        y_test: int32 array (k,), values 0..9.
        source: Where the arrays came from (see :class:`MnistArrays`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return len(self.y_train)

    @property
    def num_val(self) -> int:
        """Number of validation images."""
        return len(self.y_val)

    @property
    def num_test(self) -> int:
        """Number of test images."""
        return len(self.y_test)

    def describe(self) -> str:
        """One line: the split sizes and the source."""
        return (
            f"MNIST: {self.num_train:,} train / {self.num_val:,} validation / "
            f"{self.num_test:,} test images from {self.source}"
        )


def resolve_data_source(path: str | os.PathLike | None) -> str | None:
    """Choose the local data source.

    Args:
        path: An explicit ``.npz`` file or IDX folder, or None.

    Returns:
        ``path`` as a string if given; else the value of ``NAS_MNIST_DATA`` if it is set and
        non-empty; else None, meaning "download with Keras".
    """
    if path is not None:
        return os.fspath(path)
    return os.environ.get(DATA_ENV_VAR) or None


def load_mnist(path: str | os.PathLike | None = None) -> MnistArrays:
    """Load and validate MNIST from the first available source.

    Args:
        path: An ``.npz`` file (keys x_train, y_train, x_test, y_test) or a folder with the four
            IDX files. If None, ``NAS_MNIST_DATA`` is used; if that is unset, Keras downloads
            the set (cached in ``~/.keras/datasets``).

    Returns:
        The validated arrays.

    Raises:
        DataError: The source does not exist, cannot be read or holds malformed arrays, or the
            Keras download failed.
    """
    source = resolve_data_source(path)
    if source is None:
        return _load_from_keras()
    origin = "" if path is not None else f" (from the {DATA_ENV_VAR} environment variable)"
    source_path = Path(source)
    if not source_path.exists():
        raise DataError(
            f"{source}{origin} does not exist. Pass --data PATH with an .npz file or a folder "
            f"of MNIST IDX files, or set {DATA_ENV_VAR}.")
    logger.info("Loading MNIST from %s%s", source, origin)
    if source_path.is_dir():
        return load_idx_folder(source_path)
    return load_npz(source_path)


def _load_from_keras() -> MnistArrays:
    """Download MNIST with Keras (cached in ``~/.keras/datasets``) and validate it."""
    logger.info("No local data given; downloading MNIST with %s.load_data()", KERAS_SOURCE)
    hint = (
        f"Pass --data PATH with an .npz file or a folder of MNIST IDX files, or set {DATA_ENV_VAR}."
    )
    try:
        import keras
    except ImportError as err:
        raise DataError(f"{KERAS_SOURCE} is unavailable: {err}. {hint}") from err
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # the download fails in many ways (URLError, SSL, disk, ...)
        raise DataError(
            f"{KERAS_SOURCE}.load_data() failed to download MNIST: {err}. {hint}") from err
    return validate_arrays(x_train, y_train, x_test, y_test, source=KERAS_SOURCE)


def load_npz(path: str | os.PathLike) -> MnistArrays:
    """Load MNIST from an ``.npz`` archive without unpickling anything.

    Args:
        path: A file written by ``np.savez`` with keys x_train, y_train, x_test, y_test, laid out
            as ``keras.datasets.mnist.load_data()`` returns them. Any file name is accepted.

    Returns:
        The validated arrays, with ``source`` set to ``path``.

    Raises:
        DataError: The file is missing or not a regular file (a named pipe, a device), is not a
            readable ``.npz`` archive, lacks a key, holds an object array, or holds arrays that
            fail :func:`validate_arrays`.
    """
    source = os.fspath(path)
    file_path = Path(source)
    if not file_path.exists():
        raise DataError(f"{source} does not exist. Pass the path of an MNIST .npz file.")
    if file_path.is_dir():
        raise DataError(
            f"{source} is a folder, not an .npz file. Use load_idx_folder for IDX files.")
    _require_regular_file(file_path, source)
    try:
        archive = np.load(file_path, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise DataError(
            f"{source} is not a readable .npz archive (truncated or corrupt: {err}). "
            "Re-create it with np.savez or download it again.") from err
    except ValueError as err:
        # np.load raises ValueError for a file that is neither zip nor .npy (it assumes pickle).
        raise DataError(
            f"{source} is neither an .npz archive nor a .npy file ({err}); nas-mnist never "
            "unpickles data files. Save the arrays with np.savez.") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{source} holds a single .npy array, not an .npz archive with keys "
            f"{', '.join(NPZ_KEYS)}. Save the four arrays with np.savez.")
    with archive:
        found = sorted(archive.files)
        missing = [key for key in NPZ_KEYS if key not in found]
        if missing:
            raise DataError(
                f"{source} lacks key(s) {', '.join(missing)}: found {found or 'no keys'}, "
                f"expected {list(NPZ_KEYS)}. Save the arrays with np.savez(path, x_train=..., "
                "y_train=..., x_test=..., y_test=...).")
        arrays = {key: _read_npz_member(archive, key, source) for key in NPZ_KEYS}
    return validate_arrays(**arrays, source=source)


def _read_npz_member(archive: np.lib.npyio.NpzFile, key: str, source: str) -> np.ndarray:
    try:
        return archive[key]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise DataError(
            f"{source}: {key} cannot be read (truncated or corrupt: {err}). "
            "Re-create the file with np.savez or download it again.") from err
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise DataError(
                f"{source}: {key} holds an object array, which would need pickle to load; "
                "nas-mnist never unpickles data files. Save the arrays with numeric dtypes."
            ) from err
        raise DataError(f"{source}: {key} cannot be read ({err}).") from err


def load_idx_folder(path: str | os.PathLike) -> MnistArrays:
    """Load MNIST from the four original IDX files.

    The files are those published by LeCun et al.: train-images-idx3-ubyte,
    train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally
    gzipped (``.gz``), and each also accepted with ``.`` instead of ``-`` before ``idx``
    (e.g. ``train-images.idx3-ubyte``).

    Args:
        path: The folder holding the four files.

    Returns:
        The validated arrays, with ``source`` set to ``path``.

    Raises:
        DataError: The folder or one of the files is missing or not a regular file (the message
            names which), or a file has a wrong magic number, wrong dimensions or a wrong length.
    """
    source = os.fspath(path)
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(
            f"{source} is not a folder. Pass a folder holding the four MNIST IDX files.")
    found = {key: _find_idx_file(folder, name) for key, (name, _) in _IDX_FILES.items()}
    missing = [_IDX_FILES[key][0] for key, file_path in found.items() if file_path is None]
    if missing:  # name every missing file before reading any of them
        raise DataError(
            f"{source} lacks the IDX file(s) {', '.join(missing)} (or the same with .gz); it "
            f"needs all four of {', '.join(n for n, _ in _IDX_FILES.values())}. Add the missing "
            "file or pass an .npz file instead.")
    arrays = {key: _read_idx(found[key], _IDX_FILES[key][1]) for key in _IDX_FILES}
    return validate_arrays(**arrays, source=source)


def _find_idx_file(folder: Path, name: str) -> Path | None:
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
        if (folder / candidate).exists():
            _require_regular_file(folder / candidate, os.fspath(folder / candidate))
            return folder / candidate
    return None


def _read_idx(file_path: Path, magic: int) -> np.ndarray:
    try:
        if file_path.suffix == ".gz":
            with gzip.open(file_path, "rb") as handle:
                data = handle.read()
        else:
            data = file_path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{file_path} cannot be read ({err}); download it again.") from err
    num_dims = magic & 0xFF
    header_size = 4 + 4 * num_dims
    found = int.from_bytes(data[:4], "big") if len(data) >= header_size else None
    if found != magic:
        raise DataError(
            f"{file_path} is not an IDX file of unsigned bytes with {num_dims} dimension(s): "
            f"expected magic number 0x{magic:08X}, found "
            f"{'a too-short header' if found is None else f'0x{found:08X}'}. "
            "Check the file name and contents.")
    dims = struct.unpack(f">{num_dims}I", data[4:header_size])
    # math.prod: Python integers do not overflow (np.prod of four 32-bit dimensions wraps around
    # in int64 and could match the file's length, to fail later in reshape without the file name).
    expected = header_size + math.prod(dims)
    if len(data) != expected:
        raise DataError(
            f"{file_path} has {len(data):,} bytes; its header (dimensions {dims}) implies "
            f"{expected:,}. The file is truncated or corrupt; download it again.")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def validate_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    source: str,
) -> MnistArrays:
    """Check that four arrays form a usable MNIST set.

    Args:
        x_train: Images, (n, 28, 28) or (n, 28, 28, 1); integers 0..255 or floats in [0, 1].
        y_train: Labels, (n,), integers (or integral floats) 0..9.
        x_test: Images, (k, 28, 28) or (k, 28, 28, 1), same value rules as ``x_train``.
        y_test: Labels, (k,), same value rules as ``y_train``.
        source: Where the arrays came from; named in every error.

    Returns:
        The arrays with images as uint8 (n, 28, 28) (float32 if given floats) and labels as int32.

    Raises:
        DataError: An array has an object or non-numeric dtype, a wrong shape, no images, values
            out of range (or NaN/inf), or images and labels differ in length. The message names
            ``source`` and the array's key.
    """
    x_train = _check_images(x_train, "x_train", source)
    y_train = _check_labels(y_train, "y_train", source)
    x_test = _check_images(x_test, "x_test", source)
    y_test = _check_labels(y_test, "y_test", source)
    for x_key, x, y_key, y in (
        ("x_train", x_train, "y_train", y_train),
        ("x_test", x_test, "y_test", y_test),
    ):
        if len(x) != len(y):
            raise DataError(
                f"{source}: {x_key} has {len(x):,} images but {y_key} has {len(y):,} labels; "
                "each image needs exactly one label.")
    return MnistArrays(x_train, y_train, x_test, y_test, source=source)


def _check_images(x: np.ndarray, key: str, source: str) -> np.ndarray:
    x = np.asarray(x)
    _check_numeric(x, key, source)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{source}: {key} has shape {x.shape}; expected (N, 28, 28) or (N, 28, 28, 1) "
            "grayscale 28x28 images.")
    if len(x) == 0:
        raise DataError(f"{source}: {key} holds no images; expected at least one.")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DataError(
                f"{source}: {key} holds NaN or infinite pixel values; expected floats in [0, 1].")
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{source}: {key} has float pixels in [{low:g}, {high:g}]; expected [0, 1]. "
                "Divide by 255 or save the images as uint8 0..255.")
        return x.astype(np.float32, copy=False)
    low, high = int(x.min()), int(x.max())
    if low < 0 or high > 255:
        raise DataError(f"{source}: {key} has integer pixels in {low}..{high}; expected 0..255.")
    return x.astype(np.uint8, copy=False)


def _check_labels(y: np.ndarray, key: str, source: str) -> np.ndarray:
    y = np.asarray(y)
    _check_numeric(y, key, source)
    if y.ndim != 1:
        raise DataError(
            f"{source}: {key} has shape {y.shape}; expected a 1-D array of class labels 0..9 "
            "(not one-hot).")
    if len(y) == 0:
        raise DataError(f"{source}: {key} holds no labels; expected at least one.")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{source}: {key} holds non-integral float labels; expected 0..9.")
    low, high = y.min(), y.max()
    if low < 0 or high > NUM_CLASSES - 1:
        raise DataError(
            f"{source}: {key} has labels in {low:g}..{high:g}; expected digit classes 0..9.")
    return y.astype(np.int32)


def _check_numeric(array: np.ndarray, key: str, source: str) -> None:
    if array.dtype == object:
        raise DataError(
            f"{source}: {key} is an object array; nas-mnist never unpickles data. "
            "Save the arrays with numeric dtypes.")
    if array.dtype.kind not in "iuf":
        raise DataError(f"{source}: {key} has dtype {array.dtype}; expected integers or floats.")


def make_splits(
    arrays: MnistArrays,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
    max_train_samples: int | None = None,
    seed: int = 0,
) -> DataSplits:
    """Hold out the validation set and prepare float inputs for Keras.

    The validation set is the last ``validation_size`` training images (the classic
    50,000/10,000 split of ``mnist.pkl.gz``), so it is the same whatever ``seed`` or
    ``max_train_samples`` is.

    Args:
        arrays: Validated MNIST (see :func:`validate_arrays`).
        validation_size: Images to hold out from the end of the training set; must be at least
            1 and leave at least 1 training image.
        max_train_samples: If given, keep a stratified random subset of this many images of the
            training part (class proportions preserved to within one image per class, order
            shuffled); between 10 and the training part's size. The validation set is untouched.
        seed: Seed for the subset and its order; the same seed gives the same subset.

    Returns:
        The splits: images float32 (n, 28, 28, 1) in [0, 1] (integer pixels divided by 255),
        labels int32 0..9.

    Raises:
        DataError: The training set has no more than ``validation_size`` images.
        ValueError: ``validation_size`` < 1, or ``max_train_samples`` is below 10 or above the
            training part's size.
    """
    num_total = len(arrays.y_train)
    if validation_size < 1:
        raise ValueError(f"validation_size must be at least 1, got {validation_size}.")
    num_train = num_total - validation_size
    if num_train < 1:
        raise DataError(
            f"{arrays.source}: the training set has {num_total:,} images, too few to hold out "
            f"{validation_size:,} for validation and keep any for training. "
            f"Lower validation_size below {num_total:,}.")
    x_train, y_train = arrays.x_train[:num_train], arrays.y_train[:num_train]
    if max_train_samples is not None:
        if not 10 <= max_train_samples <= num_train:
            raise ValueError(
                f"max_train_samples must be between 10 and the {num_train:,} training images "
                f"left after holding out {validation_size:,} for validation; "
                f"got {max_train_samples}."
            )
        index = stratified_subset(y_train, max_train_samples, seed)
        x_train, y_train = x_train[index], y_train[index]
    splits = DataSplits(
        x_train=_to_model_input(x_train),
        y_train=y_train.astype(np.int32),
        x_val=_to_model_input(arrays.x_train[num_train:]),
        y_val=arrays.y_train[num_train:].astype(np.int32),
        x_test=_to_model_input(arrays.x_test),
        y_test=arrays.y_test.astype(np.int32),
        source=arrays.source,
    )
    logger.debug("%s", splits.describe())
    return splits


def load_splits(
    path: str | os.PathLike | None = None, max_train_samples: int | None = None, seed: int = 0
) -> DataSplits:
    """``load_mnist(path)`` then ``make_splits``: the data of a search, as ``--data`` and
    ``--max-train-samples`` describe it.

    Raises:
        InputError: a missing or malformed data file (``DataError``), or a ``max_train_samples``
            out of range; the message names the flag or the file.
    """
    arrays = load_mnist(path)
    try:
        return make_splits(arrays, max_train_samples=max_train_samples, seed=seed)
    except DataError:
        raise
    except ValueError as exc:
        raise InputError(f"--max-train-samples: {exc}") from None


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Pick a class-stratified random subset.

    Each class gets its proportional share of ``size`` rounded by the largest-remainder method,
    so every class is within one image of its exact proportion.

    Args:
        labels: int array (n,), class labels.
        size: Number of indices to pick, 0..n.
        seed: Seed for ``np.random.default_rng``.

    Returns:
        int64 array (size,): distinct indices into ``labels``, in shuffled order.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quotas = np.floor(exact).astype(np.int64)
    shortfall = size - int(quotas.sum())
    quotas[np.argsort(quotas - exact, kind="stable")[:shortfall]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(labels == label))[:quota]
        for label, quota in zip(classes, quotas, strict=True)
    ]
    return rng.permutation(np.concatenate(chosen))


def _to_model_input(x: np.ndarray) -> np.ndarray:
    """Images (n, 28, 28) uint8 0..255 or float [0, 1] -> float32 (n, 28, 28, 1) in [0, 1]."""
    out = x.astype(np.float32, order="C")  # always a fresh copy
    if x.dtype.kind in "iu":
        out /= 255.0
    return out.reshape(*x.shape, 1)


@dataclass(frozen=True)
class DataFingerprint:
    """Which MNIST a search trained on, so that later commands can find and check it.

    Attributes:
        source: the absolute path of the ``.npz`` file or IDX folder, or
            ``"keras.datasets.mnist"`` (Keras' download).
        sha256: hex SHA-256 of the file (of a folder: of each IDX file's name and bytes, in name
            order); None for Keras' download.
    """

    source: str
    sha256: str | None


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()
                                                and "idx" in p.name)
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_fingerprint(path: str | os.PathLike | None) -> DataFingerprint:
    """The fingerprint of the source ``load_mnist(path)`` reads (``path``, else
    ``NAS_MNIST_DATA``, else Keras' download); reads the file once (about 0.05 s for the 11 MB
    ``mnist.npz``).

    Raises:
        DataError: the source does not exist, or is neither a folder nor a regular file.
    """
    source = resolve_data_source(path)
    if source is None:
        return DataFingerprint(KERAS_SOURCE, None)
    resolved = Path(source).expanduser().resolve()
    if not resolved.exists():
        raise DataError(f"{source} does not exist. Pass --data PATH with an .npz file or a "
                        "folder of the four MNIST IDX files.")
    if not resolved.is_dir():
        _require_regular_file(resolved, source)
    return DataFingerprint(os.fspath(resolved), _sha256_of(resolved))
