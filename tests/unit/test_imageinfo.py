"""Header sniffing (no decoding) and upload thumbnails."""

from __future__ import annotations

import struct
import zlib
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


def _exif(orientation: int, big_endian: bool = False) -> bytes:
    """A minimal EXIF (TIFF structure) whose first IFD holds one Orientation tag."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    return head + struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 274, 3, 1, orientation, 0) + struct.pack(e + "I", 0)


def _with_app1(jpeg: bytes, exif: bytes) -> bytes:
    segment = b"Exif\x00\x00" + exif
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def _with_exif_chunk(png: bytes, exif: bytes) -> bytes:
    chunk = b"eXIf" + exif
    at = 8 + 25  # after the signature and IHDR (13 bytes of data, plus length, type and CRC)
    return png[:at] + struct.pack(">I", len(exif)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[at:]


@pytest.mark.parametrize("orientation", [1, 3, 5, 6, 7, 8])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_exif_orientation_gives_the_size_opencv_decodes(fmt: str, orientation: int) -> None:
    picture = np.zeros((60, 200, 3), np.uint8)
    picture[:, :40] = 255
    if fmt == "jpeg":
        data = _with_app1(cv2.imencode(".jpg", picture)[1].tobytes(), _exif(orientation, big_endian=True))
    elif fmt == "png":
        data = _with_exif_chunk(cv2.imencode(".png", picture)[1].tobytes(), _exif(orientation))
    else:
        params = [cv2.IMWRITE_TIFF_COMPRESSION, 1]
        data = bytearray(cv2.imencode(".tiff", picture, params)[1].tobytes())
        data = _with_tiff_orientation(bytes(data), orientation)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    info = sniff_image(data)
    assert info is not None and (info.width, info.height) == (decoded.shape[1], decoded.shape[0])
    assert (info.width, info.height) == ((60, 200) if orientation >= 5 else (200, 60))


def _with_tiff_orientation(tiff: bytes, orientation: int) -> bytes:
    """Set (or add by replacing an unneeded tag) the Orientation tag of a TIFF's first IFD."""
    e = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    (count,) = struct.unpack(e + "H", tiff[ifd : ifd + 2])
    data = bytearray(tiff)
    entries = [struct.unpack(e + "HHI", tiff[ifd + 2 + 12 * k : ifd + 10 + 12 * k]) for k in range(count)]
    tags = [tag for tag, _, _ in entries]
    # OpenCV writes PlanarConfiguration (284), which is optional for one plane: reuse its slot,
    # keeping the entries sorted by tag as TIFF requires.
    k = tags.index(274) if 274 in tags else tags.index(284)
    at = ifd + 2 + 12 * k
    data[at : at + 12] = struct.pack(e + "HHIHH", 274, 3, 1, orientation, 0)
    order = sorted(range(count), key=lambda i: struct.unpack(e + "H", bytes(data[ifd + 2 + 12 * i : ifd + 4 + 12 * i]))[0])
    block = [bytes(data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]) for i in order]
    data[ifd + 2 : ifd + 2 + 12 * count] = b"".join(block)
    return bytes(data)
