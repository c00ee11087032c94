"""Event versioning: the envelope is required, unknown and newer events are refused as such (so
consumers skip them), and an old version is upcast to the current shape by decode_event."""

from __future__ import annotations

import msgspec
import pytest

from contracts import events
from contracts.events import (
    ENVELOPE_FIELDS,
    SCHEMA_VERSIONS,
    UNREADABLE,
    UPCASTERS,
    UnknownEvent,
    WebhookAttempted,
    decode_event,
    encode_event,
)
from contracts.params import TemplateParams
from tests import events as ev

UID = "d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"


def _every_shape() -> list:
    return [
        ev.submitted(UID), ev.chain_submitted(UID), ev.done(UID), ev.failed(UID),
        events.TaskStarted(uid=UID, tool="template", worker="w"),
        events.TaskProgressed(uid=UID, tool="surface", stage="matching"),
        WebhookAttempted(uid=UID, tool="template", webhook_id="wh_1", endpoint="https://example.com",
                         attempt=1, delivered=True, status_code=200),
        events.settings_changed("template", TemplateParams(threshold=0.9)),
    ]


@pytest.mark.parametrize("event", _every_shape(), ids=lambda e: type(e).__name__)
def test_every_event_reads_back_as_itself(event):
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_an_event_without_an_envelope_field_is_unreadable(field):
    raw = msgspec.json.decode(encode_event(ev.done(UID)))
    del raw[field]
    with pytest.raises(UNREADABLE):
        decode_event(msgspec.json.encode(raw))


def test_unknown_fields_are_ignored():
    event = ev.done(UID)
    raw = msgspec.json.decode(encode_event(event))
    raw["added_by_a_newer_matcher"] = {"anything": [1, 2]}
    assert decode_event(msgspec.json.encode(raw)) == event


@pytest.mark.parametrize("change, says", [
    ({"type": "task.teleported"}, "unknown event type"),
    ({"schema_version": SCHEMA_VERSIONS["task.finished"] + 1}, "newer"),
    ({"tool": "hologram"}, "unknown event"),
])
def test_unknown_types_tools_and_newer_versions_are_refused_as_unknown(change, says):
    raw = {**msgspec.json.decode(encode_event(ev.done(UID))), **change}
    with pytest.raises(UnknownEvent, match=says):
        decode_event(msgspec.json.encode(raw))


def test_webhook_attempted_v1_is_upcast_and_loses_the_credentials_in_its_url():
    v1 = {"type": "webhook.attempted", "uid": UID, "tool": "template", "event_id": "e1",
          "occurred_at": "2025-01-02T03:04:05.678Z", "schema_version": 1, "webhook_id": "wh_1",
          "url": "https://user:pw@hooks.example.com:8443/services/T0/B0/SECRETTOKEN?sig=abc",
          "attempt": 2, "delivered": False, "status_code": 503, "error": None, "duration_ms": 12.5}
    event = decode_event(msgspec.json.encode(v1))
    assert event == WebhookAttempted(
        uid=UID, tool="template", event_id="e1", occurred_at="2025-01-02T03:04:05.678Z", webhook_id="wh_1",
        endpoint="https://hooks.example.com:8443", attempt=2, delivered=False, status_code=503, duration_ms=12.5)
    assert event.schema_version == SCHEMA_VERSIONS["webhook.attempted"] == 2
    assert b"SECRETTOKEN" not in encode_event(event) and b"pw" not in encode_event(event)


def test_every_older_version_of_every_type_has_an_upcaster():
    for tag, current in SCHEMA_VERSIONS.items():
        for version in range(1, current):
            assert (tag, version) in UPCASTERS, f"{tag} v{version} cannot be read"


def test_each_class_writes_its_types_current_version():
    for event in _every_shape():
        assert event.schema_version == SCHEMA_VERSIONS[event.__struct_config__.tag]


def test_subjects_and_message_ids_of_settings_changes():
    change = events.settings_changed("template", TemplateParams())
    assert events.subject_of(change) == f"aerovision.events.settings_changed.template.{change.uid}"
    assert events.message_id_of(change) == f"{change.uid}.settings"
