"""Template matching: normalised 0..1 score maps, peak detection, NMS, and result images.

Pure: arrays in, arrays and structs out. Every method's OpenCV map is turned into a score where
higher is better and 1.0 is a perfect match, so one threshold means the same for all methods.
"""

from __future__ import annotations

from typing import Any

import cv2
import msgspec
import numpy as np

from contracts.params import TemplateParams
from contracts.results import TemplateMatch, TemplateResult
from services.matcher.errors import InputError
from services.matcher.images import to_bgr

_METHODS = {
    "TM_CCOEFF_NORMED": cv2.TM_CCOEFF_NORMED,
    "TM_CCORR_NORMED": cv2.TM_CCORR_NORMED,
    "TM_SQDIFF_NORMED": cv2.TM_SQDIFF_NORMED,
    "TM_CCOEFF": cv2.TM_CCOEFF,
    "TM_CCORR": cv2.TM_CCORR,
    "TM_SQDIFF": cv2.TM_SQDIFF,
}
# Scores are reported to 4 decimals; a score that reads as the threshold must pass it, and a
# float32 perfect match (0.99998) must pass threshold 1.0.
_THRESHOLD_EPS = 5e-5
_NMS_IOU = 0.3
# Methods that subtract the template's mean: a single-colour template has nothing left to compare.
_CENTRED = frozenset({"TM_CCOEFF_NORMED", "TM_CCOEFF"})
_BOX_COLOUR = (0, 255, 0)


class TemplateMatching(msgspec.Struct, frozen=True):
    """The result as the API shows it, and the score map behind it (for the heat map)."""

    result: TemplateResult
    # float32 (H-h+1, W-w+1) map of 0..1 scores; never sent on the wire.
    scores: Any


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}×{a.shape[0]}"


