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

Versions are per event type (``SCHEMA_VERSIONS``): a breaking change of one type bumps its
version and adds a pure upcaster from the old shape (see "upcasting" below), so consumers only
ever see the current shape, and a type another does not know yet is skipped, not fatal.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, get_origin
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from contracts import names
from contracts.tools import TOOLS, ChainStep, Tool, no_result, result_type

SCHEMA_VERSION = 1  # every type's first version
# Written by every producer and required by every reader: a message without them is unreadable.
ENVELOPE_FIELDS: tuple[str, ...] = ("type", "uid", "tool", "event_id", "occurred_at", "schema_version")


def now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix (the API's format)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Envelope shared by every event (producers' constructors fill in the last three; on the
    wire all are always present, and readers require them)."""

    uid: Annotated[str, Meta(description="the task's id (of a settings.changed: the change's own id; "
                                         "of a webhook.registered or webhook.removed: the webhook's id)")]
    tool: Annotated[str, Meta(description="the task's tool (of a settings.changed: the tool whose defaults "
                                          "changed; of a webhook.registered or webhook.removed: \"webhooks\")")]
    event_id: Annotated[str, Meta(description="this event's unique id")] = msgspec.field(default_factory=new_event_id)
    occurred_at: Annotated[str, Meta(description="when it happened: RFC 3339, UTC, milliseconds")] = \
        msgspec.field(default_factory=now_iso)
    schema_version: Annotated[int, Meta(description="the version of this event type's schema")] = SCHEMA_VERSION


class TaskSubmitted(Event, frozen=True, kw_only=True, tag="task.submitted"):
    """A client's submission was accepted; ``params`` are resolved (defaults filled in)."""

    params: Annotated[Any, Meta(description="the task's params, every default filled in")]
    input_files: Annotated[list[str], Meta(description="the uploads, as download paths (uploads/<uid>/<name>)")]
    thumbnails: Annotated[list[str], Meta(description="thumbnail download paths (images only)")] = []


class TaskStarted(Event, frozen=True, kw_only=True, tag="task.started"):
    """A matcher took the task (``attempt`` counts deliveries, from 1)."""

    worker: Annotated[str, Meta(description="which matcher replica took it")]
    attempt: Annotated[int, Meta(description="the delivery this is, from 1")] = 1


class TaskProgressed(Event, frozen=True, kw_only=True, tag="task.progressed"):
    """A long task reached a stage (``loading``, ``training``, ``matching``, ``refining``)."""

    stage: Annotated[str, Meta(description="loading, training, matching or refining")]
    attempt: Annotated[int, Meta(description="the delivery this is, from 1")] = 1


class StepCompleted(Event, frozen=True, kw_only=True, tag="task.step_completed"):
    """One step of a chain ended (done, error); ``step`` says which tool, with what, and what it found."""

    step: Annotated[ChainStep, Meta(description="the step: its number, tool, params, status and result")]  # type: ignore[valid-type]


class TaskFinished(Event, frozen=True, kw_only=True, tag="task.finished"):
    """The task ended: ``done`` with results, or ``error`` with a reason a user understands."""

    status: Annotated[Literal["done", "error"], Meta(description="how it ended")]
    result_files: Annotated[list[str], Meta(description="result download paths (results/<uid>/<name>)")] = []
    result_data: Annotated[Any, Meta(description="the tool's result; {} (or a chain's steps so far) on error")] = \
        msgspec.field(default_factory=dict)
    error: Annotated[str | None, Meta(description="why it failed, for a user (error only)")] = None


