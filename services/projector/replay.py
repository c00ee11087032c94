"""``aerovision replay``: rebuild the projection from the first event into fresh buckets, report
every difference from the live one, and optionally switch the live one to it.

The rebuild uses the projector's own fold (``Projector.apply_events``), so it is the same code
that built the live view, run over the whole log in order. A healthy system shows no difference.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS

from contracts import names
from contracts.view import is_empty_status_entry
from infra import nats_layout
from infra.buckets import read_bucket
from infra.tail import EventTail
from services.projector.settings import ProjectorSettings
from services.projector.switch import (
    PROJECTION_BUCKETS,
    SwitchRequest,
    SwitchResult,
    candidate,
    copy_candidates,
    open_candidates,
    switch_result,
)
from services.projector.worker import Projector, catch_up, consumer_config

log = structlog.get_logger("replay")


class Difference(msgspec.Struct, kw_only=True, omit_defaults=True):
    bucket: str
    key: str
    what: Literal["missing_in_live", "missing_in_rebuilt", "differs"]
    fields: list[str] = []  # for a task view: the fields that differ


class ReplayReport(msgspec.Struct, kw_only=True):
    events: int = 0  # events folded
    last_seq: int = 0  # the rebuilt view holds every event up to this stream sequence
    tasks: int = 0
    rebuild_s: float = 0.0
    compare_s: float = 0.0
    differences: list[Difference] = []
    live_behind: bool = False  # the live projector had not reached last_seq when compared
    switch: SwitchResult | None = None


async def stream_end(nc: NATS) -> int:
    info = await nc.jetstream().stream_info(names.EVENT_STREAM)
    return info.state.last_seq


async def rebuild(nc: NATS, settings: ProjectorSettings, until_seq: int) -> ReplayReport:
    """Fold every event up to ``until_seq``, from the first, into fresh candidate buckets."""
    js = nc.jetstream()
    started = time.perf_counter()
    buckets = await open_candidates(js, settings.replicas, fresh=True)
    projector = Projector(nc, buckets[names.TASK_VIEW_BUCKET], buckets[names.TASK_INDEX_BUCKET], settings,
                          defaults_kv=buckets[names.SETTINGS_BUCKET], fresh=True)
    events = 0
    async with EventTail(js, names.EVENT_SUBJECTS, after_seq=0) as tail:
        # Reading the next batch while the last one is folded: the two take about as long.
        ahead = asyncio.ensure_future(tail.batch(limit=settings.batch, timeout=5.0))
        while True:
            msgs = await ahead
            done = not msgs or msgs[-1].metadata.sequence.stream >= until_seq
            if not done:
                ahead = asyncio.ensure_future(tail.batch(limit=settings.batch, timeout=5.0))
            batch = [(m.metadata.sequence.stream, m.subject, m.data) for m in msgs
                     if m.metadata.sequence.stream <= until_seq]
            await projector.apply_events(batch)
            events += len(batch)
            if done:
                break
    tasks = len(projector._written)
    log.info("replay_rebuilt", events=events, tasks=tasks, last_seq=until_seq)
    return ReplayReport(events=events, last_seq=until_seq, tasks=tasks,
                        rebuild_s=round(time.perf_counter() - started, 2))


def _view_fields(live: bytes, rebuilt: bytes) -> list[str]:
    try:
        a, b = msgspec.json.decode(live), msgspec.json.decode(rebuilt)
    except msgspec.DecodeError:
        return []
    if not isinstance(a, dict) or not isinstance(b, dict):
        return []
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def differences(bucket: str, live: dict[str, bytes], rebuilt: dict[str, bytes]) -> list[Difference]:
    """Every key whose value is not the same in both (pure). Status pages that say nothing count
    as absent: the live projector clears pages a task passed through between two batches, while a
    replay that folds its whole life in one batch never writes them."""
    if bucket == names.TASK_INDEX_BUCKET:
        live = {k: v for k, v in live.items() if not is_empty_status_entry(k, v)}
        rebuilt = {k: v for k, v in rebuilt.items() if not is_empty_status_entry(k, v)}
    found = []
    for key in sorted(live.keys() | rebuilt.keys()):
        if key not in live:
            found.append(Difference(bucket=bucket, key=key, what="missing_in_live"))
        elif key not in rebuilt:
            found.append(Difference(bucket=bucket, key=key, what="missing_in_rebuilt"))
        elif live[key] != rebuilt[key]:
            fields = _view_fields(live[key], rebuilt[key]) if bucket == names.TASK_VIEW_BUCKET else []
            found.append(Difference(bucket=bucket, key=key, what="differs", fields=fields))
    return found


async def live_reached(nc: NATS, seq: int, timeout: float) -> bool:
    """Wait until the live projector has projected every event up to ``seq`` (False: it has not)."""
    js = nc.jetstream()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            info = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
            if (info.ack_floor.stream_seq if info.ack_floor else 0) >= seq:
                return True
        except nats.js.errors.NotFoundError:
            pass  # no projector has run: the live view holds what it holds
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)


async def compare(nc: NATS) -> list[Difference]:
    """Every difference between the live buckets and their candidates."""
    js = nc.jetstream()
    found = []
    for bucket in PROJECTION_BUCKETS:
        live, rebuilt = await asyncio.gather(read_bucket(js, bucket), read_bucket(js, candidate(bucket)))
        found += differences(bucket, live, rebuilt)
    return found


async def switch(nc: NATS, settings: ProjectorSettings, last_seq: int, timeout: float = 600.0) -> SwitchResult:
    """Make the live view the candidate: the running projector does it between two batches; with
    no projector running, this does it, and the projector's consumer then starts after ``last_seq``."""
    request = msgspec.json.encode(SwitchRequest(last_seq=last_seq))
    try:
        reply = await nc.request(names.PROJECTOR_SWITCH_SUBJECT, request, timeout=timeout)
        return switch_result.decode(reply.data)
    except nats.errors.NoRespondersError:
        pass
    js = nc.jetstream()
    end = await stream_end(nc)
    caught_up = await catch_up(nc, settings, last_seq, end)
    live = {bucket: await nats_layout.open_kv(js, bucket, settings.replicas, history=history)
            for bucket, history in PROJECTION_BUCKETS.items()}
    written, deleted = await copy_candidates(js, live)
    # A projector started later goes on after what the live view now holds.
    try:
        await js.delete_consumer(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
    except nats.js.errors.NotFoundError:
        pass
    await nats_layout.declare_consumer(js, consumer_config(end + 1))
    return SwitchResult(at_seq=end, caught_up=caught_up, written=written, deleted=deleted, by="replay")


async def replay(nc: NATS, settings: ProjectorSettings, *, do_switch: bool = False,
                 live_timeout: float = 60.0) -> ReplayReport:
    """Rebuild, compare with the live view once it has reached the same event, and switch if asked."""
    until = await stream_end(nc)
    report = await rebuild(nc, settings, until)
    report.live_behind = not await live_reached(nc, until, live_timeout)
    started = time.perf_counter()
    report.differences = await compare(nc)
    report.compare_s = round(time.perf_counter() - started, 2)
    if do_switch:
        report.switch = await switch(nc, settings, until)
    return report
