"""Normals for clouds that come without them: PCA over nearest neighbours, then oriented.

Orientation (PCA gives a direction, not a side):
- a scene ("sensor") is a scan: every normal is turned towards the sensor at the origin of the
  scan's coordinates, the convention of range sensors (measured on the real scan: 99.8 % agree
  with the normals it ships with);
- a model ("outward") may be a whole object: "away from the centroid" is wrong for elongated parts
  (42 % of the sample model's normals), so orientation is carried from neighbour to neighbour
  along the smoothest edges (a minimum spanning tree, Hoppe et al. 1992, whose edges also avoid
  crossing thin walls), starting where the tangent plane is farthest from the centroid, a plane
  the whole object lies behind, so that normal certainly points outward.
"""

from __future__ import annotations

import heapq

import numpy as np

from services.matcher.surface.neighbours import Neighbours

# Neighbours per point (itself included): enough to average out scan noise, few enough to keep edges.
NEIGHBOURS = 10
# Points per batch: bounds the N×k×3 gather and the eigen-decompositions (~30 MB per batch).
_BATCH = 100_000
# Orientation is propagated over at most this many points (a spread-out subset); the others take
# the side of their nearest subset point. Keeps the Python spanning tree under ~0.5 s.
_MAX_PROPAGATED = 20_000


def _pca(xyz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The least-spread direction of each row of neighbours (``idx``, indices into ``xyz``)."""
    around = xyz[idx]
    around = around - around.mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", around, around))
    return vectors[:, :, 0]


def _pca_normals(xyz: np.ndarray, tree: Neighbours, k: int) -> np.ndarray:
    normals = np.empty_like(xyz, dtype=np.float64)
    for start in range(0, len(xyz), _BATCH):
        idx, _ = tree.nearest(xyz[start : start + _BATCH], k)
        normals[start : start + _BATCH] = _pca(xyz, idx)
    return normals


def _edge_cost(xyz: np.ndarray, normals: np.ndarray, i: int, j: int) -> float:
    """Low along a smooth surface; high across a bend or across a thin wall (where the step runs
    along the normal: the two sides of a wall have parallel, opposite normals)."""
    step = xyz[j] - xyz[i]
    across = abs(float(normals[i] @ step)) / max(float(np.linalg.norm(step)), 1e-300)
    return 1.0 - abs(float(normals[i] @ normals[j])) + across


def _propagate(xyz: np.ndarray, normals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Signs (±1) that make neighbouring normals agree, spanning-tree order, per connected part
    (``idx``: each point's k nearest, the first taken as the point itself: the candidate edges)."""
    sign = np.zeros(len(xyz))
    centre = xyz.mean(axis=0)
    # Seeds: the points whose tangent plane lies farthest from the centroid (a supporting plane
    # of the object: its normal surely points away from the centroid), best first.
    support = np.einsum("ij,ij->i", normals, xyz - centre)
    for seed in np.argsort(-np.abs(support)):
        if sign[seed]:
            continue
        sign[seed] = 1.0 if support[seed] >= 0 else -1.0
        heap = [(_edge_cost(xyz, normals, seed, int(j)), int(seed), int(j)) for j in idx[seed, 1:]]
        heapq.heapify(heap)
        while heap:
            _, i, j = heapq.heappop(heap)
            if sign[j]:
                continue
            sign[j] = sign[i] * (1.0 if normals[i] @ normals[j] >= 0 else -1.0)
            for nxt in idx[j, 1:]:
                if not sign[nxt]:
                    heapq.heappush(heap, (_edge_cost(xyz, normals, j, int(nxt)), j, int(nxt)))
    return sign


def estimate_normals(xyz: np.ndarray, *, orientation: str, k: int = NEIGHBOURS) -> np.ndarray:
    """Unit normals (N×3): the least-spread direction of each point's k nearest neighbours, turned
    towards the sensor at the origin (``"sensor"``) or outward (``"outward"``, see the module)."""
    tree = Neighbours(xyz)
    if orientation != "sensor" and len(xyz) <= _MAX_PROPAGATED:
        # Orientation is propagated over every point: the k nearest the normals come from are the
        # spanning tree's candidate edges too, one query for both.
        idx, _ = tree.nearest(xyz, k)
        normals = _pca(xyz, idx).astype(np.float64)
        return normals * _propagate(xyz, normals, idx)[:, None]
    normals = _pca_normals(xyz, tree, k)
    if orientation == "sensor":
        normals[np.einsum("ij,ij->i", normals, -xyz) < 0] *= -1
        return normals
    pick = np.linspace(0, len(xyz) - 1, _MAX_PROPAGATED).astype(np.int64)
    picked = Neighbours(xyz[pick])
    idx, _ = picked.nearest(xyz[pick], k)
    sign = _propagate(xyz[pick], normals[pick], idx)
    nearest, _ = picked.nearest(xyz, 1)
    reference = normals[pick][nearest[:, 0]] * sign[nearest[:, 0], None]
    normals[np.einsum("ij,ij->i", normals, reference) < 0] *= -1
    return normals
