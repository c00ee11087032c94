"""The query → train homography: RANSAC on the good matches, and the rule that rejects implausible ones.

Pure: point arrays in, a ``Homography`` or None out. RANSAC happily returns a matrix for matches
between unrelated images (typically one that collapses the query onto a point, where many
matches end): ``implausibility`` says whether and why a matrix is no view of the query.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import msgspec
import numpy as np

# RANSAC's reprojection threshold, in detection pixels of the train image (scaled to original
# pixels when the train image was downscaled for detection).
RANSAC_THRESHOLD = 3.0
# OpenCV's RANSAC draws from its own generator with a fixed seed per call: same points, same result.
_RANSAC_ITERS = 2000
_RANSAC_CONFIDENCE = 0.995
# RANSAC's matrix is the least-squares fit of whichever consensus set won, and matches up to the
# threshold off pull it around: on graf1→3 and warped photos its outline corners land 1–8 px
# from the truth depending on which borderline matches got in. Re-weighting the matches within
# the threshold by a Cauchy loss of scale 1 px (keypoints are localised to ~1 px) for a few
# rounds brought every detector × matcher under 3 px there (docs/behaviour.md).
_REFINE_SCALE = 1.0 / RANSAC_THRESHOLD
_REFINE_ROUNDS = 10
_REFINE_MIN_POINTS = 8

# The plausibility rule (docs/behaviour.md "Feature matching"), measured on the query's outline
# projected into the train image. Support first: RANSAC's consensus between unrelated images
# (OpenCV's samples, every detector × matcher, ratio 0.75–1.0) is either collapsed, which the
# geometry below rejects, or 4–9 matches, 4–7 % of the good ones. Real pairs had ≥ 22 inliers
# and, even with the ratio test off and 5000 matches, ≥ 7.7 %. Below 5 %, RANSAC's 2000 draws of
# four hold an all-inlier one with < 5 % probability: a winner there is most likely chance.
MIN_INLIERS = 10
MIN_INLIER_SHARE = 0.05
# Linear scale sqrt(outline area / query area): beyond 32× no detector matches, and a collapse
# onto a point (the usual RANSAC artefact) is far below 1/32.
MIN_SCALE, MAX_SCALE = 1 / 32, 32.0
# Every interior angle within [20°, 160°], and each side's length relative to the query's matching
# side (width for top and bottom, height for left and right) at most 8× that of another: a
# rectangle tilted 80° away from a camera (focal length 1.2× its size), at any in-plane rotation,
# still has angles ≥ 23° and a stretch ≤ 3.2 (≥ 41° and ≤ 2.7 at 70°). Beyond that the outline
# is a sliver or a squashed strip, and no detector matches such views anyway.
MIN_ANGLE_DEG = 20.0
MAX_STRETCH = 8.0


class Homography(msgspec.Struct, frozen=True):
    """A plausible query → train homography, its RANSAC inliers and the projected outline."""

    matrix: Any  # (3, 3) float64, matrix[2, 2] == 1
    inlier_mask: Any  # (M,) bool over the matches it was fitted to
    corners: Any  # (4, 2) float64: the query's outline TL, TR, BR, BL in train pixels


def outline(width: int, height: int) -> np.ndarray:
    """The query's outline: the centres of its corner pixels, TL, TR, BR, BL (clockwise on screen)."""
    w, h = float(max(width - 1, 1)), float(max(height - 1, 1))
    return np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped through a homography (no check of the sign of w)."""
    p = np.column_stack([points, np.ones(len(points))]) @ np.asarray(matrix, np.float64).T
    # A point on the horizon (w = 0) goes to infinity; callers treat inf/nan as "not near".
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, :2] / p[:, 2:3]


def _interior_angles(quad: np.ndarray) -> np.ndarray:
    incoming = quad - np.roll(quad, 1, axis=0)
    outgoing = np.roll(quad, -1, axis=0) - quad
    cos = np.sum(-incoming * outgoing, axis=1) / (
        np.linalg.norm(incoming, axis=1) * np.linalg.norm(outgoing, axis=1)
    )
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def implausibility(matrix: np.ndarray, width: int, height: int, inliers: int, matches: int) -> str | None:
    """Why this homography does not describe a view of the query (None: it does)."""
    if inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * matches:
        return "too few inliers"
    m = np.asarray(matrix, np.float64)
    if not np.all(np.isfinite(m)) or abs(m[2, 2]) < 1e-12:
        return "not finite"
    m = m / m[2, 2]
    corners = outline(width, height)
    # w ≤ 0 at a corner: the outline crosses the horizon and wraps through infinity.
    if np.any(corners @ m[2, :2] + m[2, 2] <= 1e-9):
        return "outline behind the camera"
    quad = project(m, corners)
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    # The query's outline turns clockwise on screen (cross > 0, y down) at every corner.
    if not np.all(turns > 0):
        return "outline flipped or not convex"
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * float(x @ np.roll(y, -1) - y @ np.roll(x, -1))
    (w, h) = corners[2]
    scale = math.sqrt(area / (w * h))
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return "extreme scale"
    angles = _interior_angles(quad)
    if angles.min() < MIN_ANGLE_DEG or angles.max() > 180.0 - MIN_ANGLE_DEG:
        return "outline too skewed"
    stretch = np.linalg.norm(edges, axis=1) / np.array([w, h, w, h])
    if stretch.max() > MAX_STRETCH * stretch.min():
        return "outline too stretched"
    return None


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Hartley's normalisation: centroid to the origin, mean distance √2."""
    centre = points.mean(axis=0)
    spread = float(np.mean(np.linalg.norm(points - centre, axis=1)))
    s = math.sqrt(2.0) / max(spread, 1e-12)
    return np.array([[s, 0.0, -s * centre[0]], [0.0, s, -s * centre[1]], [0.0, 0.0, 1.0]])