class WebhookAttempted(Event, frozen=True, kw_only=True, tag="webhook.attempted"):
    """The notifier tried to deliver a task's terminal notification to one webhook.

    Version 2: ``endpoint`` (scheme, host and port) instead of version 1's full ``url``, whose
    path and query often hold a credential (chat webhooks put their token there) and the stream
    is readable by every subscriber. Version 1 events are upcast when read (see below).
    """

    webhook_id: Annotated[str, Meta(description="the registration's id (wh_...)")]
    endpoint: Annotated[str, Meta(description="scheme://host[:port] of the webhook URL, nothing more")]
    attempt: Annotated[int, Meta(description="this delivery's attempt, from 1")]
    delivered: Annotated[bool, Meta(description="the receiver answered 2xx")]
    status_code: Annotated[int | None, Meta(description="the receiver's HTTP status, if it answered")] = None
    error: Annotated[str | None, Meta(description="why no answer came (timeout, connection refused...)")] = None
    duration_ms: Annotated[float, Meta(description="how long the attempt took")] = 0.0
    started_at: Annotated[str | None, Meta(description="when the attempt began (occurred_at: when it ended)")] = None
    schema_version: Annotated[int, Meta(description="the version of this event type's schema")] = 2


class WebhookRegistered(Event, frozen=True, kw_only=True, tag="webhook.registered"):
    """A webhook was registered; ``uid`` is its id (wh_...), ``tool`` is "webhooks". Only where it
    points and whether it signs are on the stream: its full URL (paths and queries often hold a
    token) and its secret stay in the webhooks bucket, which every subscriber cannot read."""

    endpoint: Annotated[str, Meta(description="scheme://host[:port] of the webhook URL, nothing more")]
    signed: Annotated[bool, Meta(description="deliveries carry signatures (a secret was given)")]
    schema_version: Annotated[int, Meta(description="the version of this event type's schema")] = 1


class WebhookRemoved(Event, frozen=True, kw_only=True, tag="webhook.removed"):
    """A webhook was removed; ``uid`` is its id. What it was still owed is not sent."""

    schema_version: Annotated[int, Meta(description="the version of this event type's schema")] = 1


WEBHOOKS_TOOL = "webhooks"  # the subject's <tool> token of webhook registration events


class SettingsChanged(Event, frozen=True, kw_only=True, tag="settings.changed"):
    """A tool's defaults were replaced; ``params`` is the full set submissions resolve against
    from now on. ``uid`` is the change's own id (settings are no task)."""

    params: Annotated[Any, Meta(description="the tool's full defaults from now on")]


AnyEvent = (TaskSubmitted | TaskStarted | TaskProgressed | StepCompleted | TaskFinished | WebhookAttempted
            | WebhookRegistered | WebhookRemoved | SettingsChanged)

TERMINAL_STATUSES = frozenset({"done", "error"})


# --- the concrete, per-tool classes ----------------------------------------------------------------

def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _concrete(base: type, name: str, fields: list) -> type:
    # A narrowed field keeps the base's description (its Meta) for the JSON Schema.
    described = {f.name: f.type for f in msgspec.structs.fields(base) if get_origin(f.type) is Annotated}
    fields = [(field, Annotated[(kind, *described[field].__metadata__)] if field in described else kind, *rest)
              for field, kind, *rest in fields]
    cls = msgspec.defstruct(name, fields, bases=(base,), module=__name__, frozen=True, kw_only=True,
                            tag=base.__struct_config__.tag)
    cls.__doc__ = base.__doc__  # the JSON Schema's description
    globals()[name] = cls  # pickle finds classes by module and name
    return cls


def _submitted(tool: Tool) -> type[TaskSubmitted]:
    return _concrete(TaskSubmitted, f"{_camel(tool.name)}TaskSubmitted",
                     [("tool", Literal[tool.name]), ("params", tool.params)])


def _finished(tool: Tool, status: str) -> type[TaskFinished]:
    return _concrete(TaskFinished, f"{_camel(tool.name)}Task{status.capitalize()}",
                     [("tool", Literal[tool.name]), ("status", Literal[status]),
                      ("result_data", result_type(tool, status))])


def _settings_changed(tool: Tool) -> type[SettingsChanged]:
    return _concrete(SettingsChanged, f"{_camel(tool.name)}SettingsChanged",
                     [("tool", Literal[tool.name]), ("params", tool.params)])


