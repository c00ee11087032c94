"""The projector's NATS edge: consume every event in order, fold it into the view, store it.

The only writer of the task view and of the task-list index. The server pushes events in stream
order (at most ``max_ack_pending`` unacknowledged); whatever has arrived is projected as one batch,
one KV write per task per batch, and acknowledged (AckAll) only once everything is stored, so a
crash replays it, and replaying changes nothing (see ``apply``). Stream sequences are contiguous:
a gap before a batch (a delivery lost in a reconnect) is read from the stream before the AckAll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import names
from contracts.events import UNREADABLE, AnyEvent, SettingsChanged, WebhookRegistered, WebhookRemoved, decode_event
from contracts.view import (
    INDEX_ALL,
    PROJECTION_FORMAT,
    PROJECTION_FORMAT_KEY,
    TaskView,
    decode_view,
    index_head_key,
    view_encoder,
)
from infra import nats_layout
from infra.lru import Lru
from services.projector.apply import apply, index_entries
from services.projector.defaults import DefaultsProjection, record_legacy
from services.projector.index import TaskIndex
from services.projector.settings import ProjectorSettings
from services.projector.status_index import FLUSH_INTERVAL, Move, StatusIndex
from services.projector.switch import SwitchResult, copy_candidates, events_between, open_candidates, switch_request

log = structlog.get_logger("projector")

# How long a stopping projector retries its last status flush before leaving it to its successor.
STOP_FLUSH_DEADLINE = 5.0


def consumer_config(start_seq: int = 0) -> js_api.ConsumerConfig:
    by_seq = start_seq > 0
    return js_api.ConsumerConfig(
        durable_name=names.PROJECTOR_CONSUMER,
        deliver_subject=names.PROJECTOR_DELIVER_SUBJECT,
        filter_subject=names.EVENT_SUBJECTS,
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE if by_seq else js_api.DeliverPolicy.ALL,
        opt_start_seq=start_seq if by_seq else None,
        ack_policy=js_api.AckPolicy.ALL,
        ack_wait=60.0,
        # In flight, unacknowledged: the server stops pushing beyond it (the backpressure).
        max_ack_pending=4096,
    )


class Projector:
    def __init__(self, nc: NATS, views: KeyValue, index_kv: KeyValue, settings: ProjectorSettings,
                 defaults_kv: KeyValue | None = None, *, fresh: bool = False) -> None:
        self._nc = nc
        self._views = views
        self._index_kv = index_kv
        self._settings = settings
        # The tool defaults (settings bucket); opened by ``run`` when not given.
        self._defaults_kv = defaults_kv
        self._defaults = DefaultsProjection(defaults_kv) if defaults_kv is not None else None
        # Projecting into empty buckets (a replay): a view this projector has not written does
        # not exist, so it is not looked up (100,000 lookups that all miss).
        self._fresh = fresh
        self._written: set[str] = set()
        self._switches: asyncio.Queue = asyncio.Queue()  # replay's requests to adopt a rebuilt view
        self._cache: Lru[str, tuple[TaskView, int]] = Lru(settings.view_cache)
        self._indexes: dict[str, TaskIndex] = {}
        self._status = StatusIndex(index_kv)
        self._next_seq = 0  # the stream sequence after the last event projected in order
        # The newest delivered message, acknowledged (with all before it) once the status index
        # holds its batch too: a crash before that redelivers the batch, and the flush is redone.
        self._unacked: Msg | None = None
        self._last_flush = float("-inf")

    async def run(self, stop: asyncio.Event) -> None:
        js = self._nc.jetstream()
        if self._defaults is None:
            self._defaults_kv = await nats_layout.open_kv(js, names.SETTINGS_BUCKET, self._settings.replicas, history=10)
            self._defaults = DefaultsProjection(self._defaults_kv)
            await record_legacy(js, self._defaults_kv)
        config, info = await self._declare(js)
        # Everything after the ack floor may be unprojected, even at floor 0: a projector killed
        # before its first ack leaves events delivered but unacknowledged, which the server only
        # redelivers after ack_wait, while newer ones arrive at once. Applied first, a newer one
        # (a redelivered task's second TaskStarted) would hide the older TaskFinished for ever.
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        self._next_seq = max(floor + 1, info.config.opt_start_seq or 1)
        # Those delivered to a dead projector come back only after ack_wait (60 s): project them
        # now, from the stream (at most max_ack_pending events); their redelivery changes nothing.
        delivered = info.delivered.stream_seq if info.delivered else 0
        if delivered >= self._next_seq:
            events = await self._read_range(self._next_seq, delivered + 1)
            for i in range(0, len(events), self._settings.batch):
                await self.apply_events(events[i:i + self._settings.batch])
            self._next_seq = max(self._next_seq, delivered + 1)
        inbox: asyncio.Queue = asyncio.Queue()

        async def deliver(msg) -> None:
            inbox.put_nowait(msg)

        sub = await js.subscribe_bind(names.EVENT_STREAM, config, names.PROJECTOR_CONSUMER,
                                      cb=deliver, manual_ack=True)
        control = await self._nc.subscribe(names.PROJECTOR_SWITCH_SUBJECT, cb=self._switches.put)
        log.info("projector_started", next_seq=self._next_seq)
        quiet_since = asyncio.get_running_loop().time()
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                # Between batches the view is consistent: the moment to adopt a rebuilt one.
                while not self._switches.empty():
                    await self._flush()
                    await self._switch(self._switches.get_nowait())
                due = self._flush_due()
                try:
                    first = await asyncio.wait_for(inbox.get(), timeout=1.0 if due is None else max(0.0, due - loop.time()))
                except asyncio.TimeoutError:
                    if due is not None:
                        await self._flush()
                        continue
                    now = asyncio.get_running_loop().time()
                    if now - quiet_since > 10.0:  # quiet: make sure the consumer still exists
                        quiet_since = now
                        await self._check_consumer(js)
                    continue
                msgs = [first]
                while len(msgs) < self._settings.batch and not inbox.empty():
                    msgs.append(inbox.get_nowait())
                await self._project_batch(msgs)
                due = self._flush_due()
                if due is not None and loop.time() >= due:
                    await self._flush()
                quiet_since = asyncio.get_running_loop().time()
            try:
                await self._flush(deadline=STOP_FLUSH_DEADLINE)
            except nats_layout.BROKER_UNAVAILABLE as exc:
                # Stopping must not wait on a broker that is gone: the events stay unacknowledged,
                # and the next projector projects them again (projection is idempotent).
                log.warning("projector_final_flush_skipped", error=type(exc).__name__)
        finally:
            await control.unsubscribe()
            await sub.unsubscribe()

    def _flush_due(self) -> float | None:
        """When the status notes and the acknowledgement are next written (None: nothing waits).
        Right away after a quiet spell, so an idle system's lists follow within milliseconds."""
        if self._unacked is None and not self._status.pending:
            return None
        return self._last_flush + FLUSH_INTERVAL

    async def _flush(self, deadline: float = 3600) -> None:
        if self._status.pending:
            await nats_layout.retrying(self._status.flush, deadline=deadline, what="status index")
        self._last_flush = asyncio.get_running_loop().time()
        if self._unacked is not None:
            msg, self._unacked = self._unacked, None
            await msg.ack()

    async def _switch(self, request: Msg) -> None:
        """Adopt the view ``aerovision replay`` rebuilt: catch it up to where this projector is,
        make the live buckets equal to it (only what differs is written), forget every cache."""
        js = self._nc.jetstream()
        try:
            asked = switch_request.decode(request.data)
            at_seq = self._next_seq - 1
            caught_up = await catch_up(self._nc, self._settings, asked.last_seq, at_seq)
            live = {names.TASK_VIEW_BUCKET: self._views, names.TASK_INDEX_BUCKET: self._index_kv}
            if self._defaults_kv is not None:
                live[names.SETTINGS_BUCKET] = self._defaults_kv
            written, deleted = await copy_candidates(js, live)
        except Exception as exc:  # the answer says why; projecting goes on (the live view may be half copied)
            log.exception("switch_failed")
            await request.respond(msgspec.json.encode(SwitchResult(error=f"{type(exc).__name__}: {exc}")))
            return
        finally:
            # Whatever happened, cached views, pages and revisions may no longer be the stored ones.
            self._cache.clear()
            self._indexes.clear()
            self._status = StatusIndex(self._index_kv)
            self._defaults = DefaultsProjection(self._defaults_kv) if self._defaults_kv is not None else None
        result = SwitchResult(at_seq=at_seq, caught_up=caught_up, written=written, deleted=deleted, by="projector")
        log.warning("view_switched", at_seq=at_seq, caught_up=caught_up, written=written, deleted=deleted)
        await request.respond(msgspec.json.encode(result))

    async def _check_consumer(self, js) -> None:
        """A deleted consumer (``--rebuild`` run elsewhere) pushes nothing: end, to be restarted."""
        try:
            await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
        except nats.js.errors.NotFoundError:
            raise RuntimeError("the projector's consumer was deleted; restart to declare it anew") from None
        except nats_layout.BROKER_UNAVAILABLE:
            pass  # the broker is away: the connection's reconnect handles it

    async def _declare(self, js) -> tuple[js_api.ConsumerConfig, js_api.ConsumerInfo]:
        """Our consumer (its config and state); one left by an older projector is replaced where
        it had got to."""
        start = 0
        for legacy in names.LEGACY_PROJECTOR_CONSUMERS:
            try:
                old = await js.consumer_info(names.EVENT_STREAM, legacy)
            except nats.js.errors.NotFoundError:
                continue
            start = max(start, (old.ack_floor.stream_seq if old.ack_floor else 0) + 1)
        try:
            existing = await js.consumer_info(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
            # Exists: where it starts no longer matters, but a consumer's start cannot be updated.
            config = consumer_config(existing.config.opt_start_seq or 0)
        except nats.js.errors.NotFoundError:
            config = consumer_config(start)
        info = await nats_layout.declare_consumer(js, config)
        for legacy in names.LEGACY_PROJECTOR_CONSUMERS:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(names.EVENT_STREAM, legacy)
        return config, info

    async def _project_batch(self, msgs: list) -> None:
        events = [(msg.metadata.sequence.stream, msg.subject, msg.data) for msg in msgs]
        first = min(seq for seq, _, _ in events)
        if self._next_seq and first > self._next_seq:
            # A delivery lost in transit (a reconnect): the AckAll below would acknowledge it
            # unseen, so read the missing events from the stream itself first.
            events = await self._read_range(self._next_seq, first) + events
        await self.apply_events(events)
        self._unacked = msgs[-1]

    async def apply_events(self, events: list[tuple[int, str, bytes]]) -> None:
        """Fold (stream sequence, subject, data) events, in stream order, into views and index
        (a replay feeds them here)."""
        if not events:
            return
        by_uid: dict[str, list[tuple[AnyEvent, int]]] = defaultdict(list)
        changes: list[tuple[SettingsChanged, int]] = []
        for seq, subject, data in events:
            try:
                event = decode_event(data)
            except UNREADABLE as exc:
                log.warning("event_skipped", subject=subject, seq=seq, reason=str(exc))
                continue
            if isinstance(event, SettingsChanged):
                changes.append((event, seq))
            elif isinstance(event, (WebhookRegistered, WebhookRemoved)):
                continue  # about a webhook, not a task: the webhooks bucket is written by the gateway
            else:
                by_uid[event.uid].append((event, seq))
        await nats_layout.retrying(lambda: self._project(by_uid), deadline=3600, what="projection")
        if self._fresh:  # a replay: nothing to coalesce with, and no acknowledgement to hold back
            await nats_layout.retrying(self._status.flush, deadline=3600, what="status index")
        if changes and self._defaults is not None:
            await nats_layout.retrying(lambda: self._defaults.apply(changes), deadline=3600, what="defaults")
        self._next_seq = max(self._next_seq, max(seq for seq, _, _ in events) + 1)
        log.debug("batch_projected", events=len(events), tasks=len(by_uid))

    async def _read_range(self, start: int, end: int) -> list[tuple[int, str, bytes]]:
        found = [event async for chunk in events_between(self._nc, start, end - 1, chunk=256) for event in chunk]
        log.warning("events_recovered", first=found[0][0] if found else None, count=len(found))
        return found

    async def _project(self, by_uid: dict[str, list[tuple[AnyEvent, int]]]) -> None:
        plans = dict(zip(by_uid, await asyncio.gather(*(self._plan(uid, events) for uid, events in by_uid.items()))))
        # The indexes first: a crash before the views are written replays the batch, and the
        # list index's own tracking position (not the view) decides what is appended again.
        indexed: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for uid, (_, _, _, creation) in plans.items():
            if creation is not None:
                seq, event = creation
                for name in index_entries(event):
                    indexed[name].append((seq, uid))
        positions: dict[str, int] = {}
        for name, entries in indexed.items():
            appended = await self._index(name).append(sorted(entries))
            if name == INDEX_ALL:
                positions.update(appended)
        for uid, (view, rev, new, creation) in plans.items():
            if new is None or new is view or creation is None:
                continue
            position = positions.get(uid)
            if position is None:  # indexed by a batch that crashed before its views were written
                position = await self._index(INDEX_ALL).position_of(uid)
            plans[uid] = (view, rev, msgspec.structs.replace(new, position=-1 if position is None else position), creation)
        if self._fresh:
            await self._write_fresh({uid: plan[2] for uid, plan in plans.items() if plan[2] is not plan[0]})
        else:
            await asyncio.gather(*(self._write(uid, *plan[:3], by_uid[uid]) for uid, plan in plans.items()))
        # Then where each task of the batch is now, changed or not: a batch replayed after a crash
        # that came between its views and its status flush finds its views written already.
        for view, _, new, _ in plans.values():
            now = new if new is not None else view
            if now is not None and now.position >= 0:
                self._status.note(Move(now.position, now.tool, now.status))

    async def _write_fresh(self, views: dict[str, TaskView | None]) -> None:
        """A replay's writes: it is the only writer of its fresh buckets, so no compare-and-swap
        round trip per view; all of a batch's views are pipelined and their acks awaited together
        (measured: 40,000 events rebuilt in 4.6-5.1 s instead of 5.5-5.9 s)."""
        encoded = {uid: view_encoder.encode(view) for uid, view in views.items() if view is not None}
        # The bucket's own context: a new one per batch would subscribe a new reply inbox each time.
        acks = await nats_layout.put_pipelined(self._views._js, self._views, encoded.items(), 30)  # noqa: SLF001
        for uid, ack in zip(encoded, acks):
            self._remember(uid, views[uid], ack.seq)

    def _index(self, name: str) -> TaskIndex:
        return self._indexes.setdefault(name, TaskIndex(self._index_kv, name))

    async def _load(self, uid: str) -> tuple[TaskView | None, int]:
        cached = self._cache.get(uid)
        if cached is not None:
            self._cache.move_to_end(uid)
            return cached
        if self._fresh and uid not in self._written:
            return None, 0
        try:
            entry = await self._views.get(uid)
        except KeyNotFoundError:
            return None, 0
        return decode_view(entry.value), entry.revision

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
                rev = await nats_layout.put_at(self._views, uid, view_encoder.encode(new), rev)
            except KeyWrongLastSequenceError:
                self._cache.pop(uid, None)  # written elsewhere since we read it: reload, re-apply
                view, rev, new, _ = await self._plan(uid, events)
                continue
            self._remember(uid, new, rev)
            return
        raise RuntimeError(f"task {uid}: view kept changing under us")

    def _remember(self, uid: str, view: TaskView, rev: int) -> None:
        if self._fresh:
            self._written.add(uid)
        self._cache.remember(uid, (view, rev))


async def catch_up(nc: NATS, settings: ProjectorSettings, from_seq: int, to_seq: int) -> int:
    """Project the events after ``from_seq`` up to ``to_seq`` into the candidate buckets; how many."""
    if to_seq <= from_seq:
        return 0
    buckets = await open_candidates(nc.jetstream(), settings.replicas, fresh=False)
    projector = Projector(nc, buckets[names.TASK_VIEW_BUCKET], buckets[names.TASK_INDEX_BUCKET], settings,
                          defaults_kv=buckets[names.SETTINGS_BUCKET])
    count = 0
    async for events in events_between(nc, from_seq + 1, to_seq):
        await projector.apply_events(events)
        count += len(events)
    return count


async def rebuild(nc: NATS, settings: ProjectorSettings) -> None:
    """Drop the view and the index and replay the whole stream into them on the next start."""
    js = nc.jetstream()
    for consumer in (names.PROJECTOR_CONSUMER, *names.LEGACY_PROJECTOR_CONSUMERS):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(names.EVENT_STREAM, consumer)
    for bucket in (names.TASK_VIEW_BUCKET, names.TASK_INDEX_BUCKET):
        await nats_layout.drop_kv(js, bucket)
    log.info("projection_dropped", note="the next projector start replays the stream")


async def _open_projection(nc: NATS, settings: ProjectorSettings) -> tuple[KeyValue, KeyValue]:
    """The view and index buckets, rebuilt from the stream first if an older projector wrote
    them in a layout this one cannot continue (see ``contracts.view.PROJECTION_FORMAT``)."""
    js = nc.jetstream()
    views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET, settings.replicas)
    index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET, settings.replicas)
    try:
        found = int((await index_kv.get(PROJECTION_FORMAT_KEY)).value or b"0")
    except KeyNotFoundError:
        found = 0
    if found < PROJECTION_FORMAT:
        try:
            await index_kv.get(index_head_key(INDEX_ALL))
            stale = True
        except KeyNotFoundError:
            stale = False  # nothing projected yet: nothing to redo
        if stale:
            log.warning("projection_rebuilt", found_format=found, format=PROJECTION_FORMAT,
                        note="the view is replayed from the stream in the new layout")
            await rebuild(nc, settings)
            views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET, settings.replicas)
            index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET, settings.replicas)
        await index_kv.put(PROJECTION_FORMAT_KEY, str(PROJECTION_FORMAT).encode())
    return views, index_kv


async def serve(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """Composition root of the projector: connect, declare, run until ``stop``, drain."""
    async with nats_layout.session(settings.nats_url, "aerovision-projector", stop) as nc:
        await nats_layout.declare_event_stream(nc.jetstream(), settings.replicas)
        views, index_kv = await _open_projection(nc, settings)
        await Projector(nc, views, index_kv, settings).run(stop)
