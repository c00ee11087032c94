"""The projector against a real nats-server: duplicates and replays change nothing; rebuild works."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import names, nats_layout
from contracts.events import TaskFinished, TaskStarted, TaskSubmitted, encode_event, subject_of
from contracts.view import head_decoder, index_head_key, view_decoder
from services.projector.settings import ProjectorSettings
from services.projector.worker import rebuild, serve


async def _publish(js, event, msg_id: str | None = None):
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    return await js.publish(subject_of(event), encode_event(event), headers=headers)


async def _until(check, timeout=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
async def nc(nats_server):
    client = await nats_layout.connect(nats_server.url, "test")
    await nats_layout.declare_event_stream(client.jetstream())
    yield client
    await client.drain()


async def test_replays_and_duplicates_change_nothing(nats_server, nc):
    js = nc.jetstream()
    settings = ProjectorSettings(nats_url=nats_server.url)
    uid = str(uuid.uuid4())
    submitted = TaskSubmitted(uid=uid, tool="template", params={"threshold": 0.8}, input_files=["uploads/x"])
    finished = TaskFinished(uid=uid, tool="template", status="done", result_data={"matches_found": 2})
    for event in (submitted, TaskStarted(uid=uid, tool="template", worker="w"), finished):
        await _publish(js, event)
    # The same facts again, as a retried publisher past the duplicate window would send them.
    await _publish(js, TaskStarted(uid=uid, tool="template", worker="w", attempt=2))
    await _publish(js, TaskFinished(uid=uid, tool="template", status="error", error="late"))
    await _publish(js, submitted)

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(settings, stop))
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)

    async def view():
        try:
            return view_decoder.decode((await views.get(uid)).value)
        except KeyNotFoundError:
            return None

    async def settled():
        v = await view()
        try:
            info = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
        except NotFoundError:  # the projector has not declared its consumer yet
            return None
        return v if v and info.num_pending == 0 and info.num_ack_pending == 0 else None

    first = await _until(settled)
    assert first.status == "done" and first.result_data == {"matches_found": 2} and first.attempts == 1
    count = head_decoder.decode((await index.get(index_head_key("all"))).value).count
    assert count == 1  # submitted twice, listed once

    # Rebuild: drop the projection, replay the whole stream into it, get the same answer.
    stop.set()
    await runner
    await rebuild(nc, settings)
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(settings, stop))
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)
    again = await _until(settled)
    stop.set()
    await runner
    assert msgspec.structs.asdict(again) == msgspec.structs.asdict(first)
    assert head_decoder.decode((await index.get(index_head_key("all"))).value).count == count
