"""The AsyncAPI 3.0 document of the event stream, generated from ``contracts`` alone.

Every message is one concrete event class (one per type, tool and status) with its JSON Schema
(msgspec's), its CloudEvents headers and its subject. Channels are the subject pattern and the
wildcard subscriptions the docs describe. The gateway serves it at ``/schema/asyncapi.json``;
``docs/asyncapi.json`` is the same document, and a test fails when the two disagree.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from contracts import cloudevents, names
from contracts.events import (
    CONCRETE_EVENTS,
    ENVELOPE_FIELDS,
    FINISHED,
    KIND_OF,
    SCHEMA_VERSIONS,
    SETTINGS_CHANGED,
    SUBMITTED,
    WEBHOOKS_TOOL,
    WebhookRegistered,
    WebhookRemoved,
)
from contracts.tools import TOOLS

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"
SCHEMAS = "#/components/schemas/"


class Ref(msgspec.Struct):
    ref: str = msgspec.field(name="$ref")


class Info(msgspec.Struct, kw_only=True):
    title: str
    version: str
    description: str


class ServerVariable(msgspec.Struct, kw_only=True):
    default: str
    description: str


class Server(msgspec.Struct, kw_only=True):
    host: str
    protocol: str
    description: str
    variables: dict[str, ServerVariable]


class Parameter(msgspec.Struct, kw_only=True, omit_defaults=True):
    description: str
    enum: list[str] | None = None
    examples: list[str] | None = None


class Channel(msgspec.Struct, kw_only=True, omit_defaults=True):
    address: str
    title: str
    description: str
    messages: dict[str, Ref]
    parameters: dict[str, Parameter] = {}


class Operation(msgspec.Struct, kw_only=True):
    action: Literal["receive", "send"]
    channel: Ref
    summary: str
    messages: list[Ref]


class Message(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    title: str
    summary: str
    content_type: str
    headers: dict[str, Any]  # a JSON Schema
    payload: Ref


class Components(msgspec.Struct, kw_only=True):
    schemas: dict[str, Any]  # JSON Schemas, as msgspec writes them
    messages: dict[str, Message]


class AsyncApiDocument(msgspec.Struct, kw_only=True, rename="camel"):
    asyncapi: str
    info: Info
    default_content_type: str
    servers: dict[str, Server]
    channels: dict[str, Channel]
    operations: dict[str, Operation]
    components: Components


def _tag(cls: type) -> str:
    return cls.__struct_config__.tag  # type: ignore[attr-defined]


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0]


def _asyncapi_discriminators(node: Any) -> Any:
    """msgspec writes OpenAPI's ``discriminator`` object; an AsyncAPI schema's is the property name."""
    if isinstance(node, dict):
        found = node.get("discriminator")
        if isinstance(found, dict):
            node["discriminator"] = found["propertyName"]
        for value in node.values():
            _asyncapi_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _asyncapi_discriminators(value)
    return node


def _event_schemas() -> dict[str, Any]:
    """msgspec's schemas, with the envelope required: constructors default three of its fields,
    but every producer writes them and ``decode_event`` refuses an event without them."""
    _, components = msgspec.json.schema_components(CONCRETE_EVENTS, ref_template=SCHEMAS + "{name}")
    components = _asyncapi_discriminators(components)  # a fresh dict from each call
    for cls in CONCRETE_EVENTS:
        schema = components[cls.__name__]
        for field in ENVELOPE_FIELDS:
            if field != "type":
                schema["properties"][field].pop("default", None)
        schema["properties"]["schema_version"]["const"] = SCHEMA_VERSIONS[_tag(cls)]
        schema["required"] = list(dict.fromkeys([*ENVELOPE_FIELDS, *schema.get("required", [])]))
    return components


def _headers(tag: str) -> dict[str, Any]:
    """The headers of a message of type ``tag``: its message id and its CloudEvents attributes."""
    string = {"type": "string"}
    return {
        "type": "object",
        "required": [cloudevents.MSG_ID_HEADER, "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-subject",
                     "ce-time", "content-type"],
        "properties": {
            cloudevents.MSG_ID_HEADER: {**string, "description": "the fact's id: a publish retried within "
                                        "two minutes is stored once (e.g. <uid>.finished, <uid>.started.<attempt>)"},
            "ce-specversion": {"const": cloudevents.SPEC_VERSION},
            "ce-id": {**string, "description": "the same as Nats-Msg-Id"},
            "ce-type": {"const": cloudevents.cloudevent_type(tag, SCHEMA_VERSIONS[tag])},
            "ce-source": {"const": cloudevents.SOURCE},
            "ce-subject": {**string, "description": "the task's uid (of a settings change: the tool)"},
            "ce-time": {**string, "format": "date-time", "description": "the event's occurred_at"},
            "content-type": {"const": cloudevents.CONTENT_TYPE},
        },
    }


def _message(cls: type) -> Message:
    tag = _tag(cls)
    return Message(name=cls.__name__, title=f"{tag} ({cls.__name__})", summary=_summary(cls),
                   content_type=cloudevents.CONTENT_TYPE, headers=_headers(tag), payload=Ref(SCHEMAS + cls.__name__))


_KIND = Parameter(description="the event's kind", enum=sorted(set(KIND_OF.values())))
_TOOL = Parameter(description="the task's tool (of a settings change: the tool whose defaults changed)",
                  enum=list(TOOLS))
_UID = Parameter(description="the task's uid (of a settings change: the change's id)",
                 examples=["d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"])
_TASK_EVENTS = tuple(cls for cls in CONCRETE_EVENTS if cls not in SETTINGS_CHANGED.values())

# (channel id, address, title, description, parameters, messages): the subject pattern first,
# then the subscriptions subscribers most often make.
_CHANNELS: list[tuple[str, str, str, str, dict[str, Parameter], tuple[type, ...]]] = [
    ("event", f"{names.EVENT_PREFIX}.{{kind}}.{{tool}}.{{uid}}", "Every event",
     "The subject of every event. Subscribe to `aerovision.events.>` for all of them.",
     {"kind": _KIND, "tool": _TOOL, "uid": _UID}, CONCRETE_EVENTS),
    ("taskEvents", f"{names.EVENT_PREFIX}.*.*.{{uid}}", "Every event of one task",
     "A task's whole history, oldest first (`*` and `>` are NATS wildcards).", {"uid": _UID}, _TASK_EVENTS),
    ("finishedTasks", f"{names.EVENT_PREFIX}.{names.KIND_FINISHED}.>", "All finished tasks",
     "One task.finished per task: done with its result, or error with a reason.", {}, tuple(FINISHED.values())),
    ("toolSubmissions", f"{names.EVENT_PREFIX}.{names.KIND_SUBMITTED}.{{tool}}.*", "One tool's submissions",
     "Every accepted task of one tool, with its resolved params.", {"tool": _TOOL}, tuple(SUBMITTED.values())),
    ("oneKind", f"{names.EVENT_PREFIX}.{{kind}}.>", "Every event of one kind",
     "All events of one kind, every tool and task.", {"kind": _KIND}, CONCRETE_EVENTS),
    ("settingsChanges", f"{names.EVENT_PREFIX}.{names.KIND_SETTINGS_CHANGED}.{{tool}}.*", "One tool's settings changes",
     "When a tool's defaults changed and to what (the full params).", {"tool": _TOOL},
     tuple(SETTINGS_CHANGED.values())),
    ("webhookRegistrations", f"{names.EVENT_PREFIX}.webhook_*.{WEBHOOKS_TOOL}.*", "Webhook registrations",
     "When each webhook was registered (where to, whether it signs) and removed; never its secret or full URL.",
     {}, (WebhookRegistered, WebhookRemoved)),
]

_DESCRIPTION = """\
AeroVision's event log: every fact about every task (and every change of a tool's defaults or of
the webhooks registered), as
JSON on the JetStream stream `AEROVISION_EVENTS`, kept as the audit log. Each message is a
CloudEvent in binary mode (`ce-*` headers); `type` and `schema_version` in the body say which
message it is. Readers must ignore fields they do not know and skip types or versions they do
not know. docs/events.md explains subjects, versions, retention, replay and the SSE endpoint."""


def document() -> AsyncApiDocument:
    """The whole AsyncAPI document (pure: the same contracts give the same document)."""
    messages = {cls.__name__: _message(cls) for cls in CONCRETE_EVENTS}
    channels: dict[str, Channel] = {}
    operations: dict[str, Operation] = {}
    for channel_id, address, title, description, parameters, classes in _CHANNELS:
        channels[channel_id] = Channel(
            address=address, title=title, description=description, parameters=parameters,
            messages={cls.__name__: Ref(f"#/components/messages/{cls.__name__}") for cls in classes})
        operations[f"receive{channel_id[0].upper()}{channel_id[1:]}"] = Operation(
            action="receive", channel=Ref(f"#/channels/{channel_id}"), summary=f"Subscribe: {title.lower()}",
            messages=[Ref(f"#/channels/{channel_id}/messages/{cls.__name__}") for cls in classes])
    return AsyncApiDocument(
        asyncapi=ASYNCAPI_VERSION,
        info=Info(title="AeroVision events", version=DOCUMENT_VERSION, description=_DESCRIPTION),
        default_content_type=cloudevents.CONTENT_TYPE,
        servers={"embedded": Server(
            host="{host}", protocol="nats",
            description="The NATS server of the system: `aerovision up` prints its URL (and writes it to "
                        "<data>/runtime.json); in a cluster, the one NATS_URL names.",
            variables={"host": ServerVariable(default="127.0.0.1:4222", description="host:port of the NATS server")})},
        channels=channels,
        operations=operations,
        components=Components(schemas=_event_schemas(), messages=messages),
    )


def document_json() -> bytes:
    """The document as the gateway serves it and docs/asyncapi.json holds it (indented, stable)."""
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"
