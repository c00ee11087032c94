"""Finished tasks become deliveries: one state record and one outbox entry per (task, webhook).

The consumer only writes those and acks; no HTTP happens here, so a slow receiver never holds a
message, and each delivery then follows its own schedule. Creating the records is idempotent: a
redelivered or replayed event finds them and adds nothing (an ended delivery is not owed again).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from nats.aio.msg import Msg
from nats.js import api as js_api

from contracts import names
from contracts.events import UNREADABLE, TaskFinished, decode_event
from contracts.webhooks import OutboxEntry, outbox_key
from services.notifier.deliverer import Payloads
from services.notifier.directory import WebhookDirectory
from services.notifier.schedule import Delivery
from services.notifier.scheduler import Scheduler
from services.notifier.stores import DeliveryStates, Outbox, delivery_key

log = structlog.get_logger("notifier")


def consumer_config() -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=names.NOTIFIER_CONSUMER,
        filter_subject=names.kind_filter(names.KIND_FINISHED),
        # From the start: a task that ended before this consumer existed is still announced to
        # the webhooks registered before it ended (see ``fan_out``), and to no others.
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
        # A fan-out is a few KV writes: it fails only while the broker is away, and is retried.
        max_deliver=100,
        max_ack_pending=1000,
    )


class FanOut:
    def __init__(self, directory: WebhookDirectory, states: DeliveryStates, outbox: Outbox, payloads: Payloads,
                 scheduler: Scheduler) -> None:
        self._directory = directory
        self._states = states
        self._outbox = outbox
        self._payloads = payloads
        self._scheduler = scheduler

    async def handle(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
        except UNREADABLE as exc:  # a newer or unknown event: skipped, as every consumer does
            log.warning("event_skipped", subject=msg.subject, reason=str(exc))
            await msg.term()
            return
        if not isinstance(event, TaskFinished):
            await msg.ack()
            return
        try:
            owed = await self.fan_out(event)
        except Exception:
            log.exception("fan_out_failed", uid=event.uid)
            await msg.nak(delay=5)
            return
        await msg.ack()
        if owed:
            log.info("deliveries_owed", uid=event.uid, webhooks=owed)

    async def fan_out(self, event: TaskFinished) -> int:
        """Record a delivery to each webhook registered before the task ended; how many are new."""
        hooks = self._directory.registered_before(event.occurred_at)
        if not hooks:
            return 0
        self._payloads.remember(event)  # serialised once for all its webhooks, and only if one is owed
        owed = await asyncio.gather(*(self._owe(event, hook.id, time.time()) for hook in hooks))
        return sum(owed)

    async def _owe(self, event: TaskFinished, webhook_id: str, now: float) -> bool:
        state_key = delivery_key(event.uid, webhook_id)
        if await self._states.create(state_key, Delivery()) is None:
            state, _ = await self._states.get(state_key)
            if state is None or state.ended:
                return False  # seen before, and ended: never owed again
        # Owed (new, or created by a fan-out that stopped before its outbox entry).
        entry = OutboxEntry(webhook_id=webhook_id, uid=event.uid, tool=event.tool, due_at=now)
        key = outbox_key(webhook_id, event.uid)
        revision = await self._outbox.create(key, entry)
        if revision is None:
            return False
        self._scheduler.owed(key, entry, revision)  # at once, not when the watcher brings it
        return True
