"""How long the event log and the files are kept: explicit, configurable, applied by the gateway.

The event log is the audit log: by default it is kept for ever (limits retention: consuming never
deletes an event). ``AEROVISION_EVENTS_MAX_AGE`` and ``AEROVISION_EVENTS_MAX_GB`` bound it (the
oldest events go first). Uploads, thumbnails and results are kept for ever too unless
``AEROVISION_FILES_TTL`` gives them a time to live. Only the gateway applies these at start; other
services declare the stream and the files bucket without touching their limits, so services
started with different environments do not undo each other's choice.
"""

from __future__ import annotations

import os
import re

import msgspec

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``12h``, ``30d``, ``1d12h``, ``2w``; 0 (and "") is none."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        return 0.0
    if _DURATION.sub("", compact) != "":
        raise ValueError(f"not a duration: {text!r} (e.g. 3600, 90m, 12h, 30d, 2w)")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))


def human(seconds: float) -> str:
    """``604800`` -> ``7 days`` (for messages)."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    events_max_age: float = 0.0  # seconds; 0: the log is kept for ever
    events_max_bytes: int = -1  # -1: no size limit
    files_ttl: float = 0.0  # seconds an upload, thumbnail or result is kept; 0: for ever

    @classmethod
    def from_env(cls) -> "Retention":
        env = os.environ
        gigabytes = float(env.get("AEROVISION_EVENTS_MAX_GB", "0") or 0)
        return cls(
            events_max_age=parse_duration(env.get("AEROVISION_EVENTS_MAX_AGE", "")),
            events_max_bytes=int(gigabytes * 2**30) if gigabytes > 0 else -1,
            files_ttl=parse_duration(env.get("AEROVISION_FILES_TTL", "")),
        )
