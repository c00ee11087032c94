"""What each matching tool returns: the ``result_data`` of a finished task, as the API shows it.

Field names and order are the wire's (``../shared/spec/API.md``); fields the original product did
not have are optional and left out when absent, so an old client sees what it always saw.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# A row-major matrix as nested lists (JSON has no matrices).
Matrix = list[list[float]]
Point = Annotated[list[float], Meta(min_length=2, max_length=2)]


class NoResult(msgspec.Struct, frozen=True):
    """``result_data`` of a task that has no result (yet, or ever: queued, processing, error): ``{}``."""


class TemplateMatch(msgspec.Struct, frozen=True):
    x: int
    y: int
    w: int
    h: int
    score: float


class TemplateResult(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    matches_found: Annotated[int, Meta(ge=0, description="local maxima at or above the threshold, before NMS")]
    filtered_matches: Annotated[int, Meta(ge=0, description="matches after non-maximum suppression")]
    best_score: Annotated[float, Meta(ge=0.0, le=1.0, description="the best score anywhere, even below the threshold")]
    matches: list[TemplateMatch]


class FeatureResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    query_keypoints: Annotated[int, Meta(ge=0, description="keypoints described in the query image (the strongest 5000 at most)")]
    train_keypoints: Annotated[int, Meta(ge=0, description="keypoints described in the train image (the strongest 5000 at most)")]
    good_matches: Annotated[int, Meta(ge=0, description="matches that passed Lowe's ratio test, at most max_matches")]
    detector: str
    matcher: str
    # Only with a plausible homography (at least 4 good matches, RANSAC, the rule of
    # docs/behaviour.md "Feature matching"); left out otherwise, never null:
    homography: Annotated[Matrix, Meta(description="3×3 row-major, query pixels → train pixels, h33 = 1")] | None = None
    inliers: Annotated[int, Meta(ge=0, description="good matches within the RANSAC threshold of the homography")] | None = None
    corners: Annotated[list[Point], Meta(
        min_length=4, max_length=4,
        description="the query's corner pixel centres (top-left, top-right, bottom-right, bottom-left) in train pixels",
    )] | None = None


class SurfaceCandidate(msgspec.Struct, frozen=True, kw_only=True):
    pose: Annotated[Matrix, Meta(description="4×4 model → scene, after a short ICP")]
    votes: Annotated[int, Meta(ge=0, description="PPF votes of the pose before refinement")]
    overlap: Annotated[float, Meta(ge=0.0, le=1.0, description="share of the model's sensor-facing points with a scene point within 2 % of its diameter")]


class SurfaceResult(msgspec.Struct, frozen=True, kw_only=True):
    # The API's five fields first. With no verified pose, `pose`, `icp_residual` and `overlap` are
    # null and poses_found is 0; the candidates still show how close the best attempts came.
    # Every field is always present: the tool is new, no client expects a shorter shape.
    pose: Annotated[Matrix | None, Meta(description="4×4 model → scene of the best verified pose; null when none passed")]
    num_model_points: Annotated[int, Meta(ge=0, description="vertices read from model_file")]
    num_scene_points: Annotated[int, Meta(ge=0, description="vertices read from scene_file")]
    icp_residual: Annotated[Annotated[float, Meta(ge=0.0)] | None, Meta(description="RMS distance (file units) from the posed model's overlapping points to the scene; null without a pose")]
    poses_found: Annotated[int, Meta(ge=0, description="distinct poses whose overlap reached min_overlap")]
    # (new) What it takes to trust the pose, and how the answer came about.
    overlap: Annotated[Annotated[float, Meta(ge=0.0, le=1.0)] | None, Meta(description="the pose's overlap (as for candidates); null without a pose")]
    min_overlap: Annotated[float, Meta(ge=0.0, le=1.0, description="the overlap a pose needs to count as found")]
    model_diameter: Annotated[float, Meta(ge=0.0, description="the model's bounding-box diagonal, in file units")]
    model_normals_estimated: bool
    scene_normals_estimated: bool
    candidates: Annotated[list[SurfaceCandidate], Meta(description="the best distinct candidates, best first (at most 5)")]
