"""Task events: immutable facts in the past tense, the source of truth of AeroVision.

Every event is a frozen, keyword-only Struct serialised as JSON with a stable ``type`` tag, so a
subscriber in any language can read the stream. Schemas evolve only by adding fields with
defaults; decoders ignore unknown fields. A breaking change is a new tag plus an upcaster here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

from contracts import names

SCHEMA_VERSION = 1


def now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix (the API's format)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Envelope shared by every event."""

    uid: str
    tool: str
    event_id: str = msgspec.field(default_factory=new_event_id)
    occurred_at: str = msgspec.field(default_factory=now_iso)
    schema_version: int = SCHEMA_VERSION


class TaskSubmitted(Event, frozen=True, kw_only=True, tag="task.submitted"):
    """A client's submission was accepted; ``params`` are resolved (defaults filled in)."""

    params: dict[str, Any]
    input_files: list[str]
    thumbnails: list[str] = []


class TaskStarted(Event, frozen=True, kw_only=True, tag="task.started"):
    """A matcher took the task (``attempt`` counts deliveries, from 1)."""

    worker: str
    attempt: int = 1


class StepCompleted(Event, frozen=True, kw_only=True, tag="task.step_completed"):
    """One step of a chain ended."""

    step: int
    step_tool: str
    params: dict[str, Any]
    status: Literal["done", "error", "skipped"]
    found: bool = False
    result_data: dict[str, Any] = {}
    result_files: list[str] = []
    error: str | None = None


class TaskFinished(Event, frozen=True, kw_only=True, tag="task.finished"):
    """The task ended: ``done`` with results, or ``error`` with a reason a user understands."""

    status: Literal["done", "error"]
    result_files: list[str] = []
    result_data: dict[str, Any] = {}
    error: str | None = None


class WebhookAttempted(Event, frozen=True, kw_only=True, tag="webhook.attempted"):
    """The notifier tried to deliver a task's terminal notification to one webhook.

    ``url`` is shown without ``user:password@``; ``error`` says what failed in the notifier's
    words (timeout, refused, HTTP status...), never with the receiver's reply.
    """

    webhook_id: str
    url: str
    attempt: int
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    started_at: str | None = None  # when the attempt began (``occurred_at`` is when it ended)


AnyEvent = TaskSubmitted | TaskStarted | StepCompleted | TaskFinished | WebhookAttempted

TERMINAL_STATUSES = frozenset({"done", "error"})

_KIND_BY_TYPE: dict[type, str] = {
    TaskSubmitted: names.KIND_SUBMITTED,
    TaskStarted: names.KIND_STARTED,
    StepCompleted: names.KIND_STEP_COMPLETED,
    TaskFinished: names.KIND_FINISHED,
    WebhookAttempted: names.KIND_WEBHOOK_ATTEMPTED,
}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    """Decode one event; raises ``msgspec.ValidationError`` for an unknown type (callers skip it)."""
    return _decoder.decode(data)


def subject_of(event: AnyEvent) -> str:
    return names.event_subject(_KIND_BY_TYPE[type(event)], event.tool, event.uid)


def message_id_of(event: AnyEvent) -> str:
    """Deterministic ``Nats-Msg-Id``: a retried publish of the same fact is stored once."""
    match event:
        case TaskSubmitted():
            return f"{event.uid}.submitted"
        case TaskStarted():
            return f"{event.uid}.started.{event.attempt}"
        case StepCompleted():
            return f"{event.uid}.step.{event.step}"
        case TaskFinished():
            return f"{event.uid}.finished"
        case WebhookAttempted():
            return f"{event.uid}.webhook.{event.webhook_id}.{event.attempt}"
    raise TypeError(f"not an event: {event!r}")
