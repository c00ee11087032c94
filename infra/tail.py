"""Read the event stream in order from a chosen point, through a consumer of one's own.

Used by ``aerovision events`` and the gateway's Server-Sent Events. Each tail is an ephemeral
pull consumer (no acks, in memory, one replica) that this process names, creates when it opens
and deletes when it closes, so readers that come and go leave no consumers behind; should the
process vanish, the server deletes it after ``idle`` seconds without a fetch. A consumer lost in
a server restart is created again after the last sequence read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import nats
import structlog
from nats.js import JetStreamContext
from nats.js import api as js_api

from contracts import names
from infra.nats_layout import BROKER_UNAVAILABLE

log = structlog.get_logger("tail")
TAIL_PREFIX = "tail-"  # every tail consumer's name starts with it (tests count them)


class EventTail:
    """``async with EventTail(js, subject, ...) as tail: msgs = await tail.batch()``.

    Starts after ``after_seq`` if given, else at ``start_time`` if given, else at the first event
    (or, with ``new_only``, at the next one published).
    """

    def __init__(self, js: JetStreamContext, subject: str, *, after_seq: int | None = None,
                 start_time: dt.datetime | None = None, new_only: bool = False, idle: float = 30.0,
                 stream: str = names.EVENT_STREAM, last_per_subject: bool = False) -> None:
        self._js = js
        self._subject = subject
        self._stream = stream
        self._last_per_subject = last_per_subject  # a bucket's current values (its KV stream)
        self._start_time = start_time
        self._new_only = new_only
        self._idle = idle
        self.last_seq = after_seq  # the stream sequence of the last event read
        self.pending_at_open = 0
        self._name = TAIL_PREFIX + js._nc._nuid.next().decode()
        self._psub = None

    def _config(self) -> js_api.ConsumerConfig:
        config = js_api.ConsumerConfig(
            name=self._name, filter_subject=self._subject, ack_policy=js_api.AckPolicy.NONE,
            mem_storage=True, num_replicas=1, inactive_threshold=self._idle, max_waiting=1,
        )
        if self._last_per_subject and self.last_seq is None:
            config.deliver_policy = js_api.DeliverPolicy.LAST_PER_SUBJECT
        elif self.last_seq is not None:
            config.deliver_policy = js_api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.last_seq + 1
        elif self._start_time is not None:
            config.deliver_policy = js_api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = self._start_time
        else:
            config.deliver_policy = js_api.DeliverPolicy.NEW if self._new_only else js_api.DeliverPolicy.ALL
        return config

    async def _create(self) -> None:
        info = await self._js.add_consumer(self._stream, config=self._config())
        self.pending_at_open = info.num_pending
        if self._psub is None:
            self._psub = await self._js.pull_subscribe_bind(consumer=self._name, stream=self._stream)

    async def open(self) -> "EventTail":
        """Create the consumer (again, with the same name and config, if a first try timed out)."""
        await self._create()
        return self

    async def __aenter__(self) -> "EventTail":
        return await self.open()

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def batch(self, limit: int = 256, timeout: float = 1.0) -> list:
        """The next events (at most ``limit``), waiting up to ``timeout`` seconds; [] if none came."""
        assert self._psub is not None, "open the tail first"
        try:
            msgs = await self._psub.fetch(limit, timeout=timeout)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return []
        except nats.js.errors.NotFoundError:
            # The server lost our in-memory consumer (a restart): go on after the last event read.
            log.info("tail_recreated", consumer=self._name, after=self.last_seq)
            if self.last_seq is None and not self._new_only and self._start_time is None:
                self.last_seq = 0
            await self._create()
            return []
        if msgs:
            self.last_seq = msgs[-1].metadata.sequence.stream
        return msgs

    async def close(self) -> None:
        """Unsubscribe and delete the consumer (a broker that is away deletes it when idle)."""
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
            self._psub = None
        with contextlib.suppress(nats.js.errors.NotFoundError, *BROKER_UNAVAILABLE):
            await self._js.delete_consumer(self._stream, self._name)
