"""The notifier's composition root: finished tasks in, signed webhook deliveries out.

Three loops share one connection: the fan-out (finished tasks → deliveries owed, in KV), the
scheduler (each owed delivery attempted on its own schedule, bounded per receiver), and the
attempts log (``webhook.attempted`` events → the per-webhook pages ``/deliveries`` reads).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from contracts import names
from infra import nats_layout
from services.notifier import attempts_log, fanout
from services.notifier import scheduler as sched
from services.notifier.deliverer import Deliverer, Payloads
from services.notifier.directory import WebhookDirectory
from services.notifier.http_attempt import client_session
from services.notifier.settings import NotifierSettings
from services.notifier.stores import DeliveryStates, Outbox

log = structlog.get_logger("notifier")
STOP_GRACE = 3.0


async def serve(settings: NotifierSettings, stop: asyncio.Event) -> None:
    """Run the notifier until ``stop``; attempts in flight then get a few seconds to finish."""
    reconnect_hooks: list = []
    async with nats_layout.session(settings.nats_url, "aerovision-notifier", stop, on_reconnect=reconnect_hooks) as nc:
        js = nc.jetstream()
        await nats_layout.declare_event_stream(js, settings.replicas)
        webhooks = await nats_layout.open_kv(js, names.WEBHOOKS_BUCKET, settings.replicas)
        states = DeliveryStates(await nats_layout.open_kv(js, names.DELIVERIES_BUCKET, settings.replicas))
        outbox = Outbox(js, await nats_layout.open_kv(js, names.WEBHOOK_OUTBOX_BUCKET, settings.replicas))
        attempts = attempts_log.AttemptsLog(
            await nats_layout.open_kv(js, names.WEBHOOK_ATTEMPTS_BUCKET, settings.replicas))
        directory = WebhookDirectory(webhooks)
        await directory.start()
        reconnect_hooks.append(directory.on_reconnect)
        payloads = Payloads(js)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(directory.stop)
            http = await stack.enter_async_context(client_session(settings.allow_private_targets))
            deliverer = Deliverer(js, directory, states, outbox, payloads, http, settings)
            scheduler = sched.Scheduler(deliverer.deliver, per_receiver=settings.per_receiver,
                                        concurrency=settings.concurrency)
            directory.on_removed = scheduler.hook_removed
            ready = asyncio.Event()
            watcher = await outbox.kv.watchall()
            following = asyncio.create_task(sched.follow(watcher, scheduler, ready))
            stack.push_async_callback(_cancel, following)
            await asyncio.wait_for(ready.wait(), timeout=60)
            log.info("notifier_started", owed=scheduler.pending(), webhooks=len(directory))

            await nats_layout.declare_consumer(js, fanout.consumer_config())
            psub = await js.pull_subscribe_bind(durable=names.NOTIFIER_CONSUMER, stream=names.EVENT_STREAM)
            fan = fanout.FanOut(directory, states, outbox, payloads, scheduler)
            loops = [
                asyncio.create_task(nats_layout.consume(psub, fan.handle, concurrency=32, stop=stop, grace=5)),
                asyncio.create_task(scheduler.run(stop)),
                asyncio.create_task(attempts.run(js, stop)),
            ]
            try:
                done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()  # a loop that died of an error stops the notifier (it is restarted)
            finally:
                stop.set()
                await asyncio.gather(*loops, return_exceptions=True)
                # Short: an attempt cut off stays owed (its entry is still in the outbox) and is
                # made again at the next start, so a hanging receiver cannot hold up a stop.
                await scheduler.drain(grace=min(settings.timeout, STOP_GRACE))


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
