"""Tests of ``nas_mnist.predict`` / ``nas-mnist predict`` and of preparing images as MNIST was.

The fast tests use generated images; the slow ones a tiny Keras model trained for one epoch on
2,000 real MNIST images and exported with ``export_savedmodel`` (the signature of every export).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT

from nas_mnist.cli.main import main
from nas_mnist.exporting.images import ImageError, load_image, prepare_file, to_mnist


def _mnist() -> Path:
    path = Path(os.environ.get("NAS_MNIST_DATA") or REPO_ROOT.parent / "shared/data/mnist.npz")
    if not path.exists():
        pytest.skip(f"real MNIST not found at {path}; set NAS_MNIST_DATA to run this test")
    return path


def _mnist_test(real_mnist_path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(real_mnist_path) as data:
        return data["x_test"][:n], data["y_test"][:n]


def _save_as_paper_digit(digit: np.ndarray, path: Path, size: int = 56) -> Path:
    """An MNIST uint8 (28, 28) digit as a dark-on-light PNG of ``size`` x ``size`` pixels."""
    Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC).save(path)
    return path


# --- preparing images (fast) -------------------------------------------------------------------


def test_mnist_digits_pass_through_almost_unchanged(real_mnist_path):
    x, _ = _mnist_test(real_mnist_path, 100)
    correlations = [np.corrcoef(a.ravel() / 255.0, to_mnist(a / 255.0)[0].ravel())[0, 1]
                    for a in x.astype(np.float32)]
    assert np.median(correlations) > 0.99  # same 20x20 box, same centre of mass


def test_a_larger_dark_on_light_png_is_inverted_resized_and_centred(real_mnist_path, tmp_path):
    x, _ = _mnist_test(real_mnist_path, 50)
    correlations = []
    for i, digit in enumerate(x):
        image, info = prepare_file(_save_as_paper_digit(digit, tmp_path / f"{i}.png"))
        assert image.shape == (28, 28, 1) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert info == {"width": 56, "height": 56, "inverted": True}
        correlations.append(np.corrcoef(digit.ravel(), image.ravel())[0, 1])
        rows, cols = np.indices((28, 28))
        mass = image[..., 0].sum()
        com = ((rows * image[..., 0]).sum() / mass, (cols * image[..., 0]).sum() / mass)
        assert abs(com[0] - 14) < 1 and abs(com[1] - 14) < 1
    assert np.mean(correlations) > 0.9


def test_the_border_rule_decides_the_polarity():
    light_on_dark = np.zeros((40, 30), np.float32)
    light_on_dark[10:30, 12:18] = 1.0  # a bar, like a "1"
    prepared, inverted = to_mnist(light_on_dark)
    assert not inverted and prepared[..., 0][14, 14] > 0.5 and prepared[0, 0, 0] == 0.0
    prepared_dark, inverted_dark = to_mnist(1.0 - light_on_dark)
    assert inverted_dark
    np.testing.assert_allclose(prepared_dark, prepared, atol=1e-6)


def test_a_digit_is_scaled_into_a_20_pixel_box_keeping_its_aspect_ratio():
    wide = np.zeros((100, 300), np.float32)
    wide[40:60, 50:250] = 1.0  # 200 x 20 pixels of ink
    image = to_mnist(wide)[0][..., 0]
    rows, cols = np.nonzero(image > 0.5)
    assert np.ptp(cols) + 1 == 20 and np.ptp(rows) + 1 == 2


def test_blank_image_is_only_resized():
    image, inverted = to_mnist(np.zeros((10, 10), np.float32))
    assert image.shape == (28, 28, 1) and image.max() == 0.0 and not inverted


def test_npy_rgb_and_transparent_png_load_as_grayscale(tmp_path):
    rgb = np.zeros((8, 6, 3), np.uint8)
    rgb[..., 1] = 255
    np.save(tmp_path / "green.npy", rgb)
    np.testing.assert_allclose(load_image(tmp_path / "green.npy"), 0.587, atol=1e-3)
    np.save(tmp_path / "float.npy", np.full((5, 5), 0.25, np.float64))
    np.testing.assert_allclose(load_image(tmp_path / "float.npy"), 0.25)
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[3:7, 3:7] = (0, 0, 0, 255)  # a black square; the rest transparent (black, alpha 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawing.png")
    gray = load_image(tmp_path / "drawing.png")
    assert gray[0, 0] == 1.0 and gray[5, 5] == 0.0  # transparent is laid on white


def test_files_that_are_not_images_are_named(tmp_path):
    (tmp_path / "notes.png").write_text("not a PNG")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5)))
    for name in ("notes.png", "cube.npy", "missing.png"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 15,000 x 15,000 1-bit PNG (57 kB on disk): Pillow's decompression-bomb limit."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (15_000, 15_000), 1).save(path)
    return path


def test_oversized_images_are_refused_before_they_are_decoded(tmp_path, huge_png):
    from nas_mnist.exporting.images import MAX_IMAGE_PIXELS

    with pytest.raises(ImageError, match=r"huge.png: 225,000,000 pixels; .* at most"):
        load_image(huge_png)
    side = int(MAX_IMAGE_PIXELS**0.5) + 1  # over our cap, under Pillow's
    Image.new("1", (side, side), 1).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=rf"big.png: {side}x{side} pixels"):
        load_image(tmp_path / "big.png")
    np.save(tmp_path / "big.npy", np.lib.format.open_memmap(
        tmp_path / "tmp.npy", mode="w+", dtype=np.uint8, shape=(side, side)))
    with pytest.raises(ImageError, match=rf"big.npy: {side}x{side} pixels"):
        load_image(tmp_path / "big.npy")


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    paper = np.full((40, 40), 65535, np.uint16)  # a dark-on-light digit, mid-grey ink
    paper[8:32, 18:22] = 20000
    Image.fromarray(paper).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    gray = load_image(tmp_path / "deep.png")
    np.testing.assert_allclose(gray[0, 0], 1.0)
    np.testing.assert_allclose(gray[20, 20], 20000 / 65535, rtol=1e-5)
    image, info = prepare_file(tmp_path / "deep.png")
    assert info["inverted"] and image.max() > 0.5  # the digit is there, not a blank image


def _fake_export(folder: Path) -> Path:
    """A folder laid out as an export (``saved_model.pb``, variables, a manifest); no model."""
    from nas_mnist.exporting.layout import SAVED_MODEL_NAME
    from nas_mnist.exporting.manifest import write_manifest

    (folder / "variables").mkdir(parents=True)
    (folder / SAVED_MODEL_NAME).write_bytes(b"graph")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)))
    write_manifest(folder)
    return folder


def _flip_bytes(export: Path) -> None:
    data = next((export / "variables").glob("variables.data-*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))


def test_predict_checks_the_manifest_before_loading_the_model(tmp_path):
    import nas_mnist
    from nas_mnist.errors import InputError

    export = _fake_export(tmp_path / "model")
    _flip_bytes(export)
    np.save(tmp_path / "digit.npy", np.zeros((28, 28), np.uint8))
    with pytest.raises(InputError, match=r"1 problem\(s\) against manifest.json: changed: "
                                         r"variables/variables.data-00000-of-00001"):
        nas_mnist.predict(export, [tmp_path / "digit.npy"])


# --- classifying with an exported model (slow) -------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny CNN trained one epoch on 2,000 MNIST images, exported as an export folder."""
    import keras

    from nas_mnist.data import load_splits
    from nas_mnist.exporting.savedmodel import export_savedmodel

    splits = load_splits(_mnist(), max_train_samples=2000)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(splits.x_train, splits.y_train, epochs=2, batch_size=64, verbose=0)
    out = tmp_path_factory.mktemp("predict") / "model"
    export_savedmodel(model, None, {}, out)
    return out


