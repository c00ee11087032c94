"""What a client may put in a path: checked before it becomes part of a NATS subject or key.

A subject longer than the server's control line (4096 bytes), or holding ``.``, ``*``, ``>``,
whitespace or control characters, makes nats-server close the connection or misroute the request.
Every path parameter is matched whole (``fullmatch``: ``$`` would let a trailing newline through)
against the exact shape the gateway itself creates; anything else is simply not found.
"""

from __future__ import annotations

import re

from contracts.api import WEBHOOK_ID_PATTERN

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# What ``forms.safe_filename`` produces: safe characters, not starting with a dot, at most 100.
_NAME = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
_UUID = re.compile(UUID_PATTERN)
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN.lstrip("^").rstrip("$"))
_FILES = {
    "uploads": re.compile(rf"({UUID_PATTERN})/{_NAME}"),
    "thumbnails": re.compile(rf"({UUID_PATTERN})/{_NAME}"),
    # A chain's steps keep their files apart: results/<uid>/step<N>/<name>.
    "results": re.compile(rf"({UUID_PATTERN})/(?:step[1-9][0-9]?/)?{_NAME}"),
}


def is_webhook_id(text: str) -> bool:
    """True for a webhook id the gateway could have issued (``wh_`` and 16 hex digits)."""
    return _WEBHOOK_ID.fullmatch(text) is not None


def is_task_uid(text: str) -> bool:
    """True for a uid the gateway could have issued (lower-case UUID, nothing around it)."""
    return _UUID.fullmatch(text) is not None


def stored_file(kind: str, path: str) -> str | None:
    """The Object Store name of ``/<kind>/<path>``, or None when no such file can exist."""
    shape = _FILES.get(kind)
    relative = path.lstrip("/")
    if shape is None or shape.fullmatch(relative) is None or ".." in relative:
        return None
    return f"{kind}/{relative}"
