"""Adopting a rebuilt view: ``aerovision replay`` projects the log into fresh buckets (the
candidate: ``<bucket>-replay``); switching makes the live buckets equal to it.

The live buckets keep their names, so the gateway (its reads and its KV watchers) and every
other reader go on unchanged and simply see the values that differed change. The projector
stays the only writer of the view: the switch runs inside it, between two batches, after it has
caught the candidate up to the event it has reached (see ``Projector._switch``).
"""

from __future__ import annotations

from typing import AsyncIterator, Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from contracts import names
from contracts.view import PROJECTION_FORMAT, PROJECTION_FORMAT_KEY
from infra import nats_layout
from infra.buckets import make_equal, read_bucket

# The buckets the projector writes, each with its KV history.
PROJECTION_BUCKETS: dict[str, int] = {names.TASK_VIEW_BUCKET: 1, names.TASK_INDEX_BUCKET: 1, names.SETTINGS_BUCKET: 10}


class SwitchRequest(msgspec.Struct, kw_only=True):
    last_seq: int  # the candidate holds every event up to this stream sequence


class SwitchResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    at_seq: int = 0  # the live view now holds every event up to here, as the candidate had them
    caught_up: int = 0  # events the candidate was brought forward by before the switch
    written: int = 0  # keys whose value differed, now the candidate's
    deleted: int = 0  # keys the candidate did not have
    by: Literal["projector", "replay", ""] = ""  # the running projector, or replay (none ran)
    error: str | None = None


switch_request = msgspec.json.Decoder(SwitchRequest)
switch_result = msgspec.json.Decoder(SwitchResult)


def candidate(bucket: str) -> str:
    """The name of a live bucket's rebuilt counterpart."""
    return bucket + names.REPLAY_SUFFIX


async def open_candidates(js: JetStreamContext, replicas: int, *, fresh: bool) -> dict[str, KeyValue]:
    """The candidate buckets by live name; ``fresh`` drops any left by an earlier replay first."""
    found = {}
    for bucket, history in PROJECTION_BUCKETS.items():
        if fresh:
            await nats_layout.drop_kv(js, candidate(bucket))
        found[bucket] = await nats_layout.open_kv(js, candidate(bucket), replicas, history=history)
    if fresh:
        await found[names.TASK_INDEX_BUCKET].put(PROJECTION_FORMAT_KEY, str(PROJECTION_FORMAT).encode())
    return found


async def drop_candidates(js: JetStreamContext) -> None:
    for bucket in PROJECTION_BUCKETS:
        await nats_layout.drop_kv(js, candidate(bucket))


async def copy_candidates(js: JetStreamContext, live: dict[str, KeyValue]) -> tuple[int, int]:
    """Make each live bucket hold what its candidate holds. (written, deleted)."""
    written = deleted = 0
    for bucket, target in live.items():
        wanted = await read_bucket(js, candidate(bucket))
        w, d = await make_equal(target, await read_bucket(js, bucket), wanted)
        written, deleted = written + w, deleted + d
    return written, deleted


async def events_between(nc: NATS, first: int, last: int, chunk: int = 1024) -> AsyncIterator[list[tuple[int, str, bytes]]]:
    """The events stored at sequences ``first`` to ``last``, as (seq, subject, data), in chunks."""
    start = first
    while start <= last:
        msgs = await nats_layout.retrying(lambda s=start: nats_layout.direct_get_batch(
            nc, names.EVENT_STREAM, names.EVENT_SUBJECTS, min(chunk, last - s + 1), start_seq=s), what="events")
        if not msgs:
            return
        found = [(int(m.headers["Nats-Sequence"]), m.headers.get("Nats-Subject", ""), m.data) for m in msgs]
        found = [event for event in found if event[0] <= last]
        if found:
            yield found
        start = int(msgs[-1].headers["Nats-Sequence"]) + 1
