"""How well a posed model fits the scene (its overlap), and when that counts as found.

The overlap of a pose is the share of the model's points facing the sensor (at the origin of the
scene, as for a scan in its sensor's frame; see ``viewpoint`` for scans in other frames) that have
a scene point within ``OVERLAP_RADIUS`` of the model's diameter
whose normal agrees within ``MAX_NORMAL_ANGLE``. Points facing away are left out: a scan sees one
side, so a right pose on a partial view still scores near 1. The normal test is what tells a
right pose from a wrong one lying in a support plane (measured: without it wrong poses reached
0.78 against 0.82 for the right one on the real scan; with it 0.61 against 0.77).
"""

from __future__ import annotations

import numpy as np

from services.matcher.surface.neighbours import Neighbours

OVERLAP_RADIUS = 0.02
MAX_NORMAL_ANGLE = 45.0
_MIN_NORMAL_DOT = float(np.cos(np.radians(MAX_NORMAL_ANGLE)))
# A pose counts as found (poses_found; a chain's "found") at or above this overlap. Measured
# (docs/behaviour.md): right poses 0.77 (real scan) and ≥ 0.88 (synthetic) with the files'
# normals, ≥ 0.69 with estimated ones; wrong poses ≤ 0.61 with the object in the scene, ≤ 0.49
# in scenes without it.
MIN_OVERLAP = 0.65


# A scan whose normals face the origin at least this often was taken from there (measured: 1.00 for
# the real scan, 0.98 for synthetic partial views, 0.81 for full ones with the model's back side;
# the same scans moved 10 m away: 0.07-0.21).
SENSOR_AT_ORIGIN_SHARE = 0.75
# Otherwise the scan was seen from along its mean normal when that mean is at least this long
# (0.64-0.89 measured); a scan around the object (mean ~0) sees all of it.
MIN_VIEW_COHERENCE = 0.3


def viewpoint(xyz: np.ndarray, normals: np.ndarray) -> np.ndarray | None:
    """Where the scan was seen from, for the overlap's facing test: (0, 0, 0, 1), the origin, for a
    scan in its sensor's frame; (d, 0), a direction, for a scan moved into another frame (a cell's,
    a CAD's); None for a scan from all around."""
    if float((np.einsum("ij,ij->i", normals, -xyz) > 0).mean()) >= SENSOR_AT_ORIGIN_SHARE:
        return np.array([0.0, 0.0, 0.0, 1.0])
    mean = normals.mean(axis=0)
    length = float(np.linalg.norm(mean))
    return np.append(mean / length, 0.0) if length >= MIN_VIEW_COHERENCE else None


def facing(normals: np.ndarray, xyz: np.ndarray, view: np.ndarray | None) -> np.ndarray:
    """Which posed points (..., 3) face the viewpoint: the ones a scan from there could see."""
    if view is None:
        return np.ones(xyz.shape[:-1], bool)
    return np.einsum("...i,...i->...", normals, view[:3] - view[3] * xyz) > 0


def overlaps(
    poses: np.ndarray,
    model_xyz: np.ndarray,
    model_normals: np.ndarray,
    scene: Neighbours,
    scene_normals: np.ndarray | None,
    *,
    radius: float,
    view: np.ndarray | None,
) -> np.ndarray:
    """For each pose (K×4×4), the share of the model points facing the sensor that have a scene
    point within ``radius`` (model units) with a normal within 45° of theirs (any normal when
    ``scene_normals`` is None: the first, coarse ranking, whose poses are still off by ~10°)."""
    k, m = len(poses), len(model_xyz)
    px = np.einsum("kij,mj->kmi", poses[:, :3, :3], model_xyz) + poses[:, None, :3, 3]
    pn = np.einsum("kij,mj->kmi", poses[:, :3, :3], model_normals)
    idx, dist = scene.nearest(px.reshape(-1, 3), 1)
    near = dist[:, 0].reshape(k, m) < radius
    if scene_normals is not None:
        near &= np.einsum("kmi,kmi->km", pn, scene_normals[idx[:, 0]].reshape(k, m, 3)) > _MIN_NORMAL_DOT
    seen = facing(pn, px, view)
    return (near & seen).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
