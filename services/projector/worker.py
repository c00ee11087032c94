"""The projector's NATS edge: consume every event in order, fold it into the view, store it.

The only writer of the task view and of the task-list index. Events are fetched in batches;
one KV write per task per batch; the batch is acknowledged (AckAll) only once everything is
stored, so a crash replays it, and replaying changes nothing (see ``apply``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import names, nats_layout
from contracts.events import AnyEvent, decode_event
from contracts.view import TaskView, view_decoder, view_encoder
from services.projector.apply import apply, index_entries
from services.projector.index import TaskIndex
from services.projector.settings import ProjectorSettings

log = structlog.get_logger("projector")


def consumer_config() -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=names.PROJECTOR_CONSUMER,
        filter_subject=names.EVENT_SUBJECTS,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.ALL,
        ack_wait=60.0,
        max_ack_pending=50_000,
    )


class Projector:
    def __init__(self, nc: NATS, views: KeyValue, index_kv: KeyValue, settings: ProjectorSettings) -> None:
        self._nc = nc
        self._views = views
        self._index_kv = index_kv
        self._settings = settings
        self._cache: OrderedDict[str, tuple[TaskView, int]] = OrderedDict()
        self._indexes: dict[str, TaskIndex] = {}

    async def run(self, stop: asyncio.Event) -> None:
        js = self._nc.jetstream()
        await nats_layout.declare_consumer(js, consumer_config())
        psub = await js.pull_subscribe_bind(durable=names.PROJECTOR_CONSUMER, stream=names.EVENT_STREAM)
        log.info("projector_started")
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(self._settings.batch, timeout=1.0)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                except nats.errors.ConnectionClosedError:
                    break
                await self._project_batch(msgs)
        finally:
            # Messages left in a pull subscription's queue would stall drain() for 30 s.
            await psub.unsubscribe()

    async def _project_batch(self, msgs: list) -> None:
        if not msgs:  # a late status reply to an earlier pull can yield an empty batch
            return
        by_uid: dict[str, list[tuple[AnyEvent, int]]] = defaultdict(list)
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            try:
                event = decode_event(msg.data)
            except msgspec.ValidationError as exc:
                log.warning("event_skipped", subject=msg.subject, seq=seq, reason=str(exc))
                continue
            by_uid[event.uid].append((event, seq))
        await nats_layout.retrying(lambda: self._project(by_uid), deadline=3600, what="projection")
        await msgs[-1].ack()
        log.debug("batch_projected", events=len(msgs), tasks=len(by_uid))

    async def _project(self, by_uid: dict[str, list[tuple[AnyEvent, int]]]) -> None:
        plans = await asyncio.gather(*(self._plan(uid, events) for uid, events in by_uid.items()))
        # The index first: a crash between the two writes replays the batch, and the index's own
        # tracking position (not the view) decides what is appended again.
        indexed: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for uid, (_, _, _, creation) in zip(by_uid, plans):
            if creation is not None:
                seq, event = creation
                for name in index_entries(event):
                    indexed[name].append((seq, uid))
        for name, entries in indexed.items():
            index = self._indexes.setdefault(name, TaskIndex(self._index_kv, name))
            await index.append(sorted(entries))
        await asyncio.gather(*(self._write(uid, *plan[:3], by_uid[uid]) for uid, plan in zip(by_uid, plans)))

    async def _load(self, uid: str) -> tuple[TaskView | None, int]:
        cached = self._cache.get(uid)
        if cached is not None:
            self._cache.move_to_end(uid)
            return cached
        try:
            entry = await self._views.get(uid)
        except KeyNotFoundError:
            return None, 0
        return view_decoder.decode(entry.value), entry.revision

    async def _plan(self, uid: str, events: list[tuple[AnyEvent, int]]):
        """(old view, revision, new view, the submission that created the task in this batch)."""
        view, rev = await self._load(uid)
        new, creation = view, None
        for event, seq in events:
            before = new
            new = apply(new, event, seq)
            if before is None and new is not None:
                creation = (seq, event)
        # A view that exists was indexed when it was created; a second submission of the same
        # uid (a retry past the duplicate window) is not a new task.
        if view is not None:
            creation = None
        return view, rev, new, creation

    async def _write(self, uid: str, view: TaskView | None, rev: int, new: TaskView | None,
                     events: list[tuple[AnyEvent, int]]) -> None:
        for _ in range(5):
            if new is view or new is None:
                return
            try:
                if rev:
                    rev = await self._views.update(uid, view_encoder.encode(new), last=rev)
                else:
                    rev = await self._views.create(uid, view_encoder.encode(new))
            except KeyWrongLastSequenceError:
                self._cache.pop(uid, None)  # written elsewhere since we read it: reload, re-apply
                view, rev, new, _ = await self._plan(uid, events)
                continue
            self._remember(uid, new, rev)
            return
        raise RuntimeError(f"task {uid}: view kept changing under us")

    def _remember(self, uid: str, view: TaskView, rev: int) -> None:
        self._cache[uid] = (view, rev)
        self._cache.move_to_end(uid)
        while len(self._cache) > self._settings.view_cache:
            self._cache.popitem(last=False)


async def rebuild(nc: NATS, settings: ProjectorSettings) -> None:
    """Drop the view and the index and replay the whole stream into them on the next start."""
    js = nc.jetstream()
    try:
        await js.delete_consumer(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
    except nats.js.errors.NotFoundError:
        pass
    for bucket in (names.TASK_VIEW_BUCKET, names.TASK_INDEX_BUCKET):
        try:
            await js.delete_key_value(bucket)
        except nats.js.errors.NotFoundError:
            pass
    log.info("projection_dropped", note="the next projector start replays the stream")


async def serve(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """Composition root of the projector: connect, declare, run until ``stop``, drain."""
    nc = await nats_layout.connect(settings.nats_url, "aerovision-projector")
    try:
        js = nc.jetstream()
        await nats_layout.declare_event_stream(js, settings.replicas)
        views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET, settings.replicas)
        index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET, settings.replicas)
        await Projector(nc, views, index_kv, settings).run(stop)
    finally:
        await nc.drain()
