"""Your own digit images as MNIST inputs: load PNG/JPEG/``.npy``, grayscale, polarity, size.

MNIST's digits are light (255) on a dark (0) background, size-normalised to fit a 20x20 box
and centred by their centre of mass in a 28x28 frame. ``to_mnist`` prepares any image the same
way, so a model trained on MNIST sees what it was trained on:

1. grayscale: Pillow's ``convert("L")`` (ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B); a
   transparent background is first laid on white (a drawing exported with alpha);
2. scale to float32 in [0, 1] (``uint8`` / 255, 16-bit grayscale PNG / 65535; float ``.npy``
   arrays already in [0, 1] are kept, larger ones divided by 255);
3. polarity (``BORDER_INVERT_THRESHOLD``): if the mean of the outermost ring of pixels is above
   0.5 the background is light, i.e. a dark digit on paper, and the image is inverted
   (``1 - x``), since MNIST's background is dark;
4. size: the digit's bounding box (pixels at or above ``INK_THRESHOLD`` times the brightest
   pixel) is resized with Lanczos filtering so that its longer side is 20 pixels, keeping the
   aspect ratio;
5. centre: it is placed in a 28x28 frame so that its centre of mass falls on the frame's centre.

Steps 4 and 5 follow MNIST's own preparation: "The original black and white (bilevel) images
from NIST were size normalized to fit in a 20x20 pixel box while preserving their aspect ratio
[...] the images were centered in a 28x28 image by computing the center of mass of the pixels,
and translating the image so as to position this point at the center of the 28x28 field"
(Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/; LeCun et al., "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998). A blank image (no ink) is only resized to 28x28.

What this does not fix: photos with uneven lighting or shadows, several digits in one image,
thin strokes that vanish when a large image is shrunk to 20 pixels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from nas_mnist.errors import InputError

MNIST_SIZE = 28
"""Side of an MNIST image, pixels."""

DIGIT_BOX = 20
"""Side of the box MNIST's digits were size-normalised into, pixels (LeCun et al.)."""

BORDER_INVERT_THRESHOLD = 0.5
"""Mean brightness of the border ring, in [0, 1], above which an image counts as dark-on-light
and is inverted."""

INK_THRESHOLD = 0.3
"""Pixels at or above this fraction of the brightest pixel count as the digit (bounding box)."""

MNIST_CENTRE = 14.0
"""Row and column index (0-based) where MNIST's digits have their centre of mass: measured as
13.99 and 14.00 (means over the first 5,000 training images), i.e. pixel 14, not 13.5."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")

MAX_IMAGE_PIXELS = 4096 * 4096
"""The most pixels (width x height) of an image file; larger ones are refused before they are
decoded. Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89 million, an error from 179
million) lets a 10,000 x 10,000 image through, which costs about 2 GB to prepare; a digit needs
far fewer pixels."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
"""Pillow's modes of 16-bit grayscale images (a 16-bit PNG opens as "I;16")."""


class ImageError(InputError):
    """A file that cannot be read as an image (the message names it)."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a grayscale float32 array in [0, 1], as stored (no inversion).

    Args:
        path: a PNG or JPEG file (any mode: grayscale, RGB, palette, with or without alpha), or a
            ``.npy`` array (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) of integers 0..255 or
            floats (in [0, 1], or 0..255).

    Returns:
        float32 array (h, w), values in [0, 1].

    Raises:
        ImageError: the file is missing, unreadable, not an image, an array of another shape,
            or over ``MAX_IMAGE_PIXELS`` (refused from its header, before it is decoded).
    """
    import warnings

    file = Path(path)
    if not file.is_file():
        raise ImageError(f"{file}: no such file")
    if file.suffix.lower() == ".npy":
        return _load_array(file)
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                _check_pixels(image.size, file)  # from the header, before decoding
                image.load()
                gray = _to_gray(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow: "Image size (N pixels)"
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise _too_large(file, pixels) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{file}: not a readable image ({exc})") from None
    return _check_size(gray, file)


def _to_gray(image: Any) -> np.ndarray:
    """A decoded Pillow image as float32 (h, w) in [0, 1]: 16-bit grayscale divided by 65535
    (Pillow's ``convert("L")`` would clip it to 255), the others through ``convert("L")``, a
    transparent background laid on white first."""
    from PIL import Image

    if image.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):  # a tRNS grey level: laid on white
            gray[np.asarray(image) == transparent] = 1.0
        return gray
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _check_pixels(size: tuple[int, int], file: Path) -> None:
    """Refuse an image of more than ``MAX_IMAGE_PIXELS``; ``size`` is (width, height)."""
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _too_large(file, f"{size[0]}x{size[1]} pixels")