SUBMITTED: dict[str, type[TaskSubmitted]] = {name: _submitted(tool) for name, tool in TOOLS.items()}
FINISHED: dict[tuple[str, str], type[TaskFinished]] = {
    (name, status): _finished(tool, status) for name, tool in TOOLS.items() for status in ("done", "error")
}
SETTINGS_CHANGED: dict[str, type[SettingsChanged]] = {
    name: _settings_changed(tool) for name, tool in TOOLS.items() if tool.has_settings
}
# Everything a subscriber can meet on the stream, one class per shape (for documents and tests).
CONCRETE_EVENTS: tuple[type, ...] = (
    *SUBMITTED.values(), TaskStarted, TaskProgressed, StepCompleted, *FINISHED.values(), WebhookAttempted,
    WebhookRegistered, WebhookRemoved, *SETTINGS_CHANGED.values(),
)
# The version of each event type this code writes and reads (older ones are upcast, newer skipped).
SCHEMA_VERSIONS: dict[str, int] = {
    base.__struct_config__.tag: next(f.default for f in msgspec.structs.fields(base) if f.name == "schema_version")
    for base in (TaskSubmitted, TaskStarted, TaskProgressed, StepCompleted, TaskFinished, WebhookAttempted,
                 WebhookRegistered, WebhookRemoved, SettingsChanged)
}


def submitted(tool: str, **fields: Any) -> TaskSubmitted:
    """A ``TaskSubmitted`` of ``tool`` (its params typed as the tool's)."""
    return SUBMITTED[tool](tool=tool, **fields)


def finished(tool: str, status: Literal["done", "error"], **fields: Any) -> TaskFinished:
    """A ``TaskFinished`` of ``tool`` in ``status`` (an error's ``result_data`` defaults to empty)."""
    fields.setdefault("result_data", no_result(TOOLS[tool], status) if status == "error" else None)
    return FINISHED[(tool, status)](tool=tool, status=status, **fields)


def webhook_registered(webhook_id: str, url: str, signed: bool) -> WebhookRegistered:
    return WebhookRegistered(uid=webhook_id, tool=WEBHOOKS_TOOL, endpoint=endpoint_of(url), signed=signed)


def webhook_removed(webhook_id: str) -> WebhookRemoved:
    return WebhookRemoved(uid=webhook_id, tool=WEBHOOKS_TOOL)


def settings_changed(tool: str, params: msgspec.Struct) -> SettingsChanged:
    """A change of ``tool``'s defaults to ``params``, with an id of its own."""
    return SETTINGS_CHANGED[tool](uid=str(uuid.uuid4()), tool=tool, params=params)


def endpoint_of(url: str) -> str:
    """What of a webhook URL may be shown to every subscriber: its scheme, host and port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else ""


# --- decoding ---------------------------------------------------------------------------------------

class UnknownEvent(ValueError):
    """An event this code does not know (a newer type, tool or version): skip it, log it."""


class _Envelope(msgspec.Struct):
    # Required: an event without any of these is unreadable (and skipped with a log line).
    type: str
    uid: str
    tool: str
    event_id: str
    occurred_at: str
    schema_version: int
    status: str = ""


_envelope = msgspec.json.Decoder(_Envelope)
_encoder = msgspec.json.Encoder()
_BY_TOOL = {"task.submitted", "task.finished", "settings.changed"}
_DECODERS: dict[tuple[str, str, str], msgspec.json.Decoder] = {
    **{("task.submitted", tool, ""): msgspec.json.Decoder(cls) for tool, cls in SUBMITTED.items()},
    **{("task.finished", tool, status): msgspec.json.Decoder(cls) for (tool, status), cls in FINISHED.items()},
    **{("settings.changed", tool, ""): msgspec.json.Decoder(cls) for tool, cls in SETTINGS_CHANGED.items()},
    **{(cls.__struct_config__.tag, "", ""): msgspec.json.Decoder(cls)
       for cls in (TaskStarted, TaskProgressed, StepCompleted, WebhookAttempted, WebhookRegistered, WebhookRemoved)},
}
# What a consumer skips (with a log line) instead of stopping on it.
UNREADABLE = (UnknownEvent, msgspec.ValidationError, msgspec.DecodeError)


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    """Decode one event into its concrete class, upcast to its type's current version;
    ``UnknownEvent`` for a type, tool or version this code does not know,
    ``msgspec.ValidationError``/``DecodeError`` for a malformed one (or one without its envelope)."""
    envelope = _envelope.decode(data)
    current = SCHEMA_VERSIONS.get(envelope.type)
    if current is None:
        raise UnknownEvent(f"unknown event type {envelope.type!r}")
    if envelope.schema_version > current:
        raise UnknownEvent(f"{envelope.type} version {envelope.schema_version} is newer than {current}")
    if envelope.schema_version < current:
        return _upcast(envelope.type, envelope.schema_version, data)
    by_tool = envelope.type in _BY_TOOL
    key = (envelope.type, envelope.tool if by_tool else "", envelope.status if envelope.type == "task.finished" else "")
    decoder = _DECODERS.get(key)
    if decoder is None:
        raise UnknownEvent(f"unknown event {envelope.type!r} (tool {envelope.tool!r})")
    return decoder.decode(data)


# --- upcasting --------------------------------------------------------------------------------------
# A breaking change of a type bumps its version; its old shape stays here as a Struct with a pure
# function to the next version. decode_event decodes an old event with its old shape and applies
# the functions in turn, so every consumer sees the current shape only. Old events stay in the log
# as they were written (the log is never rewritten).

class WebhookAttemptedV1(msgspec.Struct, frozen=True, kw_only=True):
    """``webhook.attempted`` version 1: it held the webhook's full URL."""

    type: Literal["webhook.attempted"]
    uid: str
    tool: str
    event_id: str
    occurred_at: str
    schema_version: Literal[1]
    webhook_id: str
    url: str
    attempt: int
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    started_at: str | None = None


