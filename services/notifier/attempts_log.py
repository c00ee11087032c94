"""Every delivery attempt, per webhook, in KV pages: the projection ``/deliveries`` is read from.

Built from the ``webhook.attempted`` events (they stay on the stream as the audit record) by a
consumer of its own, in stream order. Each webhook's head keeps the stream sequence of the last
event it holds, so a redelivered or replayed event is not listed twice. Pages are written once
full; the last, partly filled one lives in the head, so recording an attempt is one write.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import msgspec
import nats
import structlog
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import names
from contracts.api import DeliveryOut
from contracts.events import UNREADABLE, WebhookAttempted, decode_event
from contracts.webhooks import (
    ATTEMPTS_PAGE_SIZE,
    AttemptsHead,
    attempts_head_decoder,
    attempts_head_key,
    attempts_page_key,
)
from infra import nats_layout

log = structlog.get_logger("notifier")
_encoder = msgspec.json.Encoder()
BATCH = 100


def consumer_config() -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=names.NOTIFIER_ATTEMPTS_CONSUMER,
        filter_subject=names.kind_filter(names.KIND_WEBHOOK_ATTEMPTED),
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=BATCH,
    )


def record_of(event: WebhookAttempted) -> DeliveryOut:
    return DeliveryOut(uid=event.uid, attempt=event.attempt, delivered=event.delivered,
                       status_code=event.status_code, error=event.error, duration_ms=event.duration_ms,
                       at=event.started_at or event.occurred_at)


class AttemptsLog:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._heads: dict[str, tuple[AttemptsHead, int]] = {}

    async def _head(self, webhook_id: str) -> tuple[AttemptsHead, int]:
        if webhook_id not in self._heads:
            try:
                entry = await self._kv.get(attempts_head_key(webhook_id))
                self._heads[webhook_id] = (attempts_head_decoder.decode(entry.value), entry.revision)
            except KeyNotFoundError:
                self._heads[webhook_id] = (AttemptsHead(), 0)
        return self._heads[webhook_id]

    async def append(self, webhook_id: str, records: list[tuple[int, DeliveryOut]]) -> None:
        """Append (stream seq, record) pairs in stream order, skipping those already listed."""
        for _ in range(5):
            head, revision = await self._head(webhook_id)
            fresh = [record for seq, record in records if seq > head.last_seq]
            if not fresh:
                return
            tail, page = list(head.tail), head.count // ATTEMPTS_PAGE_SIZE
            for record in fresh:
                tail.append(record)
                if len(tail) == ATTEMPTS_PAGE_SIZE:
                    # A full page never changes again; readers find it once the head counts it.
                    await self._kv.put(attempts_page_key(webhook_id, page), _encoder.encode(tail))
                    page, tail = page + 1, []
            new = AttemptsHead(count=head.count + len(fresh), last_seq=records[-1][0], tail=tail)
            try:
                revision = await nats_layout.put_at(self._kv, attempts_head_key(webhook_id), _encoder.encode(new), revision)
            except KeyWrongLastSequenceError:
                self._heads.pop(webhook_id, None)  # someone else wrote: reload and redo
                continue
            self._heads[webhook_id] = (new, revision)
            return
        raise RuntimeError(f"attempts of {webhook_id}: could not append after 5 tries")

    async def apply(self, msgs: list) -> None:
        """Record a batch of events (in stream order), grouped per webhook, then ack them."""
        per_hook: dict[str, list[tuple[int, DeliveryOut]]] = defaultdict(list)
        for msg in msgs:
            try:
                event = decode_event(msg.data)
            except UNREADABLE as exc:  # a newer or unknown event: skipped, as every consumer does
                log.warning("event_skipped", subject=msg.subject, reason=str(exc))
                continue
            if isinstance(event, WebhookAttempted):
                per_hook[event.webhook_id].append((msg.metadata.sequence.stream, record_of(event)))
        for webhook_id, records in per_hook.items():
            await nats_layout.retrying(lambda w=webhook_id, r=records: self.append(w, r), what="attempts")
        for msg in msgs:
            await msg.ack()

    async def run(self, js, stop: asyncio.Event) -> None:
        await nats_layout.declare_consumer(js, consumer_config())
        psub = await js.pull_subscribe_bind(durable=names.NOTIFIER_ATTEMPTS_CONSUMER, stream=names.EVENT_STREAM)
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(BATCH, timeout=1.0)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                except nats.errors.ConnectionClosedError:
                    break
                try:
                    await self.apply(msgs)
                except Exception:
                    # Handed back: the batch comes again, and what was written already is skipped.
                    log.exception("attempts_not_recorded", count=len(msgs))
                    self._heads.clear()
                    for msg in msgs:
                        await msg.nak(delay=1.0)
        finally:
            await psub.unsubscribe()
