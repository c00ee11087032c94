"""Descriptor matching: two nearest neighbours per query descriptor and Lowe's ratio test.

Pure: descriptor arrays in, good matches (index pairs, best first) out.
"""

from __future__ import annotations

from typing import Any

import cv2
import msgspec
import numpy as np

# FLANN's index kinds (cv::flann::flann_algorithm_t; the Python binding takes plain ints).
_FLANN_KDTREE = 1
_FLANN_LSH = 6
# OpenCV's tutorial values: 4 randomised kd-trees for float descriptors; 6 hash tables of 12-bit
# keys with one probe level for binary ones. checks = leaves visited per query (kd-tree only).
_KDTREE_INDEX = {"algorithm": _FLANN_KDTREE, "trees": 4}
_LSH_INDEX = {"algorithm": _FLANN_LSH, "table_number": 6, "key_size": 12, "multi_probe_level": 1}
_SEARCH = {"checks": 64}
# FLANN draws its kd-tree splits and LSH bit choices from OpenCV's thread RNG (cv::theRNG), which
# other OpenCV calls in a long-lived worker advance: seeded before each match, the same two
# images give the same matches whatever ran before.
_FLANN_SEED = 0x5EED


class GoodMatches(msgspec.Struct, frozen=True):
    """Matches that passed the ratio test, best (smallest descriptor distance) first."""

    query_idx: Any  # (M,) int32 index into the query keypoints
    train_idx: Any  # (M,) int32 index into the train keypoints
    distance: Any  # (M,) float32 descriptor distance to the nearest train descriptor
    # Query descriptors with fewer than two neighbours found (FLANN's LSH can find 0 or 1): they
    # cannot be ratio-tested, so they are not good matches.
    unpaired: int = 0


def _empty() -> GoodMatches:
    return GoodMatches(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32))


def _matcher(flann: bool, norm: int, descriptors: np.ndarray) -> Any:
    if not flann:
        return cv2.BFMatcher(norm, crossCheck=False)
    index = _KDTREE_INDEX if descriptors.dtype == np.float32 else _LSH_INDEX
    return cv2.FlannBasedMatcher(index, _SEARCH)


def ratio_test_matches(
    query: np.ndarray | None, train: np.ndarray | None, *, norm: int, flann: bool, ratio: float, limit: int
) -> GoodMatches:
    """knnMatch (k=2) query → train, keep d1 < ratio·d2, at most ``limit``, best first."""
    # FLANN asserts on an index of fewer than two descriptors, and a second neighbour is needed.
    if query is None or train is None or len(query) == 0 or len(train) < 2:
        return _empty()
    if flann:
        cv2.setRNGSeed(_FLANN_SEED)
    pairs = _matcher(flann, norm, train).knnMatch(query, train, k=2)
    full = [p for p in pairs if len(p) >= 2]
    if not full:
        return msgspec.structs.replace(_empty(), unpaired=len(pairs))
    rows = np.array([(p[0].queryIdx, p[0].trainIdx, p[0].distance, p[1].distance) for p in full], np.float64)
    d1, d2 = rows[:, 2], rows[:, 3]
    keep = np.flatnonzero(d1 < ratio * d2)
    q, t, d = rows[keep, 0], rows[keep, 1], d1[keep]
    # Best first; equal distances by the more distinctive (smaller ratio), then by query index.
    order = np.lexsort((q, d / np.maximum(d2[keep], 1e-12), d))[:limit]
    return GoodMatches(
        query_idx=q[order].astype(np.int32),
        train_idx=t[order].astype(np.int32),
        distance=d[order].astype(np.float32),
        unpaired=len(pairs) - len(full),
    )
