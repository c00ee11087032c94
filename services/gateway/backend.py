"""The gateway's NATS edge: everything the HTTP handlers read or write goes through here.

It publishes ``TaskSubmitted`` and stores files; it reads the task view, the index, settings
and webhooks. It never writes the task view (the projector does).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import names
from contracts.defaults import decode_defaults
from contracts.events import TaskSubmitted, decode_event, settings_changed, submitted
from contracts.tools import SETTINGS_TOOLS, TOOLS
from contracts.view import queued_view, view_encoder
from infra import nats_layout
from infra.objects import FileStore
from infra.retention import human
from infra.spool import LocalSpool
from infra.tail import EventTail
from services.gateway import listing
from services.gateway.budget import BodyBudget
from services.gateway.event_streams import StreamSlots
from services.gateway.imageinfo import sniff_image
from services.gateway.settings import GatewaySettings
from services.gateway.thumbnails import make_thumbnail, placeholder
from services.gateway.viewcache import ViewCache

log = structlog.get_logger("gateway")


class _ListedFiles(msgspec.Struct):
    input_files: list[str] = []
    thumbnails: list[str] = []
    result_files: list[str] = []


_listed_files = msgspec.json.Decoder(_ListedFiles)


class Backend:
    def __init__(self, nc: NATS, settings: GatewaySettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self.files = FileStore(nc, LocalSpool.optional(settings.spool_dir, settings.spool_bytes))
        self.cache = ViewCache(settings.view_cache, settings.view_cache_ttl)
        self._watch = None
        self._settings_watch = None
        # Tool defaults, kept current by a KV watcher: a submission reads them from memory.
        self._defaults: dict[str, tuple[int, msgspec.Struct]] = {}
        self._thumbnail_slot = asyncio.Semaphore(1)
        self.body_budget = BodyBudget(settings.body_budget_bytes)
        self.event_streams = StreamSlots(settings.max_event_streams)

    async def _nats(self, op, what: str):
        """A NATS call that rides out a broker restart or leader election (then 503 if it can't)."""
        return await nats_layout.retrying(op, deadline=self._settings.broker_patience, what=what)

    async def start(self) -> None:
        js, replicas = self._js, self._settings.replicas
        # The gateway is the one service that applies the retention (the others leave it as found).
        await nats_layout.declare_event_stream(js, replicas, self._settings.retention)
        await nats_layout.declare_files_bucket(js, replicas, self._settings.retention.files_ttl)
        self._views = await nats_layout.open_kv(js, names.TASK_VIEW_BUCKET, replicas)
        self._index = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET, replicas)
        self._tool_settings = await nats_layout.open_kv(js, names.SETTINGS_BUCKET, replicas, history=10)
        await self._watch_views()
        await self._watch_settings()

    async def _watch_views(self) -> None:
        # Only new updates: the cache fills from reads, not from a replay of every task.
        prefix = f"$KV.{names.TASK_VIEW_BUCKET}."

        async def on_update(msg) -> None:
            uid = msg.subject[len(prefix):]
            if msg.headers and msg.headers.get("KV-Operation") in ("DEL", "PURGE"):
                self.cache.drop(uid)
            else:
                self.cache.put(uid, msg.data, msg.metadata.sequence.stream)

        self._watch = await self._js.subscribe(
            f"{prefix}>", cb=on_update, ordered_consumer=True,
            deliver_policy=js_api.DeliverPolicy.NEW, stream=f"KV_{names.TASK_VIEW_BUCKET}",
        )

    def _adopt_settings(self, tool: str, seq: int, params: msgspec.Struct | None) -> None:
        """Take a tool's defaults set at stream sequence ``seq`` unless newer ones are known
        (None: the key was deleted, which only matters while nothing newer is known)."""
        if tool not in SETTINGS_TOOLS or seq < self._defaults.get(tool, (0, None))[0]:
            return
        self._defaults[tool] = (seq, TOOLS[tool].params() if params is None else params)

    async def _watch_settings(self) -> None:
        # The bucket is the projection of settings.changed events; each value says which event
        # (its stream sequence) set it, so the newest change wins whichever path brought it here.
        prefix = f"$KV.{names.SETTINGS_BUCKET}."

        def adopt(tool: str, data: bytes | None) -> None:
            if tool not in SETTINGS_TOOLS:
                return
            if data is None:
                self._adopt_settings(tool, 0, None)
                return
            try:
                stored = decode_defaults(tool, data)
            except msgspec.ValidationError:
                log.warning("settings_unreadable", tool=tool)
                return
            self._adopt_settings(tool, stored.seq, stored.params)

        async def on_update(msg) -> None:
            deleted = bool(msg.headers) and msg.headers.get("KV-Operation") in ("DEL", "PURGE")
            adopt(msg.subject[len(prefix):], None if deleted else msg.data)

        self._settings_watch = await self._js.subscribe(
            f"{prefix}>", cb=on_update, ordered_consumer=True,
            deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT, stream=f"KV_{names.SETTINGS_BUCKET}",
        )
        # The watcher's first deliveries are asynchronous: read the current values before serving.
        for tool in SETTINGS_TOOLS:
            try:
                entry = await self._nats(lambda t=tool: self._tool_settings.get(t), "settings")
            except KeyNotFoundError:
                continue
            adopt(tool, entry.value)

    async def on_reconnect(self) -> None:
        """The watchers can stay silent for a while after a reconnect: re-read, and watch anew."""
        self.cache.expire_unfinished()
        old = (self._watch, self._settings_watch)
        self._watch = self._settings_watch = None
        for sub in old:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        try:
            await self._watch_views()
            await self._watch_settings()
        except Exception:
            log.exception("watch_restart_failed")

    async def close(self) -> None:
        for sub in (self._watch, self._settings_watch):
            if sub is not None:
                await sub.unsubscribe()

    def connected(self) -> bool:
        return self._nc.is_connected

    # --- tasks ---------------------------------------------------------------------------

    async def submit(self, tool: str, params: msgspec.Struct, uploads: list[tuple[str, bytes]], images: bool) -> bytes:
        """Store the uploads, publish TaskSubmitted; the task's queued view as JSON."""
        uid = str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(uid=uid)
        inputs = [names.upload_path(uid, name) for name, _ in uploads]
        await asyncio.gather(*(
            self._nats(lambda p=path, d=data: self.files.put(p, d, local_copy=True), "upload")
            for path, (_, data) in zip(inputs, uploads)
        ))
        event = submitted(
            tool, uid=uid, params=params, input_files=inputs,
            thumbnails=[names.thumbnail_path(uid, name) for name, _ in uploads] if images else [],
        )
        ack = await nats_layout.publish_event(self._js, event, deadline=self._settings.broker_patience)
        data = view_encoder.encode(queued_view(event, seq=ack.seq))
        # Answers reads of this task until the projector's view arrives (revision 0 loses to it).
        self.cache.put(uid, data, 0)
        log.info("task_submitted", tool=tool, seq=ack.seq)
        return data

    async def task(self, uid: str) -> bytes | None:
        """The task view JSON, or None for an unknown task."""
        cached = self.cache.get(uid)
        if cached is not None:
            return cached
        try:
            entry = await self._nats(lambda: self._views.get(uid), "view")
            self.cache.put(uid, entry.value, entry.revision)
            return entry.value
        except KeyNotFoundError:
            pass
        # Accepted by another gateway but not projected yet: answer from the event itself. One
        # literal subject per tool: the stream indexes those; a wildcard lookup would scan.
        for tool in TOOLS:
            subject = names.event_subject(names.KIND_SUBMITTED, tool, uid)
            try:
                msg = await self._nats(
                    lambda s=subject: self._js.get_msg(names.EVENT_STREAM, subject=s, direct=True), "event")
            except NotFoundError:
                continue
            event = decode_event(msg.data)
            if isinstance(event, TaskSubmitted):
                return view_encoder.encode(queued_view(event, seq=msg.seq))
        return None

    async def task_page(self, offset: int, limit: int, tool: str | None,
                        status: str | None = None) -> tuple[int, list[bytes]]:
        """Total and one page of task views, newest first, from the indexes (a few gets)."""
        if status is None:
            total, uids = await listing.page_of_tasks(self._index_value, offset, limit, tool)
        else:
            total, uids = await listing.page_in_status(self._index_value, offset, limit, status, tool)
        views = await asyncio.gather(*(self.task(uid) for uid in uids))
        return total, [v for v in views if v is not None]

    async def _index_value(self, key: str) -> bytes | None:
        try:
            return (await self._nats(lambda: self._index.get(key), "index")).value
        except KeyNotFoundError:
            return None

    async def task_events(self, uid: str) -> list[bytes]:
        msgs = await self._nats(lambda: nats_layout.direct_get_batch(
            self._nc, names.EVENT_STREAM, names.task_filter(uid), 10_000), "events")
        return [m.data for m in msgs]

    async def open_tail(self, subject: str, *, after_seq: int | None, new_only: bool) -> EventTail:
        """A reader of the events on ``subject`` (its consumer exists when this returns)."""
        tail = EventTail(self._js, subject, after_seq=after_seq, new_only=new_only)
        await self._nats(tail.open, "events")
        return tail

    # --- settings ------------------------------------------------------------------------

    def tool_settings(self, tool: str) -> msgspec.Struct:
        """The tool's current defaults (kept in memory by the settings watcher)."""
        known = self._defaults.get(tool)
        return known[1] if known is not None else TOOLS[tool].params()

    async def save_settings(self, tool: str, params: msgspec.Struct) -> None:
        """Record the change on the log; the projector writes the settings bucket from it."""
        change = settings_changed(tool, params)
        ack = await nats_layout.publish_event(self._js, change, deadline=self._settings.broker_patience)
        self._adopt_settings(tool, ack.seq, params)  # our next submission uses them at once
        log.info("settings_change_recorded", tool=tool, seq=ack.seq, change_id=change.uid)

    # --- files ---------------------------------------------------------------------------

    async def file_expired(self, path: str) -> str | None:
        """Why a file the store does not have is gone, if its task lists it and files have a time
        to live (None: it never existed, as far as anyone can tell)."""
        ttl = self._settings.retention.files_ttl
        parts = path.split("/")
        if ttl <= 0 or len(parts) < 3:
            return None
        view = await self.task(parts[1])
        if view is None:
            return None
        listed = _listed_files.decode(view)
        if path not in (*listed.input_files, *listed.thumbnails, *listed.result_files):
            return None
        return f"This file has expired: files are kept for {human(ttl)} (AEROVISION_FILES_TTL)"

    async def file(self, path: str) -> bytes | None:
        data = await self._nats(lambda: self.files.get(path), "file")
        if data is not None or not path.startswith("thumbnails/"):
            return data
        # Thumbnails are made on first request: submissions stay cheap, and most are never viewed.
        # One at a time, source read included (a 25 Mpx upload is tens of MB, its pixels 75 MB):
        # requests for the same one wait, then find it stored by the first.
        async with self._thumbnail_slot:
            data = await self._nats(lambda: self.files.get(path), "file")
            if data is not None:
                return data
            source = await self._nats(lambda: self.files.get("uploads/" + path[len("thumbnails/"):]), "file")
            if source is None:
                return None
            ext = "." + path.rsplit(".", 1)[-1]
            info = sniff_image(source)
            thumb = await asyncio.to_thread(
                make_thumbnail, source, ext, longest_side=max(info.width, info.height) if info else None)
            del source
            if thumb is None:
                # Listed, so it must answer: a stand-in picture (the task says why it is undecodable).
                thumb = placeholder(ext)
            await self._nats(lambda: self.files.put(path, thumb), "file")
        return thumb
