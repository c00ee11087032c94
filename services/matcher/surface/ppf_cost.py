"""What OpenCV's PPF training and voting will cost, computed in numpy before calling it.

OpenCV keeps one hash-table chain per quantised point-pair feature and walks the whole chain on
every insertion (training) and every lookup (matching): shapes whose pair features repeat — a
flat plate, a sphere, a cylinder — make chains of hundreds of thousands and take minutes or hours
(measured: a 6,700-point plate trains in 63 s; a cylinder, a sphere did not finish in 100 s). The
model is sampled here exactly as OpenCV samples it, its pair features counted, and the cost read
off the chain lengths, so such a model is refused in well under a second instead.
"""

from __future__ import annotations

import msgspec
import numpy as np

# Pairs whose features are computed exactly; above this a deterministic random sample of pairs
# estimates the chain lengths (within a few per cent, plenty for a guard).
_EXACT_PAIRS = 500_000


class PpfCost(msgspec.Struct, frozen=True):
    """The sampled model's size and its feature chains: what training and each vote will cost."""

    samples: int  # model points after OpenCV's sampling: training stores samples² pairs
    chain_steps: float  # chain nodes walked while training (Σ chain² / 2)
    mean_chain: float  # nodes walked per scene pair while matching (Σ chain² / Σ chain)


def opencv_sample(xyz: np.ndarray, normals: np.ndarray, relative_step: float) -> tuple[np.ndarray, np.ndarray]:
    """The cloud as ``samplePCByQuantization`` reduces it: a grid of 1/step cells per axis over the
    bounding box, float32 arithmetic and its index formula included; mean points, unit mean normals."""
    pts = xyz.astype(np.float32)
    low, high = pts.min(axis=0), pts.max(axis=0)
    dims = int(1.0 / relative_step)
    cells = (np.float32(dims) * (pts - low) / (high - low)).astype(np.int64)
    index = cells[:, 0] * dims * dims + cells[:, 1] * dims + cells[:, 2]
    _, group = np.unique(index, return_inverse=True)
    group = group.ravel()
    counts = np.bincount(group).astype(np.float64)
    mean = np.stack([np.bincount(group, xyz[:, i]) for i in range(3)], axis=1) / counts[:, None]
    summed = np.stack([np.bincount(group, normals[:, i]) for i in range(3)], axis=1)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return mean, np.where(length > 1e-12, summed / np.maximum(length, 1e-12), 0.0)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), np.einsum("ij,ij->i", a, b))


def _feature_keys(p: np.ndarray, n: np.ndarray, i: np.ndarray, j: np.ndarray, angle_step: float, distance_step: float) -> np.ndarray:
    d = p[j] - p[i]
    dist = np.linalg.norm(d, axis=1)
    unit = d / np.maximum(dist, 1e-30)[:, None]
    parts = [
        np.floor(_angle(n[i], unit) / angle_step),
        np.floor(_angle(n[j], unit) / angle_step),
        np.floor(_angle(n[i], n[j]) / angle_step),
        np.floor(dist / distance_step),
    ]
    q = np.stack(parts, axis=1).astype(np.int64) + 1
    return ((q[:, 0] * 1024 + q[:, 1]) * 1024 + q[:, 2]) * 1_000_000 + q[:, 3]


def ppf_cost(xyz: np.ndarray, normals: np.ndarray, relative_step: float, num_angles: int) -> PpfCost:
    """Sample the model as OpenCV will and measure its feature chains (see the module docstring)."""
    p, n = opencv_sample(xyz, normals, relative_step)
    size = len(p)
    box = xyz.astype(np.float32)
    diameter = float(np.linalg.norm(box.max(axis=0) - box.min(axis=0)))
    angle_step = (360.0 / num_angles) * np.pi / 180.0
    distance_step = diameter * relative_step
    pairs = size * (size - 1)
    if pairs == 0:
        return PpfCost(size, 0.0, 0.0)
    if pairs <= _EXACT_PAIRS:
        i, j = np.nonzero(~np.eye(size, dtype=bool))
    else:
        rng = np.random.default_rng(0)
        i = rng.integers(0, size, _EXACT_PAIRS)
        j = (i + rng.integers(1, size, _EXACT_PAIRS)) % size
    _, counts = np.unique(_feature_keys(p, n, i, j, angle_step, distance_step), return_counts=True)
    counts = counts.astype(np.float64)
    scale = pairs / len(i)
    # Σ chain² from a sample: each sampled pair stands for `scale` pairs; the −c term removes the
    # bias of squaring sampled counts.
    squares = scale * scale * float(np.sum(counts * counts - counts)) + scale * float(counts.sum())
    return PpfCost(size, squares / 2.0, squares / pairs)
