"""The projector against a real nats-server: duplicates and replays change nothing; rebuild works."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import names
from contracts.events import TaskStarted, encode_event, subject_of
from contracts.view import decode_view, head_decoder, index_head_key, view_encoder
from infra import nats_layout
from services.projector.apply import apply
from services.projector.settings import ProjectorSettings
from services.projector.worker import consumer_config, rebuild, serve
from tests import events as ev
from tests.harness import wait_until


async def _publish(js, event, msg_id: str | None = None):
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    return await js.publish(subject_of(event), encode_event(event), headers=headers)


async def test_replays_and_duplicates_change_nothing(nats_server, nc):
    js = nc.jetstream()
    settings = ProjectorSettings(nats_url=nats_server.url)
    uid = str(uuid.uuid4())
    submitted = ev.submitted(uid, ["uploads/x"], threshold=0.8)
    finished = ev.done(uid)
    for event in (submitted, TaskStarted(uid=uid, tool="template", worker="w"), finished):
        await _publish(js, event)
    # The same facts again, as a retried publisher past the duplicate window would send them.
    await _publish(js, TaskStarted(uid=uid, tool="template", worker="w", attempt=2))
    await _publish(js, ev.failed(uid, "late"))
    await _publish(js, submitted)

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(settings, stop))
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)

    async def view():
        try:
            return decode_view((await views.get(uid)).value)
        except KeyNotFoundError:
            return None

    async def settled():
        v = await view()
        try:
            info = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
        except NotFoundError:  # the projector has not declared its consumer yet
            return None
        return v if v and info.num_pending == 0 and info.num_ack_pending == 0 else None

    first = await wait_until(settled)
    assert first.status == "done" and first.result_data == ev.RESULT and first.attempts == 1
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
    again = await wait_until(settled)
    stop.set()
    await runner
    assert msgspec.structs.asdict(again) == msgspec.structs.asdict(first)
    assert head_decoder.decode((await index.get(index_head_key("all"))).value).count == count


async def test_events_lost_in_transit_are_read_from_the_stream_before_the_ack(nats_server, nc):
    """AckAll acknowledges everything before the message acked: a batch that arrives after a gap
    (deliveries lost in a reconnect) must not acknowledge the missing events unprojected."""
    from services.projector.worker import Projector

    js = nc.jetstream()
    uids = [str(uuid.uuid4()) for _ in range(3)]
    acks = [await _publish(js, ev.submitted(uid)) for uid in uids]
    acks.append(await _publish(js, ev.done(uids[0])))
    first = acks[0].seq
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)
    try:
        listed = head_decoder.decode((await index_kv.get(index_head_key("all"))).value).count
    except KeyNotFoundError:
        listed = 0
    # Real deliveries of the stream, of which only the last one reaches the projector.
    psub = await js.pull_subscribe(names.EVENT_SUBJECTS, durable="gap-test", stream=names.EVENT_STREAM,
                                   config=js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
                                                                opt_start_seq=first))
    delivered = await psub.fetch(4, timeout=5)
    assert [m.metadata.sequence.stream for m in delivered] == [a.seq for a in acks]
    projector = Projector(nc, views, index_kv, ProjectorSettings(nats_url=nats_server.url))
    projector._next_seq = first  # everything before was projected
    await projector._project_batch(delivered[-1:])
    for uid in uids:
        assert decode_view((await views.get(uid)).value).uid == uid
    assert decode_view((await views.get(uids[0])).value).status == "done"
    assert head_decoder.decode((await index_kv.get(index_head_key("all"))).value).count == listed + 3
    assert projector._next_seq == acks[-1].seq + 1


async def test_an_older_pull_consumer_is_replaced_where_it_had_got_to(private_nats):
    server, client = private_nats
    js = client.jetstream()
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    await _publish(js, ev.submitted(early))
    # An earlier projector's pull consumer, which had projected that first event.
    await js.add_consumer(names.EVENT_STREAM, js_api.ConsumerConfig(
        durable_name="projector", filter_subject=names.EVENT_SUBJECTS, ack_policy=js_api.AckPolicy.ALL))
    old = await js.pull_subscribe_bind(durable="projector", stream=names.EVENT_STREAM)
    (msg,) = await old.fetch(1, timeout=5)
    await msg.ack_sync()
    await old.unsubscribe()
    late_ack = await _publish(js, ev.submitted(late))

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)

    async def projected():
        try:
            return await views.get(late)
        except KeyNotFoundError:
            return None

    await wait_until(projected)
    stop.set()
    await runner
    with pytest.raises(KeyNotFoundError):
        await views.get(early)  # not replayed: the old consumer had acknowledged it
    with pytest.raises(NotFoundError):
        await js.consumer_info(names.EVENT_STREAM, "projector")
    info = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
    assert info.config.opt_start_seq == late_ack.seq



@pytest.mark.parametrize("started_again", [True, False])
async def test_a_projector_killed_before_its_first_ack_leaves_no_task_behind(private_nats, started_again):
    """Events delivered to a projector that died before acknowledging any come back only after
    ack_wait (60 s), newer ones at once. The newer must not be applied before them: a redelivered
    task's second TaskStarted would hide its TaskFinished, leaving it 'processing' for good. And
    with nothing newer, the view must not wait for the redelivery either."""
    server, client = private_nats
    js = client.jetstream()
    uid = str(uuid.uuid4())
    submitted = ev.submitted(uid)
    started = TaskStarted(uid=uid, tool="template", worker="w", attempt=1)
    acks = [await _publish(js, e) for e in (submitted, started)]
    await _publish(js, ev.done(uid))
    # The dead projector: all three delivered to it, none acknowledged, the view written as
    # far as the second (what its own apply made of them).
    await nats_layout.declare_consumer(js, consumer_config())
    taken = asyncio.Queue()
    sub = await client.subscribe(names.PROJECTOR_DELIVER_SUBJECT, cb=taken.put)
    for _ in range(3):
        await asyncio.wait_for(taken.get(), timeout=5)
    await sub.unsubscribe()
    view = apply(apply(None, submitted, acks[0].seq), started, acks[1].seq)
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    await views.create(uid, view_encoder.encode(view))
    if started_again:  # the matcher's ack was lost too: the task is redelivered and started again
        await _publish(js, TaskStarted(uid=uid, tool="template", worker="w", attempt=2))

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))

    async def ended():
        current = decode_view((await views.get(uid)).value)
        return current if current.status == "done" else None

    try:
        final = await wait_until(ended, timeout=10)  # well before the 60 s ack_wait
    finally:
        stop.set()
        await runner
    assert final.result_data == ev.RESULT


async def test_a_projection_in_an_older_layout_is_rebuilt_from_the_stream(private_nats):
    server, client = private_nats
    js = client.jetstream()
    uids = [str(uuid.uuid4()) for _ in range(3)]
    for uid in uids:
        await _publish(js, ev.submitted(uid))
    await _publish(js, ev.done(uids[0]))
    # What a projector before the status index left: views without positions, a list head, no format.
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)
    for seq, uid in enumerate(uids, start=1):
        await views.put(uid, view_encoder.encode(apply(None, ev.submitted(uid), seq)))
    await index.put(index_head_key("all"), msgspec.json.encode({"count": 3, "last_seq": 3, "tail": uids}))

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))

    async def rebuilt():
        try:
            index_now = await js.key_value(names.TASK_INDEX_BUCKET)
            views_now = await js.key_value(names.TASK_VIEW_BUCKET)
            found = [decode_view((await views_now.get(uid)).value) for uid in uids]
            head = (await index_now.get("all.status.done.head")).value
        except (KeyNotFoundError, NotFoundError):
            return None
        return (found, index_now) if all(v.position >= 0 for v in found) and head else None

    try:
        found, index_now = await wait_until(rebuilt, timeout=20, what="the projection to be rebuilt")
    finally:
        stop.set()
        await runner
    assert [v.position for v in found] == [0, 1, 2]
    assert [v.status for v in found] == ["done", "queued", "queued"]
    assert (await index_now.get("format")).value == b"2"


async def test_a_projector_stopping_while_nats_is_gone_leaves_its_last_flush_to_its_successor(private_nats):
    """The last status flush at stop is retried for STOP_FLUSH_DEADLINE, not for an hour: the
    events behind it stay unacknowledged and are projected again by the next projector."""
    import time

    from services.projector import worker
    from services.projector.status_index import Move

    server, client = private_nats
    js = client.jetstream()
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET)
    index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)
    projector = worker.Projector(client, views, index_kv, ProjectorSettings(nats_url=server.url))
    projector._status.note(Move(position=1, tool="template", status="done"))
    server.stop()
    began = time.monotonic()
    with pytest.raises(nats_layout.BROKER_UNAVAILABLE):
        await projector._flush(deadline=worker.STOP_FLUSH_DEADLINE)
    assert time.monotonic() - began < worker.STOP_FLUSH_DEADLINE + 3
    assert projector._status.pending == 1  # nothing pretended written
    server.start()  # the same port: the fixture's client reconnects and drains

    async def reconnected():
        return client.is_connected

    await wait_until(reconnected, timeout=10, what="the client's reconnect")
