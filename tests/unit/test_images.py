"""Decoding uploads and encoding result images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from services.matcher.errors import InputError
from services.matcher.images import decode_image, encode_png

IMAGES = Path(__file__).resolve().parents[1] / "data"


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_decode_colour_and_gray() -> None:
    data = (IMAGES / "messi5.jpg").read_bytes()
    colour = decode_image(data, grayscale=False, name="image")
    gray = decode_image(data, grayscale=True, name="image")
    assert colour.shape == (342, 548, 3) and colour.dtype == np.uint8
    assert gray.shape == (342, 548) and gray.dtype == np.uint8


def test_gray_file_decodes_to_three_channels_in_colour_mode() -> None:
    data = (IMAGES / "box.png").read_bytes()
    assert decode_image(data, grayscale=False, name="image").shape == (223, 324, 3)


def test_alpha_is_dropped() -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[..., 3] = 7
    image = decode_image(_png(rgba), grayscale=False, name="template")
    assert image.shape == (10, 12, 3)
    assert int(image[0, 0, 2]) == 200


@pytest.mark.parametrize("grayscale", [True, False])
def test_sixteen_bit_comes_out_as_uint8(grayscale: bool) -> None:
    deep = np.full((8, 9, 3), 65535, np.uint16)
    for ext in (".png", ".tiff"):
        ok, buf = cv2.imencode(ext, deep)
        assert ok
        image = decode_image(buf.tobytes(), grayscale=grayscale, name="image")
        assert image.dtype == np.uint8
        assert image.shape[:2] == (8, 9)
        assert int(image.max()) == 255


def test_empty_data_names_the_field() -> None:
    with pytest.raises(InputError, match="'template'"):
        decode_image(b"", grayscale=True, name="template")


def test_garbage_names_the_field() -> None:
    with pytest.raises(InputError, match="could not decode 'image'"):
        decode_image(b"this is not an image at all" * 10, grayscale=False, name="image")


def test_truncated_png_is_an_input_error() -> None:
    data = (IMAGES / "box.png").read_bytes()[:40]
    with pytest.raises(InputError):
        decode_image(data, grayscale=True, name="image")


@pytest.mark.parametrize("compression", [1, 3, 9])
def test_encode_png_is_lossless(compression: int) -> None:
    image = cv2.imread(str(IMAGES / "messi5.jpg"), cv2.IMREAD_COLOR)
    data = encode_png(image, compression)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), image)


@pytest.mark.parametrize("grayscale", [True, False])
@pytest.mark.parametrize("scale", [1.0, 4000.0])
def test_float_tiff_is_read_and_scaled_to_eight_bits(grayscale: bool, scale: float) -> None:
    """OpenCV's 8-bit decode refuses 32-bit samples; intensities in 0..1 keep their values, other
    ranges (counts, depths) are stretched to 0..255."""
    original = cv2.imread(str(IMAGES / "messi5.jpg"), cv2.IMREAD_COLOR)
    ok, data = cv2.imencode(".tiff", original.astype(np.float32) / 255 * scale)
    assert ok
    image = decode_image(data.tobytes(), grayscale=grayscale, name="image")
    assert image.dtype == np.uint8 and image.shape[:2] == original.shape[:2]
    assert image.ndim == (2 if grayscale else 3)
    expected = cv2.cvtColor(original, cv2.COLOR_BGR2GRAY) if grayscale else original
    if scale == 1.0:
        assert np.abs(image.astype(int) - expected).max() <= 1
    else:
        assert np.corrcoef(image.ravel(), expected.ravel())[0, 1] > 0.99


def test_float_tiff_of_nothing_but_nan_is_an_input_error() -> None:
    ok, data = cv2.imencode(".tiff", np.full((20, 30), np.nan, np.float32))
    assert ok
    with pytest.raises(InputError, match="could not decode 'image'"):
        decode_image(data.tobytes(), grayscale=True, name="image")
