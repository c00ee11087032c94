"""Feature matching: keypoints, ratio-tested matches, a plausible homography, and the result picture.

Pure: image arrays and params in, a ``FeatureMatching`` out; every number is in the original
images' pixel coordinates, whatever size the detection ran at (``keypoints.DETECT_MAX_PIXELS``).
"""

from __future__ import annotations

from typing import Any

import cv2
import msgspec
import numpy as np

from contracts.params import FeatureParams
from contracts.results import FeatureResult
from services.matcher.descriptor_matching import ratio_test_matches
from services.matcher.homography import RANSAC_THRESHOLD, fit_homography
from services.matcher.images import to_bgr
from services.matcher.keypoints import detect

# The result picture is scaled down to fit this canvas (both images side by side, one scale):
# a 12 MP pair would otherwise make a 96 MP PNG that takes seconds to encode.
CANVAS_MAX_WIDTH, CANVAS_MAX_HEIGHT = 2560, 1440
_INLIER = (0, 200, 0)
_OUTLIER = (0, 0, 255)
# Matches without a homography are neither inliers nor outliers.
_UNVERIFIED = (0, 200, 255)
_OUTLINE = (255, 0, 255)


class FeatureMatching(msgspec.Struct, frozen=True):
    """The result as the API shows it, and what the picture needs (arrays never go on the wire)."""

    result: FeatureResult
    query_points: Any  # (Nq, 2) float32, original query pixels
    train_points: Any  # (Nt, 2) float32, original train pixels
    matches: Any  # (M, 2) int32 (query index, train index), best first
    inlier_mask: Any  # (M,) bool, or None without a homography
    corners: Any  # (4, 2) float64 query outline in train pixels, or None


def match_features(query: np.ndarray, train: np.ndarray, params: FeatureParams) -> FeatureMatching:
    """Find the query in the train image: good matches, best first, and a homography if plausible."""
    q, t = detect(query, params.detector), detect(train, params.detector)
    good = ratio_test_matches(
        q.descriptors, t.descriptors, norm=q.norm, flann=params.matcher == "FLANN",
        ratio=params.ratio_threshold, limit=params.max_matches,
    )
    matches = np.column_stack([good.query_idx, good.train_idx]).astype(np.int32)
    height, width = query.shape[:2]
    # The threshold is in train pixels: keypoint noise grows with the detection downscale.
    found = fit_homography(
        q.points[good.query_idx], t.points[good.train_idx], width, height, RANSAC_THRESHOLD * t.scale
    )
    result = FeatureResult(
        query_keypoints=len(q.points),
        train_keypoints=len(t.points),
        good_matches=len(matches),
        detector=params.detector,
        matcher=params.matcher,
    )
    if found is not None:
        result = msgspec.structs.replace(
            result,
            homography=[[float(v) for v in row] for row in found.matrix],
            inliers=int(found.inlier_mask.sum()),
            corners=[[round(float(x), 2), round(float(y), 2)] for x, y in found.corners],
        )
    return FeatureMatching(
        result=result,
        query_points=q.points,
        train_points=t.points,
        matches=matches,
        inlier_mask=None if found is None else found.inlier_mask,
        corners=None if found is None else found.corners,
    )


def canvas_scale(query_shape: tuple[int, ...], train_shape: tuple[int, ...]) -> float:
    """The one scale (≤ 1) at which both images side by side fit the canvas bound."""
    width = query_shape[1] + train_shape[1]
    height = max(query_shape[0], train_shape[0])
    return min(1.0, CANVAS_MAX_WIDTH / width, CANVAS_MAX_HEIGHT / height)


def _scaled(image: np.ndarray, f: float) -> np.ndarray:
    if f >= 1.0:
        return to_bgr(image)
    h, w = image.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return to_bgr(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def draw_matches(query_bgr: np.ndarray, train_bgr: np.ndarray, matching: FeatureMatching) -> np.ndarray:
    """Both pictures side by side; inliers green, outliers red (yellow: no homography); the outline."""
    f = canvas_scale(query_bgr.shape, train_bgr.shape)
    left, right = _scaled(query_bgr, f), _scaled(train_bgr, f)
    canvas = np.zeros((max(left.shape[0], right.shape[0]), left.shape[1] + right.shape[1], 3), np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    offset = np.array([left.shape[1], 0.0])
    # Sub-pixel drawing (shift bits) keeps lines where they belong on a downscaled canvas.
    shift, one = 4, 16
    thick = max(1, round(2 * max(canvas.shape[:2]) / 1600))

    def on_canvas(points: np.ndarray, side: np.ndarray) -> np.ndarray:
        # Pixel centres: original pixel i lands at (i + 0.5)·f − 0.5 on the scaled copy.
        return np.round(((np.asarray(points, np.float64) + 0.5) * f - 0.5 + side) * one).astype(np.int32)

    if matching.corners is not None:
        quad = on_canvas(matching.corners, offset).reshape(-1, 1, 2)
        cv2.polylines(canvas, [quad], True, _OUTLINE, thick + 1, cv2.LINE_AA, shift)
    mask = matching.inlier_mask
    # Outliers first, so the inliers' lines end up on top.
    order = np.argsort(mask, kind="stable") if mask is not None else np.arange(len(matching.matches))
    starts = on_canvas(matching.query_points[matching.matches[:, 0]], np.zeros(2))
    ends = on_canvas(matching.train_points[matching.matches[:, 1]], offset)
    for i in order:
        colour = _UNVERIFIED if mask is None else (_INLIER if mask[i] else _OUTLIER)
        a, b = (int(starts[i, 0]), int(starts[i, 1])), (int(ends[i, 0]), int(ends[i, 1]))
        cv2.line(canvas, a, b, colour, thick, cv2.LINE_AA, shift)
        cv2.circle(canvas, a, (thick + 2) * one, colour, thick, cv2.LINE_AA, shift)
        cv2.circle(canvas, b, (thick + 2) * one, colour, thick, cv2.LINE_AA, shift)
    return canvas
