"""Subject filters a subscriber asks the stream for: one task's events, one type's, or both.

Pure naming, as ``contracts.names``: ``aerovision events`` and the gateway's SSE endpoint build
their filters here, and any Python subscriber may too.
"""

from __future__ import annotations

import re

from contracts import names
from contracts.events import KIND_OF

_UID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadFilter(ValueError):
    """A filter the stream cannot be asked for (the message says why, for a user)."""


def kind_of(event_type: str) -> str:
    """The subject kind of a type given as its tag (``task.finished``) or its kind (``finished``)."""
    if event_type in KIND_OF:
        return KIND_OF[event_type]
    if event_type in KIND_OF.values():
        return event_type
    raise BadFilter(f"unknown event type {event_type!r}; one of: {', '.join(KIND_OF)}")


def subject_filter(task: str | None = None, event_type: str | None = None) -> str:
    """The subject filter for one task's events and/or one type's (every event without either)."""
    if task is not None and not _UID.fullmatch(task):
        raise BadFilter(f"not a task uid: {task!r}")
    kind = kind_of(event_type) if event_type else None
    if task is None:
        return names.kind_filter(kind) if kind else names.EVENT_SUBJECTS
    return f"{names.EVENT_PREFIX}.{kind or '*'}.*.{task}"
