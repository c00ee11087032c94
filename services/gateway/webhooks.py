"""The gateway's webhook storage: registrations, resend requests, and the attempts to read.

Registrations are mirrored in memory by one KV watcher for the life of the process: listing them
costs no NATS call (``kv.keys()`` made a JetStream consumer per call; ~990 calls exhausted the
server's limit). The gateway's own writes update the mirror at once; another gateway's arrive
through the watcher. A mirror miss falls back to one direct get, so an id created elsewhere a
moment ago is still found.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import names
from contracts.api import DeliveryOut, WebhookRecord
from contracts.events import now_iso, webhook_registered, webhook_removed
from contracts.webhooks import (
    ATTEMPTS_PAGE_SIZE,
    OutboxEntry,
    attempts_head_decoder,
    attempts_head_key,
    attempts_page_decoder,
    attempts_page_key,
    outbox_decoder,
    outbox_key,
)
from infra import nats_layout
from infra.kv_mirror import KvMirror

_records = msgspec.json.Decoder(WebhookRecord)
_encoder = msgspec.json.Encoder()


class WebhookStore:
    def __init__(self, js: JetStreamContext, replicas: int = 1, patience: float = 15.0) -> None:
        self._js = js
        self._replicas = replicas
        self._patience = patience

    async def _nats(self, op, what: str):
        return await nats_layout.retrying(op, deadline=self._patience, what=what)

    async def start(self) -> None:
        js, replicas = self._js, self._replicas
        self._kv: KeyValue = await nats_layout.open_kv(js, names.WEBHOOKS_BUCKET, replicas)
        self._outbox: KeyValue = await nats_layout.open_kv(js, names.WEBHOOK_OUTBOX_BUCKET, replicas)
        self._attempts: KeyValue = await nats_layout.open_kv(js, names.WEBHOOK_ATTEMPTS_BUCKET, replicas)
        self._hooks: KvMirror[WebhookRecord] = KvMirror(self._kv, _records, name=names.WEBHOOKS_BUCKET)
        await self._hooks.start()

    async def on_reconnect(self) -> None:
        await self._hooks.restart()

    async def close(self) -> None:
        await self._hooks.stop()

    # --- registrations --------------------------------------------------------------------

    def all(self) -> list[WebhookRecord]:
        return sorted(self._hooks.values.values(), key=lambda r: (r.created_at, r.id))

    async def get(self, webhook_id: str) -> WebhookRecord | None:
        """The registration (``webhook_id`` must be validated: it becomes a KV key)."""
        known = self._hooks.values.get(webhook_id)
        if known is not None:
            return known
        try:
            entry = await self._nats(lambda: self._kv.get(webhook_id), "webhooks")
        except KeyNotFoundError:
            return None
        return _records.decode(entry.value)

    async def add(self, url: str, secret: str | None) -> WebhookRecord:
        record = WebhookRecord(id=f"wh_{secrets.token_hex(8)}", url=url, secret=secret, created_at=now_iso())
        revision = await self._nats(lambda: self._kv.put(record.id, _encoder.encode(record)), "webhooks")
        self._hooks.remember(record.id, record, revision)
        # On the log for auditors: when, and where to (never the secret, nor the URL's path).
        registered = msgspec.structs.replace(webhook_registered(record.id, url, bool(secret)), occurred_at=record.created_at)
        await nats_layout.publish_event(self._js, registered, deadline=self._patience)
        return record

    async def delete(self, webhook_id: str) -> bool:
        """Remove a registration; False if there is none (``webhook_id`` must be validated)."""
        if await self.get(webhook_id) is None:
            return False
        await self._nats(lambda: self._kv.delete(webhook_id), "webhooks")
        self._hooks.forget(webhook_id)
        await nats_layout.publish_event(self._js, webhook_removed(webhook_id), deadline=self._patience)
        return True

    # --- deliveries ------------------------------------------------------------------------

    async def request_resend(self, webhook_id: str, uid: str, tool: str) -> None:
        """Ask the notifier for one more attempt now (an outbox entry it watches)."""
        key = outbox_key(webhook_id, uid)
        wanted = OutboxEntry(webhook_id=webhook_id, uid=uid, tool=tool, due_at=time.time(), resend=True)
        for _ in range(10):
            try:
                current = await self._nats(lambda: self._outbox.get(key), "outbox")
            except KeyNotFoundError:
                current = None
            try:
                if current is None:
                    await self._nats(lambda: self._outbox.create(key, _encoder.encode(wanted)), "outbox")
                else:
                    # Owed already: keep it owed, just now (the notifier's schedule goes on after).
                    pending = outbox_decoder.decode(current.value)
                    entry = msgspec.structs.replace(pending, due_at=wanted.due_at, resend=True)
                    await self._nats(lambda: self._outbox.update(key, _encoder.encode(entry), last=current.revision),
                                     "outbox")
                return
            except KeyWrongLastSequenceError:
                continue  # the notifier wrote it meanwhile: read again
        raise RuntimeError(f"resend of {key}: the outbox entry kept changing")

    async def attempts(self, webhook_id: str, offset: int, limit: int) -> tuple[int, list[DeliveryOut]]:
        """Total and one page of a webhook's attempts, newest first (the head and at most 3 pages)."""
        try:
            entry = await self._nats(lambda: self._attempts.get(attempts_head_key(webhook_id)), "attempts")
        except KeyNotFoundError:
            return 0, []
        head = attempts_head_decoder.decode(entry.value)
        total = head.count
        hi = total - offset  # ordinals [lo, hi), oldest = 0
        lo = max(0, hi - limit)
        if hi <= 0:
            return total, []
        pages = range(lo // ATTEMPTS_PAGE_SIZE, (hi - 1) // ATTEMPTS_PAGE_SIZE + 1)
        last = total // ATTEMPTS_PAGE_SIZE  # the partly filled page is the head's tail

        async def page(n: int) -> list[DeliveryOut]:
            if n == last:
                return head.tail
            stored = await self._nats(lambda: self._attempts.get(attempts_page_key(webhook_id, n)), "attempts")
            return attempts_page_decoder.decode(stored.value)

        records: list[DeliveryOut] = []
        for part in await asyncio.gather(*(page(n) for n in pages)):
            records.extend(part)
        first = pages[0] * ATTEMPTS_PAGE_SIZE
        return total, records[lo - first: hi - first][::-1]