def _same_channels(image: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, template = _drop_alpha(image), _drop_alpha(template)
    image_gray, template_gray = image.ndim == 2, template.ndim == 2
    if image_gray and not template_gray:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif template_gray and not image_gray:
        template = cv2.cvtColor(template, cv2.COLOR_GRAY2BGR)
    return image, template


def _single_colour(template: np.ndarray) -> bool:
    flat = template.reshape(-1, 1 if template.ndim == 2 else template.shape[2])
    return bool((flat.min(axis=0) == flat.max(axis=0)).all())


def _drop_alpha(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        return a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    return a


def _energy(template: np.ndarray, centred: bool) -> float:
    t = template.astype(np.float64).reshape(-1, 1 if template.ndim == 2 else template.shape[2])
    if centred:
        # matchTemplate's CCOEFF subtracts each channel's own mean.
        t = t - t.mean(axis=0)
    # A flat template has no energy; the number of values keeps the scale sane and non-zero.
    return max(float(np.sum(t * t)), float(t.size))


def normalised_scores(raw: np.ndarray, method: str, template: np.ndarray) -> np.ndarray:
    """Map OpenCV's raw response to float32 scores in 0..1, higher = better (monotone, clipped)."""
    # float32 in place: the map is large and the energies (the sums) are already float64.
    s = np.array(raw, dtype=np.float32, copy=True)
    if method == "TM_SQDIFF_NORMED":
        np.subtract(1.0, s, out=s)
    elif method == "TM_CCORR":
        s *= np.float32(1.0 / _energy(template, centred=False))
    elif method == "TM_CCOEFF":
        s *= np.float32(1.0 / _energy(template, centred=True))
    elif method == "TM_SQDIFF":
        s *= np.float32(-1.0 / _energy(template, centred=True))
        s += np.float32(1.0)
    # Flat image regions give NaN/inf for the normed methods: no evidence of a match.
    np.nan_to_num(s, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(s, 0.0, 1.0, out=s)


def _top_candidates(scores: np.ndarray, threshold: float, limit: int) -> tuple[np.ndarray, int]:
    """Flat indices of local maxima ≥ threshold, best first (ties in raster order), and their count."""
    peaks = scores == cv2.dilate(scores, np.ones((3, 3), np.uint8))
    peaks &= scores >= threshold - _THRESHOLD_EPS
    idx = np.flatnonzero(peaks)
    found = int(idx.size)
    vals = scores.ravel()[idx]
    if found > limit:
        # Keep everything strictly above the limit-th best value, then fill with the earliest ties,
        # so a plateau is cut deterministically without sorting all of it.
        kth = np.partition(vals, found - limit)[found - limit]
        above = vals > kth
        ties = np.flatnonzero(vals == kth)[: limit - int(above.sum())]
        sel = np.sort(np.concatenate([np.flatnonzero(above), ties]))
        idx, vals = idx[sel], vals[sel]
    order = np.argsort(-vals, kind="stable")
    return idx[order], found


def _nms(xs: np.ndarray, ys: np.ndarray, w: int, h: int, max_keep: int) -> list[int]:
    """Greedy NMS over equal-size boxes already sorted best first; returns kept positions."""
    keep: list[int] = []
    alive = np.ones(xs.size, dtype=bool)
    area = float(w * h)
    i = 0
    while len(keep) < max_keep:
        rest = np.flatnonzero(alive[i:])
        if rest.size == 0:
            break
        i += int(rest[0])
        keep.append(i)
        alive[i] = False
        ox = np.clip(w - np.abs(xs[i:] - xs[i]), 0, None)
        oy = np.clip(h - np.abs(ys[i:] - ys[i]), 0, None)
        inter = (ox * oy).astype(np.float64)
        alive[i:] &= inter / (2.0 * area - inter) <= _NMS_IOU
    return keep


def match_template(image: np.ndarray, template: np.ndarray, params: TemplateParams) -> TemplateMatching:
    """Find the template in the image: thresholded, NMS-filtered matches, best first."""
    if image.size == 0 or template.size == 0:
        raise InputError("the image and the template must both have at least one pixel")
    ih, iw = image.shape[:2]
    th, tw = template.shape[:2]
    if th > ih or tw > iw:
        raise InputError(f"the template ({_size(template)}) is larger than the image ({_size(image)})")
    image, template = _same_channels(image, template)
    if params.method in _CENTRED and _single_colour(template):
        # OpenCV answers 1.0 (NORMED) or 0 everywhere: any "match" would be an arbitrary position.
        raise InputError(
            f"the template ({_size(template)}) is a single colour: {params.method} compares patterns "
            "of light and dark, so every position would score the same; use TM_SQDIFF_NORMED to "
            "find where that colour is"
        )
    try:
        raw = cv2.matchTemplate(image, template, _METHODS[params.method])
    except cv2.error as exc:
        raise InputError("the image and the template could not be compared (unsupported pixel format)") from exc
    scores = normalised_scores(raw, params.method, template)

    limit = max(10 * params.max_results, 1000)
    idx, found = _top_candidates(scores, params.threshold, limit)
    ys, xs = np.divmod(idx, scores.shape[1])
    keep = _nms(xs, ys, tw, th, params.max_results)
    flat = scores.ravel()
    # Scores are reported to 4 decimals (float32 noise beyond that means nothing to a user).
    matches = [
        TemplateMatch(int(xs[k]), int(ys[k]), tw, th, round(float(flat[idx[k]]), 4)) for k in keep
    ]
    result = TemplateResult(
        method=params.method,
        matches_found=found,
        filtered_matches=len(matches),
        best_score=round(float(scores.max()), 4),
        matches=matches,
    )
    return TemplateMatching(result=result, scores=scores)


def draw_matches(image: np.ndarray, matches: list[TemplateMatch]) -> np.ndarray:
    """BGR copy of the image with a green box and score label per match."""
    out = to_bgr(image, copy=True)
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    # Draw worst first so the best match's box and label end up on top.
    for m in reversed(matches):
        cv2.rectangle(out, (m.x, m.y), (m.x + m.w - 1, m.y + m.h - 1), _BOX_COLOUR, 2)
        label = f"{m.score:.2f}"
        (lw, lh), base = cv2.getTextSize(label, font, scale, thick)
        # Above the box when there is room, otherwise just inside its top edge.
        top = m.y - lh - base - 2 if m.y - lh - base - 2 >= 0 else m.y + 2
        cv2.rectangle(out, (m.x, top), (m.x + lw + 4, top + lh + base + 2), _BOX_COLOUR, -1)
        cv2.putText(out, label, (m.x + 2, top + lh + 1), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def render_heatmap(
    scores: np.ndarray, image_shape: tuple[int, ...], template_shape: tuple[int, ...]
) -> np.ndarray:
    """JET-coloured BGR heat map of the scores, image-sized, each score at its window's centre."""
    ih, iw = image_shape[:2]
    th, tw = template_shape[:2]
    top, left = th // 2, tw // 2
    s = np.clip(np.nan_to_num(np.asarray(scores, dtype=np.float32)), 0.0, 1.0)
    bottom = max(ih - s.shape[0] - top, 0)
    right = max(iw - s.shape[1] - left, 0)
    padded = cv2.copyMakeBorder(s, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0.0)
    gray = np.round(padded[:ih, :iw] * 255.0).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)
