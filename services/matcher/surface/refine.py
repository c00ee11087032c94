"""Refining candidates: a short ICP for each, re-ranking by overlap, and a final ICP on the winner.

The ICP residual does not tell right from wrong (a pose on the support plane fits it well); the
overlap does (``verify.py``). The final pass is OpenCV's ICP with the user's ``icp_iterations`` and
``icp_tolerance``; a result that lowers the overlap or moves the model far (diverged) is rejected
and the pose before it kept.
"""

from __future__ import annotations

import cv2
import msgspec
import numpy as np

from services.matcher.surface.candidates import Candidates, PreparedScene
from services.matcher.surface.clouds import Cloud, voxel_sample
from services.matcher.surface.geometry import mean_point_distance, rotate, transform
from services.matcher.surface.icp import refine_poses
from services.matcher.surface.verify import OVERLAP_RADIUS, overlaps

# The model subset the candidates are refined and compared with (share of the diameter).
FINE_MODEL_STEP = 0.03
# Correspondence radii of the short ICP, one step each: from PPF's coarse poses down to the
# overlap radius.
SHORT_ICP_RADII = (0.08, 0.05, 0.04, 0.03, 0.02, 0.02)
# Two candidates whose model points are this close on average (share of the diameter) are one pose.
SAME_POSE = 0.1
# The final ICP sees the scene around the posed model only (its box grown by this share of the
# diameter): it cannot slide onto clutter, and its k-d tree stays small.
CROP_MARGIN = 0.1
# A final ICP that moves the model more than this (share of the diameter) has diverged.
MAX_FINAL_SHIFT = 0.1
# OpenCV's ICP on the model at most this many points (it samples further itself).
_MAX_ICP_MODEL_POINTS = 20_000
_MIN_ICP_SCENE_POINTS = 100


class Ranked(msgspec.Struct, frozen=True):
    """Distinct refined candidates, best first: poses (K×4×4), PPF votes, overlaps."""

    poses: np.ndarray
    votes: np.ndarray
    overlaps: np.ndarray


class Subset(msgspec.Struct, frozen=True):
    xyz: np.ndarray
    normals: np.ndarray


def model_subset(model: Cloud) -> Subset:
    """The model points candidates are refined and scored with."""
    return Subset(*voxel_sample(model.xyz, model.normals, FINE_MODEL_STEP * model.diameter))


def fine_overlaps(poses: np.ndarray, scene: PreparedScene, model: Cloud, subset: Subset) -> np.ndarray:
    """The overlap (``verify.overlaps``) of each pose (K×4×4): the subset's points against the scene
    at ``OVERLAP_RADIUS``, with the normal test."""
    return overlaps(poses, subset.xyz, subset.normals, scene.neighbours, scene.normals, radius=OVERLAP_RADIUS * model.diameter, view=scene.view)


def rank(candidates: Candidates, scene: PreparedScene, model: Cloud, subset: Subset) -> Ranked:
    """Refine every candidate with a short ICP, score its overlap, drop duplicates, best first."""
    if len(candidates.poses) == 0:
        return Ranked(np.empty((0, 4, 4)), np.empty(0, np.int64), np.empty(0))
    radii = [r * model.diameter for r in SHORT_ICP_RADII]
    poses = refine_poses(candidates.poses, subset.xyz, subset.normals, scene.neighbours, scene.xyz, scene.normals, radii=radii)
    score = fine_overlaps(poses, scene, model, subset)
    order = np.argsort(-score, kind="stable")
    kept: list[int] = []
    for i in order:
        if all(mean_point_distance(poses[i], poses[j], subset.xyz) >= SAME_POSE * model.diameter for j in kept):
            kept.append(int(i))
    return Ranked(poses[kept], candidates.votes[kept], score[kept])


def final_icp(
    pose: np.ndarray, before: float, scene: PreparedScene, model: Cloud, subset: Subset, *, iterations: int, tolerance: float
) -> tuple[np.ndarray, float]:
    """OpenCV's ICP from ``pose`` (whose ``fine_overlaps`` is ``before``) against the scene around
    it; the refined pose and its overlap, or ``pose`` and ``before`` when the refined one lowered
    the overlap or moved the model too far."""
    posed = transform(pose, model.xyz)
    low = posed.min(axis=0) - CROP_MARGIN * model.diameter
    high = posed.max(axis=0) + CROP_MARGIN * model.diameter
    near = np.all((scene.xyz >= low) & (scene.xyz <= high), axis=1)
    if near.sum() < _MIN_ICP_SCENE_POINTS:
        return pose, before
    pick = slice(None) if len(posed) <= _MAX_ICP_MODEL_POINTS else np.linspace(0, len(posed) - 1, _MAX_ICP_MODEL_POINTS).astype(np.int64)
    source = np.hstack([posed[pick], rotate(pose, model.normals[pick])]).astype(np.float32)
    target = np.hstack([scene.xyz[near], scene.normals[near]]).astype(np.float32)
    icp = cv2.ppf_match_3d_ICP(iterations, tolerance)
    _, _, delta = icp.registerModelToScene(np.ascontiguousarray(source), np.ascontiguousarray(target))
    refined = np.asarray(delta, dtype=np.float64) @ pose
    if not np.isfinite(refined).all():
        return pose, before
    if mean_point_distance(refined, pose, subset.xyz) > MAX_FINAL_SHIFT * model.diameter:
        return pose, before
    after = float(fine_overlaps(refined[None], scene, model, subset)[0])
    return (refined, after) if after >= before else (pose, before)
