"""Parameters of each matching tool, with their defaults and ranges (the API's tables).

The constraints live in the types (msgspec ``Meta``) so that the gateway's form validation,
the settings endpoint, the matcher and the API documents all read one definition. Unknown
fields are ignored when decoding (a newer gateway's extra param must not stop an older matcher);
the gateway refuses them where a client sends them.
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


class TemplateParams(msgspec.Struct, frozen=True, kw_only=True):
    method: TemplateMethod = "TM_CCOEFF_NORMED"
    threshold: Annotated[float, Meta(ge=0.1, le=1.0)] = 0.8
    max_results: Annotated[int, Meta(ge=1, le=1000)] = 20
    use_grayscale: bool = True


class FeatureParams(msgspec.Struct, frozen=True, kw_only=True):
    detector: Detector = "SIFT"
    matcher: FeatureMatcher = "FLANN"
    ratio_threshold: Annotated[float, Meta(ge=0.1, le=1.0)] = 0.75
    max_matches: Annotated[int, Meta(ge=1, le=5000)] = 200


class SurfaceParams(msgspec.Struct, frozen=True, kw_only=True):
    relative_sampling_step: Annotated[float, Meta(ge=0.01, le=0.5)] = 0.05
    relative_distance_step: Annotated[float, Meta(ge=0.01, le=0.5)] = 0.05
    num_angles: Annotated[int, Meta(ge=1, le=360)] = 30
    use_icp: bool = True
    icp_tolerance: Annotated[float, Meta(gt=0.0)] = 0.005
    icp_iterations: Annotated[int, Meta(ge=1, le=1000)] = 100
