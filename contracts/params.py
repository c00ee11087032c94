"""Parameters of each matching tool, with their defaults and ranges (the API's tables).

The constraints live in the types (msgspec ``Meta``) so that the gateway's form validation,
the settings endpoint and the matcher all read one definition.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

TemplateMethod = Literal[
    "TM_CCOEFF_NORMED", "TM_CCORR_NORMED", "TM_SQDIFF_NORMED", "TM_CCOEFF", "TM_CCORR", "TM_SQDIFF"
]
Detector = Literal["SIFT", "ORB", "AKAZE", "BRISK"]
FeatureMatcher = Literal["FLANN", "BFMatcher"]


class TemplateParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    method: TemplateMethod = "TM_CCOEFF_NORMED"
    threshold: Annotated[float, Meta(ge=0.1, le=1.0)] = 0.8
    max_results: Annotated[int, Meta(ge=1, le=1000)] = 20
    use_grayscale: bool = True


class FeatureParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    detector: Detector = "SIFT"
    matcher: FeatureMatcher = "FLANN"
    ratio_threshold: Annotated[float, Meta(ge=0.1, le=1.0)] = 0.75
    max_matches: Annotated[int, Meta(ge=1, le=5000)] = 200


class SurfaceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    relative_sampling_step: Annotated[float, Meta(ge=0.01, le=0.5)] = 0.05
    relative_distance_step: Annotated[float, Meta(ge=0.01, le=0.5)] = 0.05
    num_angles: Annotated[int, Meta(ge=1, le=360)] = 30
    use_icp: bool = True
    icp_tolerance: Annotated[float, Meta(gt=0.0)] = 0.005
    icp_iterations: Annotated[int, Meta(ge=1, le=1000)] = 100


ToolParams = TemplateParams | FeatureParams | SurfaceParams

# The tools whose defaults live in settings; "chain" composes them.
PARAMS_BY_TOOL: dict[str, type[msgspec.Struct]] = {
    "template": TemplateParams,
    "feature": FeatureParams,
    "surface": SurfaceParams,
}

# The form fields that carry the two uploaded files, per tool.
FILE_FIELDS: dict[str, tuple[str, str]] = {
    "template": ("image", "template"),
    "feature": ("query_image", "train_image"),
    "surface": ("model_file", "scene_file"),
    "chain": ("image", "template"),
}

