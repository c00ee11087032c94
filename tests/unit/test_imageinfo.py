"""Header sniffing (no decoding) and upload thumbnails."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.gateway.imageinfo import ImageInfo, sniff_image
from services.gateway.thumbnails import make_thumbnail

IMAGES = Path(__file__).resolve().parents[1] / "data"
REAL = sorted(p for p in IMAGES.iterdir() if p.suffix in (".png", ".jpg"))


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_files_give_their_true_size(path: Path) -> None:
    h, w = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    fmt = "png" if path.suffix == ".png" else "jpeg"
    assert sniff_image(path.read_bytes()) == ImageInfo(format=fmt, width=w, height=h)


@pytest.mark.parametrize("ext,fmt", [(".bmp", "bmp"), (".tiff", "tiff"), (".png", "png"), (".jpg", "jpeg")])
@pytest.mark.parametrize("shape", [(37, 53), (300, 70, 3), (1, 1)])
def test_encoded_images_give_the_right_size(ext: str, fmt: str, shape: tuple[int, ...]) -> None:
    data = _encode(ext, np.zeros(shape, np.uint8))
    assert sniff_image(data) == ImageInfo(format=fmt, width=shape[1], height=shape[0])


def test_big_endian_tiff_with_short_and_long_fields() -> None:
    def tiff(width_type: int, width: int, height: int) -> bytes:
        entries = [(256, width_type, 1, width), (257, 4, 1, height)]
        body = struct.pack(">H", len(entries))
        for tag, typ, n, value in entries:
            packed = struct.pack(">HH", value, 0) if typ == 3 else struct.pack(">I", value)
            body += struct.pack(">HHI", tag, typ, n) + packed
        return b"MM\x00*" + struct.pack(">I", 8) + body + b"\x00\x00\x00\x00"

    assert sniff_image(tiff(3, 640, 70000)) == ImageInfo("tiff", 640, 70000)
    assert sniff_image(tiff(4, 123, 45)) == ImageInfo("tiff", 123, 45)


def test_top_down_and_core_header_bmp() -> None:
    data = bytearray(_encode(".bmp", np.zeros((20, 30, 3), np.uint8)))
    data[22:26] = struct.pack("<i", -20)
    assert sniff_image(bytes(data)) == ImageInfo("bmp", 30, 20)
    core = b"BM" + bytes(12) + struct.pack("<IHHHH", 12, 31, 17, 1, 24)
    assert sniff_image(core) == ImageInfo("bmp", 31, 17)


def test_jpeg_with_fill_bytes_and_tables_before_the_frame() -> None:
    data = _encode(".jpg", np.zeros((41, 59, 3), np.uint8))
    # Fill bytes before every marker after SOI are legal.
    padded = data[:2] + data[2:].replace(b"\xff\xdb", b"\xff\xff\xff\xdb", 1)
    assert sniff_image(padded) == ImageInfo("jpeg", 59, 41)
    # A DHT (C4) segment must not be mistaken for a frame header.
    dht = b"\xff\xc4" + struct.pack(">H", 7) + b"\x00\x10\x20\x30\x40"
    assert sniff_image(data[:2] + dht + data[2:]) == ImageInfo("jpeg", 59, 41)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage that is not an image",
        b"\x00" * 100,
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8",
        b"\xff\xd8\xff\xe0\x00\x01",
        b"BM",
        b"II*\x00\xff\xff\xff\xff",
        b"MM\x00*\x00\x00\x00\x08\xff\xff",
    ],
)
def test_garbage_gives_none(data: bytes) -> None:
    assert sniff_image(data) is None


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff"])
def test_truncated_gives_none(ext: str) -> None:
    data = _encode(ext, np.zeros((20, 30, 3), np.uint8))
    assert sniff_image(data[:10]) is None
    # Every prefix is handled without raising.
    for n in range(len(data[:200])):
        sniff_image(data[:n])


def test_zero_size_gives_none() -> None:
    data = bytearray(_encode(".png", np.zeros((5, 5), np.uint8)))
    data[16:20] = b"\x00\x00\x00\x00"
    assert sniff_image(bytes(data)) is None


def test_random_bytes_never_raise() -> None:
    rng = np.random.default_rng(0)
    for prefix in (b"\xff\xd8", b"BM", b"II*\x00", b"MM\x00*", b"\x89PNG\r\n\x1a\n"):
        for _ in range(200):
            sniff_image(prefix + rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes())


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".weird"])
def test_thumbnail_fits_and_keeps_aspect(ext: str) -> None:
    data = (IMAGES / "messi5.jpg").read_bytes()
    thumb = make_thumbnail(data, ext)
    assert thumb is not None
    image = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    assert max(h, w) == 256
    assert abs(w / h - 548 / 342) < 0.01
    expected = {".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}.get(ext, "png")
    assert sniff_image(thumb).format == expected


def test_thumbnail_never_upscales() -> None:
    data = _encode(".png", np.zeros((40, 60, 3), np.uint8))
    thumb = make_thumbnail(data, ".png")
    assert cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR).shape == (40, 60, 3)


def test_thumbnail_of_garbage_is_none() -> None:
    assert make_thumbnail(b"", ".png") is None
    assert make_thumbnail(b"not an image", ".jpg") is None
