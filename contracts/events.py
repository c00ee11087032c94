"""Task events: immutable facts in the past tense, the source of truth of AeroVision.

Every event is a frozen, keyword-only Struct serialised as JSON with a stable ``type`` tag, so a
subscriber in any language can read the stream. Schemas evolve only by adding fields with
defaults; decoders ignore unknown fields. A breaking change is a new tag plus an upcaster here.

What an event carries depends on its tool: a submitted feature task's ``params`` are
``FeatureParams``, a finished one's ``result_data`` a ``FeatureResult``. The envelope says which
(``tool``, and ``status`` for a finished task), so each (event, tool, status) has a concrete
class generated from the registry (``contracts.tools``) with ``tool`` and ``status`` as literals:
the JSON is exactly what it always was, and the JSON Schema of each says what it holds.
``decode_event`` reads the envelope first, then decodes with the matching class.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

from contracts import names
from contracts.tools import TOOLS, ChainStep, Tool, no_result, result_type

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

    params: Any
    input_files: list[str]
    thumbnails: list[str] = []


class TaskStarted(Event, frozen=True, kw_only=True, tag="task.started"):
    """A matcher took the task (``attempt`` counts deliveries, from 1)."""

    worker: str
    attempt: int = 1


class TaskProgressed(Event, frozen=True, kw_only=True, tag="task.progressed"):
    """A long task reached a stage (``loading``, ``training``, ``matching``, ``refining``)."""

    stage: str
    attempt: int = 1


class StepCompleted(Event, frozen=True, kw_only=True, tag="task.step_completed"):
    """One step of a chain ended (done, error); ``step`` says which tool, with what, and what it found."""

    step: ChainStep  # type: ignore[valid-type]


class TaskFinished(Event, frozen=True, kw_only=True, tag="task.finished"):
    """The task ended: ``done`` with results, or ``error`` with a reason a user understands."""

    status: Literal["done", "error"]
    result_files: list[str] = []
    result_data: Any = msgspec.field(default_factory=dict)
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


AnyEvent = TaskSubmitted | TaskStarted | TaskProgressed | StepCompleted | TaskFinished | WebhookAttempted

TERMINAL_STATUSES = frozenset({"done", "error"})


# --- the concrete, per-tool classes ----------------------------------------------------------------

def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _concrete(base: type, name: str, fields: list) -> type:
    cls = msgspec.defstruct(name, fields, bases=(base,), module=__name__, frozen=True, kw_only=True,
                            tag=base.__struct_config__.tag)
    globals()[name] = cls  # pickle finds classes by module and name
    return cls


def _submitted(tool: Tool) -> type[TaskSubmitted]:
    return _concrete(TaskSubmitted, f"{_camel(tool.name)}TaskSubmitted",
                     [("tool", Literal[tool.name]), ("params", tool.params)])


def _finished(tool: Tool, status: str) -> type[TaskFinished]:
    return _concrete(TaskFinished, f"{_camel(tool.name)}Task{status.capitalize()}",
                     [("tool", Literal[tool.name]), ("status", Literal[status]),
                      ("result_data", result_type(tool, status))])


SUBMITTED: dict[str, type[TaskSubmitted]] = {name: _submitted(tool) for name, tool in TOOLS.items()}
FINISHED: dict[tuple[str, str], type[TaskFinished]] = {
    (name, status): _finished(tool, status) for name, tool in TOOLS.items() for status in ("done", "error")
}
# Everything a subscriber can meet on the stream, one class per shape (for documents and tests).
CONCRETE_EVENTS: tuple[type, ...] = (
    *SUBMITTED.values(), TaskStarted, TaskProgressed, StepCompleted, *FINISHED.values(), WebhookAttempted,
)


def submitted(tool: str, **fields: Any) -> TaskSubmitted:
    """A ``TaskSubmitted`` of ``tool`` (its params typed as the tool's)."""
    return SUBMITTED[tool](tool=tool, **fields)


def finished(tool: str, status: Literal["done", "error"], **fields: Any) -> TaskFinished:
    """A ``TaskFinished`` of ``tool`` in ``status`` (an error's ``result_data`` defaults to empty)."""
    fields.setdefault("result_data", no_result(TOOLS[tool], status) if status == "error" else None)
    return FINISHED[(tool, status)](tool=tool, status=status, **fields)


# --- decoding ---------------------------------------------------------------------------------------

class UnknownEvent(ValueError):
    """An event this code does not know (a newer type, tool or version): skip it, log it."""


class _Envelope(msgspec.Struct):
    type: str
    tool: str = ""
    status: str = ""
    schema_version: int = SCHEMA_VERSION


_envelope = msgspec.json.Decoder(_Envelope)
_encoder = msgspec.json.Encoder()
_BY_TOOL = {"task.submitted", "task.finished"}
_DECODERS: dict[tuple[str, str, str], msgspec.json.Decoder] = {
    **{("task.submitted", tool, ""): msgspec.json.Decoder(cls) for tool, cls in SUBMITTED.items()},
    **{("task.finished", tool, status): msgspec.json.Decoder(cls) for (tool, status), cls in FINISHED.items()},
    **{(cls.__struct_config__.tag, "", ""): msgspec.json.Decoder(cls)
       for cls in (TaskStarted, TaskProgressed, StepCompleted, WebhookAttempted)},
}
# What a consumer skips (with a log line) instead of stopping on it.
UNREADABLE = (UnknownEvent, msgspec.ValidationError, msgspec.DecodeError)


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    """Decode one event into its concrete class; ``UnknownEvent`` for a type, tool or version this
    code does not know, ``msgspec.ValidationError``/``DecodeError`` for a malformed one."""
    envelope = _envelope.decode(data)
    if envelope.schema_version > SCHEMA_VERSION:
        raise UnknownEvent(f"{envelope.type} version {envelope.schema_version} is newer than {SCHEMA_VERSION}")
    by_tool = envelope.type in _BY_TOOL
    key = (envelope.type, envelope.tool if by_tool else "", envelope.status if envelope.type == "task.finished" else "")
    decoder = _DECODERS.get(key)
    if decoder is None:
        raise UnknownEvent(f"unknown event {envelope.type!r} (tool {envelope.tool!r})")
    return decoder.decode(data)


def subject_of(event: AnyEvent) -> str:
    return names.event_subject(_KIND_BY_TYPE[event.__struct_config__.tag], event.tool, event.uid)


_KIND_BY_TYPE: dict[Any, str] = {
    "task.submitted": names.KIND_SUBMITTED,
    "task.started": names.KIND_STARTED,
    "task.progressed": names.KIND_PROGRESSED,
    "task.step_completed": names.KIND_STEP_COMPLETED,
    "task.finished": names.KIND_FINISHED,
    "webhook.attempted": names.KIND_WEBHOOK_ATTEMPTED,
}


def message_id_of(event: AnyEvent) -> str:
    """Deterministic ``Nats-Msg-Id``: a retried publish of the same fact is stored once."""
    match event:
        case TaskSubmitted():
            return f"{event.uid}.submitted"
        case TaskStarted():
            return f"{event.uid}.started.{event.attempt}"
        case TaskProgressed():
            return f"{event.uid}.progressed.{event.attempt}.{event.stage}"
        case StepCompleted():
            return f"{event.uid}.step.{event.step.step}"
        case TaskFinished():
            return f"{event.uid}.finished"
        case WebhookAttempted():
            return f"{event.uid}.webhook.{event.webhook_id}.{event.attempt}"
    raise TypeError(f"not an event: {event!r}")
