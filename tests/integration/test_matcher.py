"""The matcher against a real nats-server: a redelivered task that already ended is not rerun."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
from nats.js import api as js_api

from contracts import names
from infra import nats_layout
from services.matcher.settings import MatcherSettings
from services.matcher.worker import consumer_config, serve
from tests import events as ev
from tests.harness import wait_until


async def test_a_task_whose_ack_was_lost_after_it_ended_is_acknowledged_not_rerun(private_nats):
    server, client = private_nats
    js = client.jetstream()
    settings = MatcherSettings(nats_url=server.url, workers=1, ack_wait=1.0, name="test")
    uid = str(uuid.uuid4())
    for event in (ev.submitted(uid, [f"uploads/{uid}/gone.png"]),
                  ev.done(uid)):
        await nats_layout.publish_event(js, event)
    # The first delivery went to a matcher that finished the task, but its ack was lost.
    await nats_layout.declare_consumer(js, consumer_config(settings))
    first = await js.pull_subscribe_bind(durable=names.MATCHER_CONSUMER, stream=names.EVENT_STREAM)
    (taken,) = await first.fetch(1, timeout=5)
    assert taken.metadata.num_delivered == 1
    await first.unsubscribe()

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(settings, stop))
    async def acknowledged():  # redelivered after ack_wait, then acknowledged
        info = await js.consumer_info(names.EVENT_STREAM, names.MATCHER_CONSUMER)
        return (info.num_ack_pending == 0 and info.num_redelivered == 0
                and info.ack_floor.stream_seq >= taken.metadata.sequence.stream)

    try:
        await wait_until(acknowledged, timeout=20, what="the redelivery to be acknowledged")
    finally:
        stop.set()
        await runner
    events = await nats_layout.direct_get_batch(client, names.EVENT_STREAM, names.task_filter(uid), 100)
    assert [msgspec.json.decode(m.data)["type"] for m in events] == ["task.submitted", "task.finished"]


async def test_each_lane_has_its_consumer_and_an_older_one_is_narrowed(private_nats):
    server, client = private_nats
    js = client.jetstream()
    # What a matcher before the lanes declared: every submission through one consumer.
    await js.add_consumer(names.EVENT_STREAM, config=js_api.ConsumerConfig(
        durable_name=names.MATCHER_CONSUMER, filter_subject=names.kind_filter(names.KIND_SUBMITTED),
        ack_policy=js_api.AckPolicy.EXPLICIT))
    settings = MatcherSettings(nats_url=server.url, workers=1, slow_workers=1, name="lanes")
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(settings, stop))

    async def both_declared():
        try:
            return [await js.consumer_info(names.EVENT_STREAM, name) for name in names.MATCHER_CONSUMERS.values()]
        except Exception:
            return None

    try:
        fast, slow = await wait_until(both_declared, timeout=20, what="both lanes' consumers")
    finally:
        stop.set()
        await runner
    prefix = f"{names.EVENT_PREFIX}.{names.KIND_SUBMITTED}"
    assert sorted(fast.config.filter_subjects) == sorted(f"{prefix}.{tool}.*" for tool in ("template", "feature"))
    assert not fast.config.filter_subject
    # Every chain in the slow lane: the lane that fetches a task runs it.
    assert sorted(slow.config.filter_subjects) == sorted(f"{prefix}.{tool}.*" for tool in ("surface", "chain"))