@pytest.fixture(scope="module")
def paper_digits(model_dir, tmp_path_factory):
    """30 MNIST test digits as 56x56 dark-on-light PNGs, and the model's labels for the
    original arrays."""
    from nas_mnist.exporting.predict import _load_signature
    from nas_mnist.exporting.verification import predict_savedmodel

    x, _ = _mnist_test(_mnist(), 30)
    folder = tmp_path_factory.mktemp("digits")
    files = [_save_as_paper_digit(d, folder / f"digit{i}.png") for i, d in enumerate(x)]
    original = predict_savedmodel(_load_signature(model_dir),
                                  (x.astype(np.float32) / 255.0)[..., None])
    return files, original.argmax(axis=1)


@pytest.mark.slow
def test_predict_matches_the_model_on_the_original_arrays(model_dir, paper_digits):
    import nas_mnist

    files, expected = paper_digits
    predictions = nas_mnist.predict(model_dir, files)
    assert [p.file for p in predictions] == [str(f) for f in files]
    labels = np.array([p.label for p in predictions])
    assert (labels == expected).mean() >= 0.8
    for p in predictions:
        assert p.inverted and (p.width, p.height) == (56, 56)
        assert abs(sum(p.probabilities) - 1.0) < 1e-4
        assert p.probability == max(p.probabilities)


@pytest.mark.slow
def test_cli_json_classifies_the_good_files_and_exits_2_naming_the_bad_one(
        model_dir, paper_digits, tmp_path, capsys):
    files, expected = paper_digits
    bad = tmp_path / "readme.jpg"
    bad.write_text("hello")
    assert main(["predict", str(model_dir), str(files[0]), str(bad), str(files[1]),
                 "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert "readme.jpg" in captured.err and "not a readable image" in captured.err
    listing = json.loads(captured.out)
    assert [row["file"] for row in listing] == [str(files[0]), str(files[1])]
    assert all(set(row) == {"file", "label", "probability"} for row in listing)
    assert all(0 <= row["label"] <= 9 and 0 < row["probability"] <= 1 for row in listing)
    assert main(["predict", str(model_dir), str(files[0])]) == 0
    assert capsys.readouterr().out.startswith(f"{files[0]}: {expected[0]} (probability ")


def test_predict_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    (tmp_path / "digit.npy").write_bytes(b"")
    assert main(["predict", str(tmp_path), str(tmp_path / "digit.npy")]) == 2
    assert "not an export folder" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_a_tampered_export_exits_2_with_one_line(model_dir, paper_digits, tmp_path,
                                                        capsys):
    import shutil

    files, _ = paper_digits
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    _flip_bytes(tampered)
    assert main(["predict", str(tampered), str(files[0])]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "variables/variables.data" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and "DataLoss" not in err
    (tampered / "manifest.json").unlink()  # nothing to check against: TensorFlow's error
    assert main(["predict", str(tampered), str(files[0])]) == 2
    err = capsys.readouterr().err
    assert "TensorFlow cannot load the SavedModel" in err and "Traceback" not in err, err


@pytest.mark.slow
def test_cli_refuses_a_huge_image_and_classifies_the_good_one(model_dir, paper_digits,
                                                              huge_png, capsys):
    files, expected = paper_digits
    assert main(["predict", str(model_dir), str(huge_png), str(files[0])]) == 2
    captured = capsys.readouterr()
    assert "huge.png: 225,000,000 pixels" in captured.err and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert captured.out.startswith(f"{files[0]}: {expected[0]} (probability ")
