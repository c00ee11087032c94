"""``--since``: a start time for ``aerovision events``, given as a time or as a duration ago."""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class BadTime(ValueError):
    """Neither a time nor a duration (the message says what would do)."""


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """A start time: RFC 3339 / ISO 8601 (``2025-06-01T12:00:00Z``, a date alone, UTC when no zone
    is given) or a duration back from ``now`` (``90s``, ``15m``, ``2h``, ``1d12h``, ``1w``)."""
    compact = text.strip().lower().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
        return now - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadTime(f"not a time or a duration: {text!r} (e.g. 2025-06-01T12:00:00Z, 15m, 2h, 1d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