def webhook_attempted_v1_to_v2(old: WebhookAttemptedV1) -> WebhookAttempted:
    """Version 1 to 2: only the URL's scheme, host and port are kept."""
    return WebhookAttempted(
        uid=old.uid, tool=old.tool, event_id=old.event_id, occurred_at=old.occurred_at,
        webhook_id=old.webhook_id, endpoint=endpoint_of(old.url), attempt=old.attempt, delivered=old.delivered,
        status_code=old.status_code, error=old.error, duration_ms=old.duration_ms, started_at=old.started_at,
    )


@dataclass(frozen=True)
class Upcaster:
    """How to read version ``n`` of a type (``old``) and turn it into version ``n + 1`` (``step``)."""

    old: type[msgspec.Struct]  # the shape of version n
    step: Callable[[Any], Any]


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("webhook.attempted", 1): Upcaster(WebhookAttemptedV1, webhook_attempted_v1_to_v2),
}
_OLD_DECODERS = {key: msgspec.json.Decoder(up.old) for key, up in UPCASTERS.items()}


def _upcast(type_: str, version: int, data: bytes) -> AnyEvent:
    decoder = _OLD_DECODERS.get((type_, version))
    if decoder is None:
        raise UnknownEvent(f"{type_} version {version} has no upcaster")
    event = decoder.decode(data)
    while version < SCHEMA_VERSIONS[type_]:
        event = UPCASTERS[(type_, version)].step(event)
        version += 1
    return event


def subject_of(event: AnyEvent) -> str:
    return names.event_subject(KIND_OF[event.__struct_config__.tag], event.tool, event.uid)


# The subject kind of each event type (``aerovision.events.<kind>.<tool>.<uid>``).
KIND_OF: dict[str, str] = {
    "task.submitted": names.KIND_SUBMITTED,
    "task.started": names.KIND_STARTED,
    "task.progressed": names.KIND_PROGRESSED,
    "task.step_completed": names.KIND_STEP_COMPLETED,
    "task.finished": names.KIND_FINISHED,
    "webhook.attempted": names.KIND_WEBHOOK_ATTEMPTED,
    "webhook.registered": names.KIND_WEBHOOK_REGISTERED,
    "webhook.removed": names.KIND_WEBHOOK_REMOVED,
    "settings.changed": names.KIND_SETTINGS_CHANGED,
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
        case SettingsChanged():
            return f"{event.uid}.settings"
        case WebhookRegistered():
            return f"{event.uid}.registered"
        case WebhookRemoved():
            return f"{event.uid}.removed"
    raise TypeError(f"not an event: {event!r}")
