"""Image format and size from the file header alone, so uploads are validated without decoding.

The size is the one OpenCV decodes to: an EXIF orientation that turns the picture (5 to 8, in a
JPEG's APP1, a PNG's eXIf chunk or a TIFF's first IFD) swaps width and height, as ``imdecode``
does. Pure and defensive: any garbage or truncated input gives None, never an exception.
"""

from __future__ import annotations

import struct

import msgspec

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_NO_LENGTH = frozenset([0x01, *range(0xD0, 0xD8)])
_TIFF_SHORT, _TIFF_LONG = 3, 4
_WIDTH, _HEIGHT, _ORIENTATION = 256, 257, 274
_MAX_TAGS = 1000  # an IFD claiming more is damaged; reading it would only cost time
_MAX_PNG_CHUNKS = 1000


class ImageInfo(msgspec.Struct, frozen=True):
    format: str  # "png" | "jpeg" | "bmp" | "tiff"
    width: int
    height: int


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    # eXIf must come before the image data; chunks are length, type, data, CRC.
    pos = 8
    for _ in range(_MAX_PNG_CHUNKS):
        if pos + 8 > len(data):
            break
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"eXIf":
            return _oriented(width, height, _exif_orientation(data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return width, height


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos, n = 2, len(data)
    orientation = 1
    while pos < n:
        if data[pos] != 0xFF:
            return None
        # Any number of 0xFF fill bytes may precede a marker.
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            # A second SOI, the end, or scan data before any frame header: nothing to read.
            return None
        if pos + 2 > n:
            return None
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            return None
        if marker == 0xE1 and data[pos + 2 : pos + 8] == b"Exif\0\0":
            orientation = _exif_orientation(data[pos + 8 : pos + length])
        if marker in _JPEG_SOF:
            if length < 7 or pos + 7 > n:
                return None
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return _oriented(width, height, orientation)
        pos += length
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 18:
        return None
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER: unsigned 16-bit sizes
        if len(data) < 22:
            return None
        return struct.unpack("<HH", data[18:22])
    if header_size < 16 or len(data) < 26:
        return None
    width, height = struct.unpack("<ii", data[18:26])
    if width < 0:
        return None
    # A negative height marks a top-down bitmap.
    return width, abs(height)


def _ifd0(data: bytes) -> dict[int, int]:
    """The SHORT and LONG single values of a TIFF structure's first IFD (tag -> value)."""
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return {}
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    if ifd < 8 or ifd + 2 > len(data):
        return {}
    (count,) = struct.unpack(e + "H", data[ifd : ifd + 2])
    tags: dict[int, int] = {}
    for k in range(min(count, _MAX_TAGS)):
        at = ifd + 2 + 12 * k
        if at + 12 > len(data):
            break
        tag, typ, num = struct.unpack(e + "HHI", data[at : at + 8])
        if num != 1 and tag != _WIDTH and tag != _HEIGHT:
            continue
        if typ == _TIFF_SHORT:
            (tags[tag],) = struct.unpack(e + "H", data[at + 8 : at + 10])
        elif typ == _TIFF_LONG:
            (tags[tag],) = struct.unpack(e + "I", data[at + 8 : at + 12])
    return tags


def _exif_orientation(exif: bytes) -> int:
    return _ifd0(exif).get(_ORIENTATION, 1)


def _oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    # 5-8 are the transposing orientations (a quarter turn, with or without a mirror).
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _tiff(data: bytes) -> tuple[int, int] | None:
    tags = _ifd0(data)
    if _WIDTH not in tags or _HEIGHT not in tags:
        return None
    return _oriented(tags[_WIDTH], tags[_HEIGHT], tags.get(_ORIENTATION, 1))


def sniff_image(data: bytes) -> ImageInfo | None:
    """Format and size of a PNG/JPEG/BMP/TIFF from its header; None if not one we can read."""
    try:
        if data.startswith(_PNG_SIGNATURE):
            fmt, size = "png", _png(data)
        elif data.startswith(b"\xff\xd8"):
            fmt, size = "jpeg", _jpeg(data)
        elif data.startswith(b"BM"):
            fmt, size = "bmp", _bmp(data)
        elif data.startswith((b"II*\x00", b"MM\x00*")):
            fmt, size = "tiff", _tiff(data)
        else:
            return None
    except (struct.error, IndexError, TypeError, AttributeError):
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return ImageInfo(format=fmt, width=int(size[0]), height=int(size[1]))