def _too_large(file: Path, pixels: str) -> ImageError:
    return ImageError(f"{file}: {pixels}; an image has at most {MAX_IMAGE_PIXELS:,} pixels "
                      "(e.g. 4096x4096); shrink it first")


def _load_array(file: Path) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False, mmap_mode="r")  # the shape, not the data
        if array.ndim >= 2:
            _check_pixels((array.shape[1], array.shape[0]), file)
        array = np.array(array)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{file}: not a readable .npy array ({exc})") from None
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        channels = array[..., :3].astype(np.float64)
        array = channels[..., 0] if channels.shape[-1] == 1 else channels @ [0.299, 0.587, 0.114]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ImageError(f"{file}: a {array.dtype} array of shape {array.shape}; expected an "
                         "image (h, w) or (h, w, 1|3|4)")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise ImageError(f"{file}: the array holds NaN or infinite values")
    if np.issubdtype(array.dtype, np.integer) or values.max(initial=0.0) > 1.0:
        values = values / 255.0
    return _check_size(np.clip(values, 0.0, 1.0), file)


def _check_size(gray: np.ndarray, file: Path) -> np.ndarray:
    if min(gray.shape) < 1:
        raise ImageError(f"{file}: an empty image ({gray.shape[1]}x{gray.shape[0]})")
    return gray


def to_mnist(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Prepare a grayscale image as MNIST was prepared (steps 3 to 5 of the module docstring).

    Args:
        gray: float32 array (h, w) of any size, values in [0, 1].

    Returns:
        (float32 array (28, 28, 1) in [0, 1], light digit on dark; whether it was inverted).
    """
    inverted = bool(_border_mean(gray) > BORDER_INVERT_THRESHOLD)
    image = 1.0 - gray if inverted else gray
    peak = float(image.max(initial=0.0))
    if peak <= 0.0:
        return _resize(image, (MNIST_SIZE, MNIST_SIZE))[..., None], inverted
    rows, cols = np.nonzero(image >= INK_THRESHOLD * peak)
    digit = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    digit = np.clip(_resize(digit, size), 0.0, 1.0)
    return _centre(digit)[..., None], inverted


def _border_mean(gray: np.ndarray) -> float:
    """Mean of the outermost ring of pixels (the whole image if it is 2 pixels wide or less)."""
    if min(gray.shape) <= 2:
        return float(gray.mean())
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return float(ring.mean())


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of a float32 (h, w) array to ``size`` = (rows, columns)."""
    from PIL import Image

    if image.shape == size:
        return image.astype(np.float32)
    resized = Image.fromarray(image.astype(np.float32)).resize(
        (size[1], size[0]), Image.Resampling.LANCZOS
    )
    return np.asarray(resized, dtype=np.float32)


def _centre(digit: np.ndarray) -> np.ndarray:
    """Place ``digit`` (at most 20x20) in a 28x28 frame with its centre of mass at pixel
    (``MNIST_CENTRE``, ``MNIST_CENTRE``), shifted back inside the frame if the shift would cut
    it."""
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    height, width = digit.shape
    total = float(digit.sum())
    rows, cols = np.indices(digit.shape)
    com_row = float((rows * digit).sum() / total) if total > 0 else (height - 1) / 2
    com_col = float((cols * digit).sum() / total) if total > 0 else (width - 1) / 2
    centre = MNIST_CENTRE
    top = int(np.clip(round(centre - com_row), 0, MNIST_SIZE - height))
    left = int(np.clip(round(centre - com_col), 0, MNIST_SIZE - width))
    frame[top : top + height, left : left + width] = digit
    return frame


def prepare_file(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """``load_image`` then ``to_mnist``.

    Returns:
        (float32 array (28, 28, 1) in [0, 1], {"width", "height", "inverted"} of the file).

    Raises:
        ImageError: as ``load_image``.
    """
    gray = load_image(path)
    image, inverted = to_mnist(gray)
    return image, {"width": gray.shape[1], "height": gray.shape[0], "inverted": inverted}
