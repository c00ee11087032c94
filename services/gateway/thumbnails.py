"""Small previews of uploaded images, in the upload's own format.

Decoding is the cost: a 25-megapixel PNG decodes to 75 MB of pixels. OpenCV's reduced decoding
(``IMREAD_REDUCED_COLOR_2/4/8``) scales a JPEG while decoding it (6 MB instead of 146 MB for a
25 MP photo, measured) and halves the peak for PNG and BMP; TIFF is decoded whole because its
reduced mode ignores the EXIF orientation. The gateway makes one thumbnail at a time.
"""

from __future__ import annotations

import cv2
import numpy as np

_ENCODE_EXT = {
    ".png": ".png",
    ".jpg": ".jpg",
    ".jpeg": ".jpg",
    ".jpe": ".jpg",
    ".bmp": ".bmp",
    ".dib": ".bmp",
    ".tif": ".tiff",
    ".tiff": ".tiff",
}
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _decode_flag(longest_side: int | None, ext: str, max_side: int) -> int:
    """The cheapest decoding that still gives at least ``max_side`` pixels on the longer side."""
    if longest_side is None or ext in (".tif", ".tiff"):
        return cv2.IMREAD_COLOR
    for factor in (8, 4, 2):
        if longest_side // factor >= max_side:
            return _REDUCED[factor]
    return cv2.IMREAD_COLOR


def make_thumbnail(data: bytes, ext: str, max_side: int = 256, longest_side: int | None = None) -> bytes | None:
    """Downscaled copy (longer side ≤ max_side, never upscaled) encoded like ext; None if undecodable.

    ``longest_side`` (from the file header) lets the decoder scale while it decodes."""
    if not data:
        return None
    ext = "." + ext.lower().lstrip(".")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _decode_flag(longest_side, ext, max_side))
        if image is None or image.size == 0:
            return None
        h, w = image.shape[:2]
        scale = max_side / max(h, w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(_ENCODE_EXT.get(ext, ".png"), image)
    except cv2.error:
        return None
    return buf.tobytes() if ok else None


def placeholder(ext: str, side: int = 64) -> bytes:
    """A gray square with a cross, encoded like ``ext``: the preview of an image that cannot be
    decoded (the task itself ends in ``error`` saying why)."""
    image = np.full((side, side, 3), 200, np.uint8)
    cv2.line(image, (8, 8), (side - 9, side - 9), (90, 90, 90), 3)
    cv2.line(image, (8, side - 9), (side - 9, 8), (90, 90, 90), 3)
    ok, buf = cv2.imencode(_ENCODE_EXT.get("." + ext.lower().lstrip("."), ".png"), image)
    assert ok
    return buf.tobytes()
