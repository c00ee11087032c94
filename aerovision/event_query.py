"""What ``aerovision events`` (and the SSE endpoint) ask the stream for: a subject filter from a
task and an event type, and a start time from ``--since``. Pure: no NATS here."""

from __future__ import annotations

import datetime as dt
import re

from contracts import names
from contracts.events import KIND_OF

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class BadQuery(ValueError):
    """A filter the stream cannot be asked for (the message says why, for a user)."""


def kind_of(event_type: str) -> str:
    """The subject kind of a type given as its tag (``task.finished``) or its kind (``finished``)."""
    if event_type in KIND_OF:
        return KIND_OF[event_type]
    if event_type in KIND_OF.values():
        return event_type
    raise BadQuery(f"unknown event type {event_type!r}; one of: {', '.join(KIND_OF)}")


def subject_filter(task: str | None = None, event_type: str | None = None) -> str:
    """The subject filter for one task's events and/or one type's (every event without either)."""
    if task is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", task):
        raise BadQuery(f"not a task uid: {task!r}")
    kind = kind_of(event_type) if event_type else None
    if task is None:
        return names.kind_filter(kind) if kind else names.EVENT_SUBJECTS
    return f"{names.EVENT_PREFIX}.{kind or '*'}.*.{task}"


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
        raise BadQuery(f"not a time or a duration: {text!r} (e.g. 2025-06-01T12:00:00Z, 15m, 2h, 1d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
