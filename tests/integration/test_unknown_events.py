"""An unknown future event stops nothing: the projector and the notifier, against a real
nats-server, skip an event of an unknown type and one of a newer version with a log line and go
on with every event after them."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError
from structlog.testing import capture_logs

from contracts import names
from contracts.api import WebhookRecord
from contracts.events import SCHEMA_VERSIONS, encode_event
from contracts.view import decode_view
from infra import nats_layout
from services.notifier.settings import NotifierSettings
from services.notifier.worker import serve as serve_notifier
from services.projector.settings import ProjectorSettings
from services.projector.worker import serve as serve_projector
from tests import events as ev
from tests.harness import wait_until
from tests.receivers import ThreadedReceiver


async def _publish_strangers(js, uid: str, kind: str = "teleported") -> None:
    """A type from a newer system (on a ``kind`` subject), and a task.finished of a newer version."""
    teleported = {"type": "task.teleported", "uid": uid, "tool": "template", "event_id": "x1",
                  "occurred_at": "2030-01-01T00:00:00.000Z", "schema_version": 1, "to": "mars"}
    await js.publish(names.event_subject(kind, "template", uid), msgspec.json.encode(teleported))
    future = {**msgspec.json.decode(encode_event(ev.done(uid))),
              "schema_version": SCHEMA_VERSIONS["task.finished"] + 1, "verdict": {"new": "shape"}}
    await js.publish(names.event_subject(names.KIND_FINISHED, "template", uid), msgspec.json.encode(future))


def _skips(logs: list[dict]) -> list[str]:
    return sorted(entry["reason"] for entry in logs if entry["event"] == "event_skipped")


async def test_the_projector_skips_unknown_and_newer_events_and_goes_on(private_nats):
    server, client = private_nats
    js = client.jetstream()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await nats_layout.publish_event(js, ev.submitted(first))
    await _publish_strangers(js, first)
    for event in (ev.submitted(second), ev.done(second), ev.done(first)):
        await nats_layout.publish_event(js, event)

    stop = asyncio.Event()
    with capture_logs() as logs:
        runner = asyncio.create_task(serve_projector(ProjectorSettings(nats_url=server.url), stop))
        views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)

        async def both_done():
            try:
                found = [decode_view((await views.get(uid)).value) for uid in (first, second)]
            except KeyNotFoundError:
                return None
            return found if all(v.status == "done" for v in found) else None

        try:
            done = await wait_until(both_done, what="both tasks to be projected")
        finally:
            stop.set()
            await runner
    assert [v.result_data for v in done] == [ev.RESULT, ev.RESULT]
    assert done[0].seq == 6  # its own TaskFinished, not the newer one at 3 it could not read
    assert _skips(logs) == ["task.finished version 2 is newer than 1", "unknown event type 'task.teleported'"]


class _Receiver(ThreadedReceiver):
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        super().__init__(self._respond, path="/hook")

    def _respond(self, headers, body: bytes) -> int:
        self.bodies.append(msgspec.json.decode(body))
        return 200


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


async def test_the_notifier_skips_unknown_and_newer_events_and_goes_on(private_nats, receiver):
    server, client = private_nats
    js = client.jetstream()
    webhooks = await nats_layout.open_kv(js, names.WEBHOOKS_BUCKET)
    hook = WebhookRecord(id="wh_test", url=receiver.url, created_at="2000-01-01T00:00:00.000Z")
    await webhooks.put(hook.id, msgspec.json.encode(hook))
    before, stranger, after = (str(uuid.uuid4()) for _ in range(3))
    await nats_layout.publish_event(js, ev.done(before))
    await _publish_strangers(js, stranger, kind=names.KIND_FINISHED)
    await nats_layout.publish_event(js, ev.failed(after))

    stop = asyncio.Event()
    with capture_logs() as logs:
        runner = asyncio.create_task(serve_notifier(NotifierSettings(nats_url=server.url), stop))
        try:
            async def two_notifications() -> bool:
                return len(receiver.bodies) >= 2

            await wait_until(two_notifications, what="two notifications")
            # Every finished event was handled: none waits for a redelivery.
            info = await wait_until(lambda: _settled(js), what="the notifier's consumer to settle")
        finally:
            stop.set()
            await runner
    assert sorted((b["uid"], b["status"]) for b in receiver.bodies) == sorted([(before, "done"), (after, "error")])
    assert info.num_ack_pending == 0 and info.num_redelivered == 0
    assert _skips(logs) == ["task.finished version 2 is newer than 1", "unknown event type 'task.teleported'"]


async def _settled(js):
    info = await js.consumer_info(names.EVENT_STREAM, names.NOTIFIER_CONSUMER)
    return info if info.num_pending == 0 and info.num_ack_pending == 0 else None
