"""The NATS layout every service relies on: connection options, the stream, the buckets.

It is a contract like the event types: a stream declared with different settings by two
services would fail (error 10058), so its configuration is written once, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from typing import AsyncIterator, Awaitable, Callable, Iterable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from contracts import names
from contracts.cloudevents import headers_of
from contracts.events import AnyEvent, encode_event, subject_of
from infra.retention import Retention

log = structlog.get_logger("nats")
T = TypeVar("T")


# While no server answers, say so at the first failure and then at this interval, not at every
# retry (nats-py retries every reconnect_time_wait = 0.5 s).
UNREACHABLE_LOG_INTERVAL = 15.0
# A drain (stop) waits this long for subscriptions to finish; nats-py's default is 30 s.
DRAIN_TIMEOUT = 5


class Stopped(Exception):
    """A stop was asked for before a NATS server could be reached."""


class ConnectionLost(RuntimeError):
    """The NATS connection was closed for good by something other than us (nats-py does not
    reconnect after the server refuses a command): the process should exit and be restarted."""


def _without_credentials(url: str) -> str:
    """The server list as it may be logged: no ``user:password@``."""
    shown = []
    for server in url.split(","):
        parts = urlsplit(server.strip())
        if parts.username or parts.password:
            host = parts.hostname or ""
            parts = parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host)
        shown.append(urlunsplit(parts))
    return ",".join(shown)


class _Unreachable:
    """Logs failed attempts to reach NATS calmly: the first one, then one every interval."""

    def __init__(self, client: str, url: str) -> None:
        self._client, self._url = client, _without_credentials(url)
        self._failures = 0
        self._since = 0.0
        self._logged = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failures == 0:
            self._since = now
        self._failures += 1
        if self._failures == 1 or now - self._logged >= UNREACHABLE_LOG_INTERVAL:
            self._logged = now
            log.warning("nats_unreachable", client=self._client, url=self._url, error=str(exc) or type(exc).__name__,
                        attempts=self._failures, for_s=round(now - self._since, 1),
                        hint="the NATS address comes from NATS_URL (comma-separated for several servers)")

    def reached(self) -> None:
        if self._failures:
            log.info("nats_reachable", client=self._client, url=self._url, attempts=self._failures)
        self._failures = 0


# Connections closed by close() below: their closed callback is a goodbye, not a loss.
_closing: "weakref.WeakSet[NATS]" = weakref.WeakSet()


async def connect(url: str, name: str, *, deadline: float | None = 60.0, stop: asyncio.Event | None = None,
                  on_closed: Callable[[str], None] | None = None,
                  on_reconnect: list[Callable[[], Awaitable[None]]] | None = None) -> NATS:
    """Connect, retrying until a server answers, and reconnect forever afterwards.

    Raises ``Stopped`` if ``stop`` is set first, TimeoutError after ``deadline`` seconds (None:
    never). ``on_closed(reason)`` is called if the connection is later closed for good by
    anything but ``close()``. ``on_reconnect`` may be filled after connecting: each is awaited
    after every reconnection.
    """
    nc = NATS()
    unreachable = _Unreachable(name, url)

    async def on_error(exc: Exception) -> None:
        if nc.is_connected:
            log.warning("nats_error", client=name, error=str(exc))
        else:  # a failed (re)connection attempt: nats-py tries again by itself
            unreachable.failed(exc)

    async def on_disconnect() -> None:
        if not nc.is_closed:
            log.warning("nats_disconnected", client=name)

    async def reconnected() -> None:
        unreachable.reached()
        log.info("nats_reconnected", client=name)
        for callback in on_reconnect or ():
            await callback()

    async def closed() -> None:
        if nc in _closing:
            return
        reason = str(nc.last_error) if nc.last_error else "closed"
        log.error("nats_connection_closed", client=name, url=_without_credentials(url), reason=reason)
        if on_closed is not None:
            on_closed(reason)

    attempt = asyncio.ensure_future(nc.connect(
        [server.strip() for server in url.split(",") if server.strip()],
        name=name,
        max_reconnect_attempts=-1,  # also retries the first connection for ever: we decide when to give up
        reconnect_time_wait=0.5,
        connect_timeout=2,
        ping_interval=10,
        drain_timeout=DRAIN_TIMEOUT,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=reconnected,
        closed_cb=closed,
    ))
    waiting = {attempt}
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopping is not None:
        waiting.add(stopping)
    try:
        await asyncio.wait(waiting, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopping is not None:
            stopping.cancel()
        while not attempt.done():
            # Again until it sticks: Python 3.11's wait_for (inside nats-py) drops a cancellation
            # that lands as a connection attempt fails (gh-86296), and nats-py then retries on.
            attempt.cancel()
            await asyncio.wait({attempt}, timeout=0.1)
            _closing.add(nc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2)
    if attempt.cancelled():
        if stop is not None and stop.is_set():
            raise Stopped(f"stopped before NATS at {_without_credentials(url)} answered")
        raise TimeoutError(f"no NATS server answered at {_without_credentials(url)} within {deadline} s")
    attempt.result()
    unreachable.reached()
    return nc


async def close(nc: NATS) -> None:
    """Drain a connection we are done with (close it if it is not connected); no-op if closed."""
    _closing.add(nc)
    if nc.is_closed:
        return
    if nc.is_connected:
        try:
            await nc.drain()
            return
        except nats.errors.Error as exc:  # e.g. it dropped meanwhile
            log.info("nats_drain_failed", error=type(exc).__name__)
    try:
        await nc.close()
    except RuntimeError as exc:
        # While reconnecting, nats-py flushes its pending buffer into the transport it already
        # closed (uvloop raises); the connection is closed regardless, and we are leaving.
        log.info("nats_close_failed", error=str(exc))


@contextlib.asynccontextmanager
async def session(url: str, name: str, stop: asyncio.Event,
                  on_reconnect: list[Callable[[], Awaitable[None]]] | None = None) -> AsyncIterator[NATS]:
    """A service's connection for its whole life, drained on leaving.

    Connecting (retried for ever, logged calmly) is abandoned with ``Stopped`` once ``stop`` is
    set. If the connection is closed for good by anything but leaving this block, ``stop`` is set
    and leaving raises ``ConnectionLost``, so that the process exits non-zero and is restarted
    instead of living on unable to serve.
    """
    lost: list[str] = []

    def on_closed(reason: str) -> None:
        lost.append(reason)
        stop.set()

    nc = await connect(url, name, deadline=None, stop=stop, on_closed=on_closed, on_reconnect=on_reconnect)
    try:
        yield nc
    except Exception as exc:
        if lost:  # whatever failed after the loss failed because of it
            raise ConnectionLost(lost[0]) from exc
        raise
    finally:
        await close(nc)
    if lost:
        raise ConnectionLost(lost[0])


# What a JetStream call raises while the server restarts or a leader is elected: worth a retry.
BROKER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError, asyncio.TimeoutError,
)


async def retrying(op: Callable[[], Awaitable[T]], *, deadline: float = 15.0, what: str = "nats") -> T:
    """Run a JetStream call, retrying through a server restart or a leader election."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    delay = 0.05
    while True:
        try:
            return await op()
        except BROKER_UNAVAILABLE as exc:
            # A closed connection never comes back (nats-py raises it only once closed for good).
            if loop.time() + delay > give_up or isinstance(exc, nats.errors.ConnectionClosedError):
                raise
            log.info("nats_retry", what=what, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def publish_event(js: JetStreamContext, event: AnyEvent, *, deadline: float = 15.0) -> js_api.PubAck:
    """Store one event on its subject, retried through a restart; its message id makes a retried
    publish a duplicate the stream drops. The headers make it a CloudEvent in binary mode."""
    headers = headers_of(event)
    return await retrying(
        lambda: js.publish(subject_of(event), encode_event(event), headers=headers),
        deadline=deadline, what=f"publish {type(event).__name__}",
    )


def event_stream_config(replicas: int = 1, retention: Retention | None = None) -> js_api.StreamConfig:
    # Limits retention: the stream is the audit log, consuming never deletes history. Its limits
    # (infra/retention.py) only ever drop the oldest events.
    retention = retention or Retention()
    return js_api.StreamConfig(
        name=names.EVENT_STREAM,
        subjects=[names.EVENT_SUBJECTS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        # The server refuses a duplicate window longer than the age limit.
        duplicate_window=min(120.0, retention.events_max_age or 120.0),
        allow_direct=True,
        num_replicas=replicas,
        max_age=retention.events_max_age,
        max_bytes=retention.events_max_bytes,
        discard=js_api.DiscardPolicy.OLD,
    )


async def _add_or_update_stream(js: JetStreamContext, config: js_api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != 10058:  # "stream name already in use with a different configuration"
            raise
        await js.update_stream(config)


async def _current_retention(js: JetStreamContext) -> Retention | None:
    try:
        config = (await js.stream_info(names.EVENT_STREAM)).config
    except nats.js.errors.NotFoundError:
        return None
    return Retention(events_max_age=config.max_age or 0.0, events_max_bytes=config.max_bytes or -1)


async def declare_event_stream(js: JetStreamContext, replicas: int = 1, retention: Retention | None = None) -> None:
    """Create or update the event stream; its limits are ``retention``'s, or (None) left as found."""

    async def declare() -> None:
        kept = retention if retention is not None else await _current_retention(js)
        await _add_or_update_stream(js, event_stream_config(replicas, kept))

    await retrying(declare, deadline=30, what="stream")


async def open_kv(js: JetStreamContext, bucket: str, replicas: int = 1, history: int = 1) -> KeyValue:
    """Create the bucket if needed (direct gets on: a get is one round trip to any replica)."""

    async def create() -> KeyValue:
        try:
            return await js.create_key_value(bucket=bucket, history=history, direct=True, replicas=replicas)
        except BadRequestError as exc:
            if exc.err_code != 10058:
                raise
            return await js.key_value(bucket)

    return await retrying(create, deadline=30, what=f"kv:{bucket}")


async def drop_kv(js: JetStreamContext, bucket: str) -> None:
    """Delete the bucket and everything in it; no-op if there is none."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_key_value(bucket)


async def put_at(kv: KeyValue, key: str, data: bytes, revision: int) -> int:
    """Write ``key`` by compare-and-swap on the revision last read (0: create it, expecting none);
    its new revision. KeyWrongLastSequenceError if it moved meanwhile."""
    if revision:
        return await kv.update(key, data, last=revision)
    return await kv.create(key, data)


async def put_pipelined(js: JetStreamContext, kv: KeyValue, items: Iterable[tuple[str, bytes]],
                        base_timeout: float) -> list[js_api.PubAck]:
    """Put every (key, value) into ``kv`` (no compare-and-swap) through ``js``, pipelined: all are
    published before their acknowledgements are awaited together. The acks, in order."""
    # nats-py's KeyValue has no pipelined put of its own: publish to the key's subject directly.
    prefix = kv._pre  # noqa: SLF001
    pending = [await js.publish_async(prefix + key, value) for key, value in items]
    # publish_async futures never time out by themselves (docs/NATS-NOTES): bound the wait.
    return await asyncio.wait_for(asyncio.gather(*pending), timeout=base_timeout + len(pending) / 1000)


async def declare_files_bucket(js: JetStreamContext, replicas: int = 1, ttl: float | None = None) -> None:
    """Create the files bucket; with ``ttl`` (seconds, 0: for ever) set its time to live, which
    an existing bucket takes too (None: leave it as found)."""

    async def create() -> None:
        try:
            await js.create_object_store(bucket=names.FILES_BUCKET, replicas=replicas, ttl=ttl or None)
        except BadRequestError as exc:
            if exc.err_code != 10058:
                raise
            if ttl is None:
                return
            config = (await js.stream_info(f"OBJ_{names.FILES_BUCKET}")).config
            if (config.max_age or 0.0) != ttl:
                config.max_age = ttl
                if ttl and (config.duplicate_window or 0) > ttl:  # the server refuses a longer one
                    config.duplicate_window = ttl
                await js.update_stream(config)

    await retrying(create, deadline=30, what="files")


async def declare_consumer(js: JetStreamContext, config: js_api.ConsumerConfig) -> js_api.ConsumerInfo:
    """Create or update a durable consumer (``pull_subscribe`` would ignore a changed config)."""
    return await retrying(lambda: js.add_consumer(names.EVENT_STREAM, config=config), deadline=30, what="consumer")


class _BatchReplies:
    """One wildcard inbox per connection for batched direct gets: a new subscription per read
    would cost a SUB/UNSUB round of interest changes on the server every time."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._queues: dict[str, asyncio.Queue] = {}
        self._sub = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        if self._sub is None:
            async with self._lock:
                if self._sub is None:
                    self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._route)

    async def _route(self, msg) -> None:
        queue = self._queues.get(msg.subject.rsplit(".", 1)[-1])
        if queue is not None:
            queue.put_nowait(msg)

    async def fetch(self, stream: str, request: bytes, limit: int, timeout: float) -> list:
        await self._ensure()
        token = self._nc._nuid.next().decode()
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[token] = queue
        found: list = []
        try:
            await self._nc.publish(f"$JS.API.DIRECT.GET.{stream}", request, reply=f"{self._prefix}.{token}")
            while len(found) < limit:
                msg = await asyncio.wait_for(queue.get(), timeout=timeout)
                if (msg.headers or {}).get("Status") is not None and not msg.data:
                    break  # end of batch (204) or nothing found (404)
                found.append(msg)
        finally:
            del self._queues[token]
        return found


_replies: "weakref.WeakKeyDictionary[NATS, _BatchReplies]" = weakref.WeakKeyDictionary()


async def direct_get_batch(nc: NATS, stream: str, subject: str, limit: int, *, start_seq: int = 1,
                           timeout: float = 10.0) -> list:
    """Messages of ``subject`` (wildcards allowed) from ``start_seq`` on, in one batched direct get.

    Needs nats-server >= 2.11 and ``allow_direct`` on the stream. Returns at most ``limit`` messages.
    """
    replies = _replies.get(nc)
    if replies is None:
        replies = _replies[nc] = _BatchReplies(nc)
    request = json.dumps({"seq": start_seq, "next_by_subj": subject, "batch": limit}).encode()
    return await replies.fetch(stream, request, limit, timeout)


async def consume(psub, handle: Callable[[object], Awaitable[None]], *, concurrency: int,
                  stop: asyncio.Event, grace: float) -> None:
    """Fetch from a pull subscription while fewer than ``concurrency`` messages are in hand, each
    handled in its own task, until ``stop``. Then let running handlers finish for ``grace``
    seconds and cancel the rest (handlers hand their message back when cancelled)."""
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task] = set()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            # Waiting for a free slot must not outlast a stop (every handler may run for minutes).
            slot = asyncio.ensure_future(slots.acquire())
            await asyncio.wait({slot, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not slot.done():
                slot.cancel()
                break
            try:
                msgs = await psub.fetch(1, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                slots.release()
                continue
            except nats.errors.ConnectionClosedError:
                slots.release()
                break
            if not msgs:
                slots.release()
            for msg in msgs:
                task = asyncio.create_task(handle(msg))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
    finally:
        stopping.cancel()
        # Messages left in a pull subscription's queue would stall drain() for 30 s.
        await psub.unsubscribe()
        if running:
            _, pending = await asyncio.wait(set(running), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
