"""Keypoint detection with bounded work: a downscaled gray copy, a keypoint cap, original coordinates.

Pure: an image array in, keypoint positions and descriptors out. Works on OpenCV 4.x (every
detector in ``cv2``) and 5.x (AKAZE and BRISK moved to ``cv2.xfeatures2d``).
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import msgspec
import numpy as np

from services.matcher.images import to_gray

# Detection runs on a copy of at most this many pixels (aspect kept). SIFT's scale space is the
# memory peak: ~430 MB above the interpreter at 2 MP (~700 MB at 3 MP) with one thread, and a
# worker must stay under 1 GB with two decoded 12 MP photos beside it (measured on OpenCV 5.0).
DETECT_MAX_PIXELS = 2_000_000
# At most this many keypoints per image, the strongest (by detector response) kept: it bounds
# descriptor matching (BF is quadratic) and the drawing.
MAX_KEYPOINTS = 5000
# Below this on its shorter side (after downscaling) an image has no keypoints: every detector's
# patch is larger, and ORB, BRISK and AKAZE raise on thinner images instead of finding nothing.
MIN_SIDE = 16


class Keypoints(msgspec.Struct, frozen=True):
    """Keypoints of one image, strongest first, in the original image's pixel coordinates."""

    # (N, 2) float32 x, y; pixel centres at integers, as OpenCV's keypoints.
    points: Any
    # (N, D) float32 (SIFT) or uint8 (binary descriptors); None when N == 0.
    descriptors: Any
    # The norm descriptors are compared with (cv2.NORM_L2, NORM_HAMMING or NORM_HAMMING2).
    norm: int
    # Original pixels per detection pixel (1.0 when the image was not downscaled).
    scale: float


def _create(name: str) -> Any:
    """The ``<name>_create`` factory wherever this OpenCV build keeps it."""
    for module in (cv2, getattr(cv2, "xfeatures2d", None)):
        create = getattr(module, f"{name}_create", None) if module is not None else None
        if create is not None:
            return create
    raise RuntimeError(f"this OpenCV build has no {name} detector")


# One per detector and process, made on first use: BRISK builds its sampling pattern when created
# (~30 ms, as long as detecting on a small image), and none of them keeps state between images.
@functools.cache
def make_detector(name: str) -> Any:
    """A detector/extractor for SIFT, ORB, AKAZE or BRISK, capped where OpenCV can cap it."""
    create = _create(name)
    if name in ("SIFT", "ORB"):
        # Both rank by response themselves; capping here also skips the dropped descriptors.
        return create(nfeatures=MAX_KEYPOINTS)
    return create()


def _detection_copy(gray: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The image to detect on and the original pixels per detection pixel along x and y."""
    h, w = gray.shape[:2]
    if h * w <= DETECT_MAX_PIXELS:
        return gray, 1.0, 1.0
    f = (DETECT_MAX_PIXELS / (h * w)) ** 0.5
    dw, dh = max(1, int(w * f)), max(1, int(h * f))
    # INTER_AREA averages: no aliasing, so fine texture does not turn into false corners.
    return cv2.resize(gray, (dw, dh), interpolation=cv2.INTER_AREA), w / dw, h / dh


def detect(image: np.ndarray, detector: str) -> Keypoints:
    """Detect and describe keypoints on a bounded gray copy; positions in original pixels."""
    extractor = make_detector(detector)
    norm = int(extractor.defaultNorm())
    small, sx, sy = _detection_copy(to_gray(image))
    if min(small.shape[:2]) < MIN_SIDE:
        return Keypoints(points=np.empty((0, 2), np.float32), descriptors=None, norm=norm, scale=max(sx, sy))
    found, descriptors = extractor.detectAndCompute(small, None)
    if descriptors is None or len(found) == 0:
        return Keypoints(points=np.empty((0, 2), np.float32), descriptors=None, norm=norm, scale=max(sx, sy))
    xy = np.array([k.pt for k in found], dtype=np.float64).reshape(-1, 2)
    response = np.array([k.response for k in found], dtype=np.float64)
    # Strongest first, ties by position: the cap and the order do not depend on OpenCV's order.
    order = np.lexsort((xy[:, 0], xy[:, 1], -response))[:MAX_KEYPOINTS]
    xy = xy[order]
    # Pixel centres: detection pixel i covers original pixels [i·s, (i+1)·s), centre (i+0.5)·s − 0.5.
    points = np.column_stack([(xy[:, 0] + 0.5) * sx - 0.5, (xy[:, 1] + 0.5) * sy - 0.5]).astype(np.float32)
    return Keypoints(points=points, descriptors=descriptors[order], norm=norm, scale=max(sx, sy))
