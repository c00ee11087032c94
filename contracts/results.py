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


class SurfaceResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    # Placeholder until the surface tool lands: the fields the API names.
    pose: Matrix | None
    num_model_points: int
    num_scene_points: int
    icp_residual: float | None
    poses_found: int
