"""The notifier's NATS edge: on every finished task, POST the signed payload to each webhook.

Each (task, webhook) delivery has its state in a KV bucket, so a redelivered event or a restart
sends nothing twice; a failed delivery is retried on the schedule by re-queueing the event with a
delay (``nak``), so retries survive restarts too. Every attempt is recorded as an event.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import names
from infra import nats_layout
from contracts.api import WebhookRecord
from contracts.events import UNREADABLE, TaskFinished, WebhookAttempted, decode_event, endpoint_of
from services.notifier.directory import WebhookDirectory
from services.notifier.settings import NotifierSettings
from services.notifier.signing import headers_for, payload_for, retry_delay

log = structlog.get_logger("notifier")


class Delivery(msgspec.Struct, kw_only=True):
    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False


_deliveries = msgspec.json.Decoder(Delivery)


def consumer_config(settings: NotifierSettings) -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=names.NOTIFIER_CONSUMER,
        filter_subject=names.kind_filter(names.KIND_FINISHED),
        # From the start: a task that ended before this consumer existed is still announced to
        # the webhooks registered before it ended (see ``_handle``), and to no others.
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=settings.timeout * 4,
        max_deliver=len(settings.schedule) + 3,
        max_ack_pending=1000,
    )


class Notifier:
    def __init__(self, nc: NATS, directory: WebhookDirectory, deliveries: KeyValue, http: aiohttp.ClientSession,
                 settings: NotifierSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._directory = directory
        self._deliveries = deliveries
        self._http = http
        self._settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        await nats_layout.declare_consumer(self._js, consumer_config(self._settings))
        psub = await self._js.pull_subscribe_bind(durable=names.NOTIFIER_CONSUMER, stream=names.EVENT_STREAM)
        log.info("notifier_started")
        await nats_layout.consume(psub, self._handle, concurrency=self._settings.concurrency, stop=stop,
                                  grace=self._settings.timeout + 1)

    async def _handle(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
        except UNREADABLE as exc:
            log.warning("event_skipped", subject=msg.subject, reason=str(exc))
            await msg.term()
            return
        if not isinstance(event, TaskFinished):
            await msg.ack()
            return
        with structlog.contextvars.bound_contextvars(uid=event.uid):
            try:
                body = payload_for(event)
                hooks = self._directory.registered_before(event.occurred_at)
                waits = await asyncio.gather(*(self._deliver(event, hook, body) for hook in hooks))
                pending = [w for w in waits if w is not None]
                if pending:
                    await msg.nak(delay=min(pending))
                else:
                    await msg.ack()
            except Exception:
                log.exception("notification_failed")
                await msg.nak(delay=5)

    async def _deliver(self, event: TaskFinished, hook: WebhookRecord, body: bytes) -> float | None:
        """One attempt unless done already; the delay before the next one, or None when finished."""
        key = f"{event.uid}.{hook.id}"
        try:
            entry = await self._deliveries.get(key)
            state, revision = _deliveries.decode(entry.value), entry.revision
        except KeyNotFoundError:
            state, revision = Delivery(), 0
        if state.delivered or state.gave_up:
            return None
        attempt = state.attempts + 1
        msg_id = f"msg_{event.uid}"
        started = time.perf_counter()
        status_code, error, wait_hint = None, None, None
        try:
            async with self._http.post(
                hook.url, data=body, allow_redirects=False,
                headers=headers_for(hook.secret, msg_id, int(time.time()), body),
            ) as response:
                status_code = response.status
                if response.status in (429, 503) and response.headers.get("Retry-After", "").isdigit():
                    wait_hint = float(response.headers["Retry-After"])
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}".strip(": ")
        delivered = status_code is not None and 200 <= status_code < 300
        next_wait = None if delivered or status_code == 410 else retry_delay(state.attempts, self._settings.schedule)
        if next_wait is not None and wait_hint is not None:
            next_wait = max(next_wait, wait_hint)
        new = Delivery(attempts=attempt, delivered=delivered, gave_up=not delivered and next_wait is None)
        if revision:
            await self._deliveries.update(key, msgspec.json.encode(new), last=revision)
        else:
            await self._deliveries.create(key, msgspec.json.encode(new))
        attempted = WebhookAttempted(
            uid=event.uid, tool=event.tool, webhook_id=hook.id, endpoint=endpoint_of(hook.url), attempt=attempt,
            delivered=delivered, status_code=status_code, error=error,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        await nats_layout.publish_event(self._js, attempted)
        log.info("webhook_attempted", webhook_id=hook.id, attempt=attempt, delivered=delivered,
                 status_code=status_code, error=error)
        return next_wait


async def serve(settings: NotifierSettings, stop: asyncio.Event) -> None:
    """Composition root of the notifier."""
    nc = await nats_layout.connect(settings.nats_url, "aerovision-notifier")
    try:
        js = nc.jetstream()
        await nats_layout.declare_event_stream(js, settings.replicas)
        webhooks = await nats_layout.open_kv(js, names.WEBHOOKS_BUCKET, settings.replicas)
        deliveries = await nats_layout.open_kv(js, names.DELIVERIES_BUCKET, settings.replicas)
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        directory = WebhookDirectory(webhooks)
        await directory.start()
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                await Notifier(nc, directory, deliveries, http, settings).run(stop)
        finally:
            await directory.stop()
    finally:
        await nc.drain()
