"""Nearest-neighbour search over a 3D cloud (OpenCV's FLANN single k-d tree: exact in 3D, fast)."""

from __future__ import annotations

import cv2
import numpy as np

# FLANN's KDTREE_SINGLE_INDEX: one exact tree, built in ~20 ms for 100k points.
_INDEX = {"algorithm": 4, "leaf_max_size": 10}


class Neighbours:
    """A k-d tree over points (N×3) answering k-nearest queries; distances are Euclidean."""

    def __init__(self, xyz: np.ndarray) -> None:
        self._xyz = np.ascontiguousarray(xyz, dtype=np.float32)
        self._index = cv2.flann_Index(self._xyz, _INDEX)

    def __len__(self) -> int:
        return len(self._xyz)

    def nearest(self, query: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Indices (M×k int) and distances (M×k float64) of each query point's k nearest points."""
        k = min(k, len(self._xyz))
        q = np.ascontiguousarray(query, dtype=np.float32)
        if len(q) == 0:
            return np.empty((0, k), np.int64), np.empty((0, k))
        idx, sq = self._index.knnSearch(q, k, params={})
        return idx.astype(np.int64), np.sqrt(np.maximum(sq.astype(np.float64), 0.0))
