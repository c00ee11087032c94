"""Small statistics helpers (no numpy needed in the report)."""

from __future__ import annotations

import math
from typing import Iterable


def pct(values: Iterable[float], q: float) -> float:
    """Percentile ``q`` (0..100), linear interpolation between closest ranks; NaN when empty."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    return pct(values, 50)


def ms(seconds: float) -> float:
    return seconds * 1e3
