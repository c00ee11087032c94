"""One due outbox entry turned into one attempt: claim it, POST, record it, reschedule or remove it.

Order matters for "never twice, never lost": the attempt number is claimed in the delivery's state
before the POST; the ``webhook.attempted`` event is published before the state records the outcome
(so the audit misses nothing); the outbox entry is rescheduled or removed last, by compare-and-swap,
so a resend the gateway asked for meanwhile survives.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager

import aiohttp
import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import names
from contracts.events import TaskFinished, WebhookAttempted, decode_event, endpoint_of, now_iso
from contracts.webhooks import OutboxEntry
from infra import nats_layout
from infra.lru import Lru
from services.notifier import http_attempt
from services.notifier.directory import WebhookDirectory
from services.notifier.schedule import Delivery, Outcome, after_attempt, claimed
from services.notifier.settings import NotifierSettings
from services.notifier.signing import headers_for, payload_for
from services.notifier.stores import DeliveryStates, Outbox, delivery_key

log = structlog.get_logger("notifier")
# The receiver has answered: its record waits out a broker outage this long rather than give up
# (giving up would make the next try a second POST of an attempt that may have succeeded).
RECORD_PATIENCE = 300.0


class Removed(msgspec.Struct, frozen=True):
    """The entry is gone: the delivery ended (or was cancelled); ``revision`` of the removal."""

    revision: int


class Scheduled(msgspec.Struct, frozen=True):
    """The entry as it now stands (rescheduled by us, or rewritten by someone else)."""

    entry: OutboxEntry
    revision: int


Change = Removed | Scheduled | None  # None: the entry vanished under us
Slot = AbstractAsyncContextManager[None]


class Payloads:
    """Bodies of recently finished tasks (every webhook of a task gets the same bytes); others are
    rebuilt from the task's first ``task.finished`` event, the one its view shows."""

    def __init__(self, js: JetStreamContext, size: int = 512) -> None:
        self._js = js
        self._bodies: Lru[str, bytes] = Lru(size)

    def remember(self, event: TaskFinished) -> bytes:
        body = payload_for(event)
        self._bodies.remember(event.uid, body)
        return body

    async def body(self, uid: str, tool: str) -> bytes | None:
        if (cached := self._bodies.get(uid)) is not None:
            return cached
        subject = names.event_subject(names.KIND_FINISHED, tool, uid)
        try:
            msg = await nats_layout.retrying(lambda: self._js.get_msg(
                names.EVENT_STREAM, seq=1, subject=subject, next=True, direct=True), what="finished event")
        except NotFoundError:
            return None
        # Through decode_event, as every consumer reads events: versions and upcasting included.
        event = decode_event(msg.data)
        return self.remember(event) if isinstance(event, TaskFinished) else None


class Deliverer:
    def __init__(self, js: JetStreamContext, directory: WebhookDirectory, states: DeliveryStates, outbox: Outbox,
                 payloads: Payloads, http: aiohttp.ClientSession, settings: NotifierSettings) -> None:
        self._js = js
        self._directory = directory
        self._states = states
        self._outbox = outbox
        self._payloads = payloads
        self._http = http
        self._settings = settings

    async def deliver(self, key: str, entry: OutboxEntry, revision: int, slot: Slot) -> Change:
        """Handle the outbox entry ``key`` read at ``revision`` (it is due). ``slot`` bounds the
        part that talks to the receiver (claim and POST): the bookkeeping after it holds no slot."""
        state_key = delivery_key(entry.uid, entry.webhook_id)
        state, state_rev = await self._states.get(state_key)
        if self._directory.get(entry.webhook_id) is None:
            return await self._cancel(key, revision, state_key, state, state_rev, entry)
        if state is not None and state.ended and not entry.resend:
            return await self._remove(key, revision)  # ended already (a stale entry): nothing to send
        one_off = entry.resend and (state is None or state.ended)
        async with slot:
            hook = self._directory.get(entry.webhook_id)
            if hook is None:  # deleted while this waited for its turn
                return await self._cancel(key, revision, state_key, state, state_rev, entry)
            attempt_state = claimed(state or Delivery())
            state_rev = await self._states.write(state_key, attempt_state, state_rev)
            started_at = now_iso()
            body = await self._payloads.body(entry.uid, entry.tool)
            if body is None:
                outcome, duration = Outcome(delivered=False, error="the task's result is no longer available"), 0.0
            else:
                outcome, duration = await http_attempt.post(
                    self._http, hook.url, body, headers_for(hook.secret, f"msg_{entry.uid}", int(time.time()), body),
                    timeout=self._settings.timeout, allow_private=self._settings.allow_private_targets)
        await nats_layout.publish_event(self._js, WebhookAttempted(
            uid=entry.uid, tool=entry.tool, webhook_id=hook.id, endpoint=endpoint_of(hook.url),
            attempt=attempt_state.attempts, delivered=outcome.delivered, status_code=outcome.status_code,
            error=outcome.error, duration_ms=duration, started_at=started_at,
        ), deadline=RECORD_PATIENCE)
        after, delay = after_attempt(attempt_state, outcome, one_off=one_off, schedule=self._settings.schedule)
        if body is None:
            after, delay = msgspec.structs.replace(after, gave_up=True), None
        await self._states.write(state_key, after, state_rev, ended=delay is None)
        log.info("webhook_attempted", webhook_id=hook.id, uid=entry.uid, attempt=attempt_state.attempts,
                 delivered=outcome.delivered, status_code=outcome.status_code, error=outcome.error,
                 duration_ms=duration, next_in=delay)
        if delay is None:
            return await self._remove(key, revision)
        later = msgspec.structs.replace(entry, due_at=time.time() + delay, resend=False)
        new_rev = await self._outbox.replace(key, later, revision)
        return Scheduled(later, new_rev) if new_rev is not None else await self._current(key)

    async def _cancel(self, key: str, revision: int, state_key: str, state: Delivery | None, state_rev: int,
                      entry: OutboxEntry) -> Change:
        """The webhook was deleted: what it was still owed is cancelled."""
        if state is not None and not state.ended:
            await self._states.write(state_key, msgspec.structs.replace(state, cancelled=True), state_rev, ended=True)
        log.info("webhook_delivery_cancelled", webhook_id=entry.webhook_id, uid=entry.uid)
        return await self._remove(key, revision)

    async def _remove(self, key: str, revision: int) -> Change:
        removed = await self._outbox.remove(key, revision)
        return Removed(removed) if removed is not None else await self._current(key)

    async def _current(self, key: str) -> Change:
        """Someone wrote the entry meanwhile (a resend): keep theirs, attempt it when it is due."""
        found = await self._outbox.get(key)
        return Scheduled(*found) if found is not None else None

