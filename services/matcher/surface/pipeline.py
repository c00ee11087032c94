"""Surface matching in the stages a task shows: loading, training, matching, refining.

Each stage is one pure function; the runner reports the stage before calling it. Files are bytes
in, the verified pose (``SurfaceResult``) and what the result files are drawn from out.
"""

from __future__ import annotations

import math
from typing import Iterator

import msgspec
import numpy as np

from contracts.params import SurfaceParams
from contracts.results import SurfaceCandidate, SurfaceResult
from infra.ply import PlyError, read_ply, write_ply
from services.matcher.errors import InputError
from services.matcher.images import encode_png
from services.matcher.surface.cache import DetectorCache
from services.matcher.surface.candidates import Candidates, PreparedScene, ppf_candidates, prepare_scene
from services.matcher.surface.clouds import Cloud, checked_cloud, scaled, working_scale
from services.matcher.surface.detector import Trained, model_key, train
from services.matcher.surface.geometry import rotate, transform
from services.matcher.surface.refine import Subset, final_icp, model_subset, rank
from services.matcher.surface.render import render_views
from services.matcher.surface.verify import MIN_OVERLAP, OVERLAP_RADIUS, facing

# Candidates shown in the result.
SHOWN_CANDIDATES = 5


class Loaded(msgspec.Struct, frozen=True):
    """Both clouds in working units: the files' coordinates times ``scale`` (clouds.working_scale)."""

    model: Cloud
    scene: Cloud
    scale: float = 1.0


class Matching(msgspec.Struct, frozen=True):
    scene: PreparedScene
    candidates: Candidates


class Matched(msgspec.Struct, frozen=True):
    """The result, and the pose the pictures show (the best candidate's when none passed)."""

    result: SurfaceResult
    shown_pose: np.ndarray | None
    found: bool
    best_overlap: float  # the shown pose's (0 without one)


def _read(data: bytes, field: str, orientation: str) -> Cloud:
    try:
        cloud = read_ply(data)
    except PlyError as exc:
        raise InputError(f"could not read '{field}': {exc}") from None
    return checked_cloud(cloud, field, orientation=orientation)


def load(model_bytes: bytes, scene_bytes: bytes) -> Loaded:
    """Read and check both files; normals are estimated where missing (model: outward; scene:
    towards the sensor at the origin)."""
    model = _read(model_bytes, "model_file", "outward")
    scene = _read(scene_bytes, "scene_file", "sensor")
    scale = working_scale(model.diameter)
    return Loaded(model=scaled(model, scale), scene=scaled(scene, scale), scale=scale)


def train_detector(model: Cloud, params: SurfaceParams, cache: DetectorCache) -> tuple[Trained, bool]:
    """The trained detector for the model and params, from the cache when it is there (and whether it was)."""
    return cache.get_or_train(model_key(model, params), lambda: train(model, params))


def match(trained: Trained, loaded: Loaded, params: SurfaceParams) -> Matching:
    """Clean the scene and collect PPF's candidate poses, ranked by a first, coarse overlap."""
    scene = prepare_scene(loaded.scene, loaded.model.diameter)
    return Matching(scene, ppf_candidates(trained, scene, loaded.model, params.relative_sampling_step))


def _residual(pose: np.ndarray, subset: Subset, scene: PreparedScene, radius: float) -> float:
    """RMS distance from the posed model points that count in the overlap to their nearest scene points."""
    posed = transform(pose, subset.xyz)
    seen = facing(rotate(pose, subset.normals), posed, scene.view)
    _, dist = scene.neighbours.nearest(posed[seen], 1)
    near = dist[:, 0][dist[:, 0] < radius]
    return float(np.sqrt(np.mean(near**2))) if len(near) else math.nan


def _figure(value: float) -> float:
    """Nine significant digits: files in metres have millimetre residuals, files in microns huge ones."""
    return float(f"{value:.9g}")


def _matrix(pose: np.ndarray, scale: float) -> list[list[float]]:
    """The pose in the files' units (working units divided by ``scale``: only the translation)."""
    pose = pose.copy()
    pose[:3, 3] /= scale
    return [[float(v) for v in row] for row in pose]


def refine(matching: Matching, loaded: Loaded, params: SurfaceParams) -> Matched:
    """Short ICP and re-ranking of the candidates, the final ICP on the best (``use_icp``), verification."""
    model, scene = loaded.model, matching.scene
    subset = model_subset(model)
    ranked = rank(matching.candidates, scene, model, subset)
    scores = ranked.overlaps.copy()
    best = ranked.poses[0] if len(ranked.poses) else None
    if best is not None and params.use_icp:
        best, overlap = final_icp(best, float(scores[0]), scene, model, subset, iterations=params.icp_iterations, tolerance=params.icp_tolerance)
        scores[0] = overlap
    verified = best if best is not None and scores[0] >= MIN_OVERLAP else None
    found = verified is not None
    shown = [
        SurfaceCandidate(pose=_matrix(ranked.poses[i], loaded.scale), votes=int(ranked.votes[i]), overlap=round(float(ranked.overlaps[i]), 4))
        for i in range(min(SHOWN_CANDIDATES, len(ranked.poses)))
    ]
    residual = _residual(verified, subset, scene, OVERLAP_RADIUS * model.diameter) / loaded.scale if verified is not None else None
    result = SurfaceResult(
        pose=_matrix(verified, loaded.scale) if verified is not None else None,
        num_model_points=len(loaded.model.xyz),
        num_scene_points=len(loaded.scene.xyz),
        icp_residual=_figure(residual) if residual is not None and math.isfinite(residual) else None,
        poses_found=int((scores >= MIN_OVERLAP).sum()),
        overlap=round(float(scores[0]), 4) if found else None,
        min_overlap=MIN_OVERLAP,
        model_diameter=_figure(model.diameter / loaded.scale),
        model_normals_estimated=loaded.model.normals_estimated,
        scene_normals_estimated=loaded.scene.normals_estimated,
        candidates=shown,
    )
    return Matched(result=result, shown_pose=best, found=found, best_overlap=float(scores[0]) if len(scores) else 0.0)


def result_files(matched: Matched, loaded: Loaded) -> Iterator[tuple[str, bytes]]:
    """The result files, each as soon as it is encoded: ``pose.png`` (the scene with the pose drawn
    in) and, with a verified pose, ``posed_model.ply`` (the model moved into the scene, with normals)."""
    model, scene, result = loaded.model, loaded.scene, matched.result
    pose = matched.shown_pose
    posed_xyz: np.ndarray | None = None
    posed_normals: np.ndarray | None = None
    if pose is None:
        caption = "not found: no candidate pose"
    else:
        posed_xyz, posed_normals = transform(pose, model.xyz), rotate(pose, model.normals)
        if matched.found:
            caption = f"found: overlap {result.overlap:.2f} (at least {MIN_OVERLAP:.2f}), RMS distance {result.icp_residual:.3g}"
            note = f"model_file posed in scene_file by AeroVision surface matching, overlap {result.overlap:.4f}"
            yield "posed_model.ply", write_ply(posed_xyz / loaded.scale, posed_normals, comment=note)
        else:
            caption = f"not found: the best pose (orange) has overlap {matched.best_overlap:.2f} < {MIN_OVERLAP:.2f}"
    picture = render_views(scene.xyz, scene.normals, posed_xyz, posed_normals, model_diameter=model.diameter, caption=caption, found=matched.found)
    yield "pose.png", encode_png(picture)
