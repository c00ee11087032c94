"""CloudEvents 1.0 in binary mode: the headers every event on the stream carries.

The body stays the event's JSON; the CloudEvents attributes travel as ``ce-`` headers (the NATS
and HTTP bindings map them alike), so any CloudEvents SDK reads a message without knowing
AeroVision. ``ce-id`` is the ``Nats-Msg-Id``, which names the fact (``<uid>.finished``), so a
retried publish is the same CloudEvent too.
"""

from __future__ import annotations

from contracts.events import AnyEvent, message_id_of

SPEC_VERSION = "1.0"
# Every event comes from one producer as far as subscribers are concerned: the AeroVision event
# log. Which task (or tool, for settings) an event is about is its subject.
SOURCE = "/aerovision/events"
TYPE_PREFIX = "io.aerovision."
CONTENT_TYPE = "application/json"
MSG_ID_HEADER = "Nats-Msg-Id"


def cloudevent_type(tag: str, version: int) -> str:
    """``ce-type``: the event's type tag and its schema version, e.g. ``io.aerovision.task.finished.v1``
    (a breaking change of a type is a new version, hence a new CloudEvents type)."""
    return f"{TYPE_PREFIX}{tag}.v{version}"


def subject_of(event: AnyEvent) -> str:
    """``ce-subject``: the task the event is about, or for a settings change the tool."""
    return event.tool if event.__struct_config__.tag == "settings.changed" else event.uid


def headers_of(event: AnyEvent) -> dict[str, str]:
    """The headers to publish ``event`` with: its message id and its CloudEvents attributes.

    Every value is plain printable ASCII without spaces, quotes or percent signs (ids are uids and
    tags, times RFC 3339), so none needs the bindings' percent-encoding.
    """
    msg_id = message_id_of(event)
    return {
        MSG_ID_HEADER: msg_id,
        "ce-specversion": SPEC_VERSION,
        "ce-id": msg_id,
        "ce-type": cloudevent_type(event.__struct_config__.tag, event.schema_version),  # type: ignore[arg-type]
        "ce-source": SOURCE,
        "ce-subject": subject_of(event),
        "ce-time": event.occurred_at,
        "content-type": CONTENT_TYPE,
    }
