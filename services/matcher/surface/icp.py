"""Point-to-plane ICP for many poses at once (numpy): one neighbour query per iteration for all.

OpenCV's ICP rebuilds a k-d tree of the scene for every pose it refines (~0.1 s each on a real
scan); refining ~40 candidates together against one tree costs about as much as one of those.
Correspondences farther than a shrinking radius, or whose normals disagree by more than 60°, are
left out, so a pose can only be pulled by surface near it and the same way round.
"""

from __future__ import annotations

import numpy as np

from services.matcher.surface.geometry import rotation_about
from services.matcher.surface.neighbours import Neighbours

_MIN_NORMAL_DOT = 0.5  # cos 60°
_MIN_PAIRS = 12  # fewer correspondences than this leave a pose as it was


def refine_poses(
    poses: np.ndarray,
    model_xyz: np.ndarray,
    model_normals: np.ndarray,
    scene: Neighbours,
    scene_xyz: np.ndarray,
    scene_normals: np.ndarray,
    *,
    radii: list[float],
) -> np.ndarray:
    """Poses (K×4×4) refined by one point-to-plane step per radius (model units), in order."""
    poses = poses.copy()
    k, m = len(poses), len(model_xyz)
    for radius in radii:
        rot, shift = poses[:, :3, :3], poses[:, :3, 3]
        px = np.einsum("kij,mj->kmi", rot, model_xyz) + shift[:, None, :]
        pn = np.einsum("kij,mj->kmi", rot, model_normals)
        idx, dist = scene.nearest(px.reshape(-1, 3), 1)
        q, qn = scene_xyz[idx[:, 0]].reshape(k, m, 3), scene_normals[idx[:, 0]].reshape(k, m, 3)
        use = (dist[:, 0].reshape(k, m) < radius) & (np.einsum("kmi,kmi->km", pn, qn) > _MIN_NORMAL_DOT)
        weight = use.astype(np.float64)
        count = weight.sum(axis=1)
        centre = np.einsum("km,kmi->ki", weight, px) / np.maximum(count, 1.0)[:, None]
        lever = px - centre[:, None, :]
        rows = np.concatenate([np.cross(lever, qn), qn], axis=2)  # k×m×6
        residual = np.einsum("kmi,kmi->km", q - px, qn)
        ata = np.einsum("km,kmi,kmj->kij", weight, rows, rows)
        atb = np.einsum("km,kmi,km->ki", weight, rows, residual)
        # A touch of damping keeps a pose on a flat patch (rank-deficient system) where it is.
        ata += np.eye(6) * (1e-6 * np.trace(ata, axis1=1, axis2=2) + 1e-12)[:, None, None]
        step = np.linalg.solve(ata, atb[..., None])[..., 0]
        step[count < _MIN_PAIRS] = 0.0
        turn = rotation_about(step[:, :3])
        new_rot = turn @ rot
        new_shift = np.einsum("kij,kj->ki", turn, shift - centre) + centre + step[:, 3:]
        poses[:, :3, :3], poses[:, :3, 3] = new_rot, new_shift
    return poses
