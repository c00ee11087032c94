"""Replay: the log rebuilds the view exactly; a destroyed view is found out and switched back
while the projector runs (and with none running); the projector goes on afterwards."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from contracts import names
from contracts.events import StepCompleted, TaskStarted, settings_changed
from contracts.params import TemplateParams
from contracts.tools import STEP_RECORDS
from contracts.view import decode_view
from infra import nats_layout
from infra.buckets import read_bucket
from services.projector.replay import replay
from services.projector.settings import ProjectorSettings
from services.projector.switch import PROJECTION_BUCKETS, drop_candidates
from services.projector.worker import serve
from tests import events as ev
from tests.harness import wait_until


async def _history(js) -> list[str]:
    """A few tasks in every state, a chain with a step, a settings change."""
    uids = [str(uuid.uuid4()) for _ in range(5)]
    published = [ev.submitted(uid) for uid in uids]
    published += [TaskStarted(uid=uid, tool="template", worker="w") for uid in uids[:4]]
    published += [ev.done(uids[0]), ev.done(uids[1]), ev.failed(uids[2])]
    chain = str(uuid.uuid4())
    step = STEP_RECORDS["template"](step=1, params=TemplateParams(), status="done", found=True,
                                    result_data=ev.RESULT, result_files=[])
    published += [ev.chain_submitted(chain), TaskStarted(uid=chain, tool="chain", worker="w"),
                  StepCompleted(uid=chain, tool="chain", step=step),
                  settings_changed("template", TemplateParams(threshold=0.6))]
    for event in published:
        await nats_layout.publish_event(js, event)
    return uids + [chain]


async def _projected(js, uids: list[str], seq: int):
    try:
        views = await js.key_value(names.TASK_VIEW_BUCKET)
        info = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
        found = [await views.get(uid) for uid in uids]
    except (KeyNotFoundError, NotFoundError, BucketNotFoundError):
        return None
    return found if info.ack_floor.stream_seq >= seq else None


@pytest.fixture
async def running(private_nats):
    """A private server with a history, projected by a running projector."""
    server, client = private_nats
    js = client.jetstream()
    uids = await _history(js)
    end = (await js.stream_info(names.EVENT_STREAM)).state.last_seq
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))
    await wait_until(lambda: _projected(js, uids, end), what="the history to be projected")
    yield server, client, uids, stop, runner
    stop.set()
    await runner


async def _snapshot(js) -> dict[str, dict[str, bytes]]:
    return {bucket: await read_bucket(js, bucket) for bucket in PROJECTION_BUCKETS}


async def test_a_replay_reproduces_the_view_exactly(running):
    server, client, uids, _, _ = running
    settings = ProjectorSettings(nats_url=server.url, batch=4)  # several batches, as a long log has
    report = await replay(client, settings)
    assert report.differences == [] and not report.live_behind
    assert (report.events, report.tasks) == (16, 6)
    await drop_candidates(client.jetstream())


async def test_a_destroyed_view_is_found_out_and_switched_back_while_the_projector_runs(running):
    server, client, uids, _, _ = running
    js = client.jetstream()
    before = await _snapshot(js)
    views = await js.key_value(names.TASK_VIEW_BUCKET)
    index = await js.key_value(names.TASK_INDEX_BUCKET)
    # Destroyed: every view gone, the list's head and a status page gone, one view made up.
    for uid in uids:
        await views.delete(uid)
    await index.delete("all.head")
    await index.delete("all.status.done.bits.0")
    await views.put(str(uuid.uuid4()), before[names.TASK_VIEW_BUCKET][uids[0]])

    report = await replay(client, ProjectorSettings(nats_url=server.url))
    found = {(d.bucket, d.key, d.what) for d in report.differences}
    assert {(names.TASK_VIEW_BUCKET, uid, "missing_in_live") for uid in uids} <= found
    assert {(names.TASK_INDEX_BUCKET, "all.head", "missing_in_live"),
            (names.TASK_INDEX_BUCKET, "all.status.done.bits.0", "missing_in_live")} <= found
    assert sum(d.what == "missing_in_rebuilt" for d in report.differences) == 1  # the made-up one
    assert len(found) == len(uids) + 3

    switched = await replay(client, ProjectorSettings(nats_url=server.url), do_switch=True)
    assert switched.switch.by == "projector" and switched.switch.error is None
    assert (switched.switch.written, switched.switch.deleted) == (len(uids) + 2, 1)
    assert await _snapshot(js) == before  # exactly the view the log had built
    assert (await replay(client, ProjectorSettings(nats_url=server.url))).differences == []

    # The projector goes on with the switched view: a new task is listed after the others.
    late = str(uuid.uuid4())
    ack = await nats_layout.publish_event(js, ev.submitted(late))
    (view,) = await wait_until(lambda: _projected(js, [late], ack.seq), what="a task after the switch")
    assert decode_view(view.value).position == len(uids)
    await drop_candidates(js)


async def test_with_no_projector_running_replay_switches_itself_and_the_projector_goes_on_after(running):
    server, client, uids, stop, runner = running
    js = client.jetstream()
    stop.set()
    await runner
    views = await js.key_value(names.TASK_VIEW_BUCKET)
    before = await views.get(uids[1])
    await views.delete(uids[1])
    report = await replay(client, ProjectorSettings(nats_url=server.url), do_switch=True)
    assert [(d.key, d.what) for d in report.differences] == [(uids[1], "missing_in_live")]
    assert report.switch.by == "replay" and report.switch.written == 1
    assert (await views.get(uids[1])).value == before.value

    stop.clear()
    restarted = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))
    try:
        ack = await nats_layout.publish_event(js, ev.done(uids[3]))
        (view,) = await wait_until(lambda: _projected(js, [uids[3]], ack.seq), what="an event after the switch")
        assert decode_view(view.value).status == "done"
    finally:
        stop.set()
        await restarted
    await drop_candidates(js)
