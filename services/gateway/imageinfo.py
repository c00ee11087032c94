"""Image format and size from the file header alone, so uploads are validated without decoding.

Pure and defensive: any garbage or truncated input gives None, never an exception.
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


class ImageInfo(msgspec.Struct, frozen=True):
    format: str  # "png" | "jpeg" | "bmp" | "tiff"
    width: int
    height: int


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos, n = 2, len(data)
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
        if marker in _JPEG_SOF:
            if length < 7 or pos + 7 > n:
                return None
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
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


def _tiff(data: bytes) -> tuple[int, int] | None:
    if len(data) < 8:
        return None
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    if ifd < 8 or ifd + 2 > len(data):
        return None
    (count,) = struct.unpack(e + "H", data[ifd : ifd + 2])
    width = height = None
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(data):
            return None
        tag, typ, num = struct.unpack(e + "HHI", data[at : at + 8])
        if tag not in (256, 257) or num < 1:
            continue
        if typ == _TIFF_SHORT:
            (value,) = struct.unpack(e + "H", data[at + 8 : at + 10])
        elif typ == _TIFF_LONG:
            (value,) = struct.unpack(e + "I", data[at + 8 : at + 12])
        else:
            return None
        if tag == 256:
            width = value
        else:
            height = value
        if width is not None and height is not None:
            return width, height
    return None


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
