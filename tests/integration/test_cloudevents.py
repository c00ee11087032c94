"""Every event on the stream is a CloudEvent in binary mode: the CloudEvents SDK reads real
messages of a real nats-server without knowing AeroVision."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from contracts import names
from contracts.events import TaskStarted, settings_changed
from contracts.params import TemplateParams
from infra import nats_layout
from tests import events as ev


async def test_the_cloudevents_sdk_reads_every_event_of_a_task(private_nats):
    _, nc = private_nats
    js = nc.jetstream()
    uid = str(uuid.uuid4())
    published = [ev.submitted(uid), TaskStarted(uid=uid, tool="template", worker="w"), ev.done(uid)]
    for event in published:
        await nats_layout.publish_event(js, event)
    sub = await js.subscribe(names.task_filter(uid), ordered_consumer=True)
    try:
        msgs = [await sub.next_msg(timeout=5) for _ in published]
    finally:
        await sub.unsubscribe()

    for event, msg in zip(published, msgs):
        # The NATS binding maps attributes to headers exactly as the HTTP binding does.
        cloud = from_binary(HTTPMessage(headers=dict(msg.headers), body=msg.data), JSONFormat())
        tag = event.__struct_config__.tag
        assert cloud.get_specversion() == "1.0"
        assert cloud.get_id() == msg.headers["Nats-Msg-Id"]
        assert cloud.get_type() == f"io.aerovision.{tag}.v1"
        assert cloud.get_source() == "/aerovision/events"
        assert cloud.get_subject() == uid
        assert cloud.get_time() == dt.datetime.fromisoformat(event.occurred_at)
        assert cloud.get_datacontenttype() == "application/json"
        assert cloud.get_data() == msgspec.to_builtins(event)
    assert [m.headers["ce-id"] for m in msgs] == [f"{uid}.submitted", f"{uid}.started.1", f"{uid}.finished"]


async def test_a_settings_change_is_a_cloudevent_about_its_tool(private_nats):
    _, nc = private_nats
    js = nc.jetstream()
    change = settings_changed("template", TemplateParams(threshold=0.95))
    ack = await nats_layout.publish_event(js, change)
    msg = await js.get_msg(names.EVENT_STREAM, seq=ack.seq)
    cloud = from_binary(HTTPMessage(headers=dict(msg.headers), body=msg.data), JSONFormat())
    assert (cloud.get_type(), cloud.get_subject()) == ("io.aerovision.settings.changed.v1", "template")
    assert cloud.get_data()["params"]["threshold"] == 0.95
