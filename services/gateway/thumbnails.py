"""Small previews of uploaded images, in the upload's own format."""

from __future__ import annotations

import cv2
import numpy as np

_ENCODE_EXT = {
    ".png": ".png",
    ".jpg": ".jpg",
    ".jpeg": ".jpg",
    ".bmp": ".bmp",
    ".tif": ".tiff",
    ".tiff": ".tiff",
}


def make_thumbnail(data: bytes, ext: str, max_side: int = 256) -> bytes | None:
    """Downscaled copy (longer side ≤ max_side, never upscaled) encoded like ext; None if undecodable."""
    if not data:
        return None
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            return None
        h, w = image.shape[:2]
        scale = max_side / max(h, w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(_ENCODE_EXT.get("." + ext.lower().lstrip("."), ".png"), image)
    except cv2.error:
        return None
    return buf.tobytes() if ok else None
