"""Candidate poses: the scene prepared at the model's scale, OpenCV's PPF votes, a first ranking.

OpenCV's ``match`` gives one pose per scene reference point, ordered by votes; on cluttered or
partial scans the top-voted pose is often wrong while a right one sits far down the list. So every
candidate is scored cheaply (overlap at a loose radius, before any refinement) and the best
``TOP_CANDIDATES`` go on to ICP (``refine.py``).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from services.matcher.errors import InputError
from services.matcher.surface.clouds import Cloud, drop_isolated, voxel_sample
from services.matcher.surface.detector import Trained, as_opencv, opencv_frame
from services.matcher.surface.neighbours import Neighbours
from services.matcher.surface.verify import overlaps, viewpoint

# Finer detail than this share of the model's diameter changes no overlap at 2 % (measured), and a
# 2-million-point scan shrinks to what the real scan has.
WORKING_STEP = 0.01
# A scene point is an outlier when its 3rd neighbour is farther than this share of the model's diameter.
ISOLATED_RADIUS = 0.05
# Every 5th sampled scene point is a reference point: every 10th missed the object on 1 in 10
# partial views (measured), every 3rd doubles the time for nothing more.
REFERENCE_STRIDE = 5
# Hash-chain nodes walked while voting, at most (~2 s): larger scenes get fewer reference points.
MAX_VOTE_STEPS = 3e8
# Fewer reference points than this would leave the object unseen: such a scene is refused.
MIN_REFERENCES = 20
# OpenCV samples the scene again on a grid of 1/step cells per axis; (1/step)³ lists are allocated,
# so the step stays ≥ 1/128 (~50 MB).
_MIN_OPENCV_STEP = 1.0 / 128
TOP_CANDIDATES = 40
# The loose radius of the first ranking: PPF poses are off by up to a sampling step and an angle step.
COARSE_RADIUS = 0.05
COARSE_MODEL_STEP = 0.04


class PreparedScene(msgspec.Struct, frozen=True):
    """The scene reduced to one point per cube of ``WORKING_STEP`` of the model's diameter, without
    isolated points, with a neighbour index: what ICP and the overlap work on."""

    xyz: np.ndarray
    normals: np.ndarray
    neighbours: Neighbours
    view: np.ndarray | None  # verify.viewpoint: where the scan was seen from


class Candidates(msgspec.Struct, frozen=True):
    poses: np.ndarray  # K×4×4 model → scene, best first by the coarse overlap
    votes: np.ndarray  # K PPF votes


def prepare_scene(scene: Cloud, model_diameter: float) -> PreparedScene:
    """Reduce the scene to the resolution the overlap needs, drop isolated points (sensor speckle)
    and index the rest."""
    xyz, normals = voxel_sample(scene.xyz, scene.normals, WORKING_STEP * model_diameter)
    tree = Neighbours(xyz)
    keep = drop_isolated(xyz, ISOLATED_RADIUS * model_diameter, tree=tree)
    # When every point is kept, the index over them all is the one needed.
    if not keep.all():
        xyz, normals = xyz[keep], normals[keep]
        tree = Neighbours(xyz)
    return PreparedScene(xyz, normals, tree, viewpoint(xyz, normals))


def _reference_stride(points: int, mean_chain: float) -> int:
    budget = MAX_VOTE_STEPS / max(points * max(mean_chain, 1.0), 1.0)
    stride = max(REFERENCE_STRIDE, math.ceil(points / max(budget, 1e-9)))
    if points / stride < MIN_REFERENCES and stride > REFERENCE_STRIDE:
        raise InputError(
            f"the scene is too large for this model: sampled at the model's scale it has {points:,} points, "
            "too many to vote over in time; crop the scan to the region of the part, or use a larger relative_sampling_step"
        )
    return stride


def ppf_candidates(trained: Trained, scene: PreparedScene, model: Cloud, relative_sampling_step: float) -> Candidates:
    """PPF poses for the scene sampled at the model's scale, ranked by coarse overlap, the best few."""
    # The scene is sampled at the same step as the model, relative to the *model's* diameter:
    # OpenCV's own scene step is relative to the scene's box, which differs from scan to scan.
    voxel = relative_sampling_step * model.diameter
    xyz, normals = voxel_sample(scene.xyz, scene.normals, voxel)
    if len(xyz) < 3:
        return Candidates(np.empty((0, 4, 4)), np.empty(0, np.int64))
    frame = opencv_frame(xyz)
    cloud = as_opencv(xyz, normals, frame)
    span = float((cloud[:, :3].max(axis=0) - cloud[:, :3].min(axis=0)).max())
    # Cells of at most half our voxel: OpenCV's second sampling then changes next to nothing.
    opencv_step = min(1.0, max(voxel / (2.0 * max(span, 1e-12)), _MIN_OPENCV_STEP))
    stride = _reference_stride(len(xyz), trained.cost.mean_chain)
    # OpenCV takes every int(1 / step)-th point: a hair below 1/stride keeps float error from
    # making that stride − 1.
    results = trained.detector.match(cloud, (1.0 - 1e-9) / stride, opencv_step)
    if not results:
        return Candidates(np.empty((0, 4, 4)), np.empty(0, np.int64))
    # OpenCV's pose takes the model in its frame to the scene in its frame.
    back = np.linalg.inv(frame)
    poses = np.stack([back @ np.asarray(r.pose, dtype=np.float64) @ trained.frame for r in results])
    votes = np.array([int(r.numVotes) for r in results], dtype=np.int64)
    coarse_xyz, coarse_normals = voxel_sample(model.xyz, model.normals, COARSE_MODEL_STEP * model.diameter)
    score = overlaps(poses, coarse_xyz, coarse_normals, scene.neighbours, None, radius=COARSE_RADIUS * model.diameter, view=scene.view)
    # Ties (common at this radius) go to the higher vote: OpenCV's order.
    best = np.argsort(-score, kind="stable")[:TOP_CANDIDATES]
    return Candidates(poses[best], votes[best])