def weighted_dlt(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The homography src → dst minimising the weighted algebraic error (normalised DLT)."""
    t_src, t_dst = _normaliser(src), _normaliser(dst)
    a = np.column_stack([src, np.ones(len(src))]) @ t_src.T
    b = np.column_stack([dst, np.ones(len(dst))]) @ t_dst.T
    x, y, u, v = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    rows = np.vstack([
        np.column_stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u]),
        np.column_stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v]),
    ]) * np.sqrt(np.concatenate([weights, weights]))[:, None]
    h = np.linalg.svd(rows, full_matrices=False)[2][-1].reshape(3, 3)
    m = np.linalg.inv(t_dst) @ h @ t_src
    return m / m[2, 2] if abs(m[2, 2]) > 1e-12 and np.all(np.isfinite(m)) else None


def refine(matrix: np.ndarray, src: np.ndarray, dst: np.ndarray, threshold: float) -> np.ndarray:
    """Iteratively re-weighted fit over the matches within ``threshold`` (Cauchy loss)."""
    scale = _REFINE_SCALE * threshold
    for _ in range(_REFINE_ROUNDS):
        residual = np.linalg.norm(project(matrix, src) - dst, axis=1)
        near = residual < threshold
        if near.sum() < _REFINE_MIN_POINTS:
            break
        weights = 1.0 / (1.0 + (residual[near] / scale) ** 2)
        refined = weighted_dlt(src[near], dst[near], weights)
        if refined is None:
            break
        matrix = refined
    return matrix


def fit_homography(
    query_points: np.ndarray, train_points: np.ndarray, width: int, height: int, threshold: float
) -> Homography | None:
    """RANSAC query → train homography over matched points; None when none is plausible."""
    if len(query_points) < 4:
        return None
    src, dst = np.asarray(query_points, np.float64), np.asarray(train_points, np.float64)
    matrix, _ = cv2.findHomography(
        src, dst, cv2.RANSAC, threshold, maxIters=_RANSAC_ITERS, confidence=_RANSAC_CONFIDENCE
    )
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(matrix[2, 2]) < 1e-12:
        return None
    matrix = refine(matrix / matrix[2, 2], src, dst, threshold)
    # Inliers are the matches the reported matrix explains, not those of RANSAC's intermediate one.
    inliers = np.linalg.norm(project(matrix, src) - dst, axis=1) < threshold
    if implausibility(matrix, width, height, int(inliers.sum()), len(inliers)) is not None:
        return None
    return Homography(matrix=matrix, inlier_mask=inliers, corners=project(matrix, outline(width, height)))
