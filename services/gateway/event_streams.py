"""Server-Sent Events of the event stream: how many may be open, and what one sends.

Each stream reads through a tail consumer of its own (``infra.tail``) that is deleted when the
client goes. The SSE ``id`` is the event's stream sequence, so a client that reconnects with
``Last-Event-ID`` (browsers do it by themselves) resumes right after the last event it got.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import anyio
import msgspec
import structlog
from litestar.response import ServerSentEventMessage

from infra.tail import EventTail

log = structlog.get_logger("gateway")


class StreamSlots:
    """At most ``limit`` event streams open at once (each holds a consumer on the server)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class _Type(msgspec.Struct):
    type: str


_type = msgspec.json.Decoder(_Type)


def message_of(seq: int, data: bytes) -> ServerSentEventMessage | None:
    """One event as an SSE message (id: stream sequence, event: its type, data: its JSON as stored);
    None for a message that is not an event at all."""
    try:
        kind = _type.decode(data).type
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return ServerSentEventMessage(id=seq, event=kind, data=data.decode())


async def sse_messages(tail: EventTail, slots: StreamSlots, keepalive: float) -> AsyncIterator[ServerSentEventMessage]:
    """The events ``tail`` reads, as SSE messages, until the client goes; a comment every
    ``keepalive`` seconds of silence keeps proxies from closing the connection (and tells the
    server when the client is gone)."""
    loop = asyncio.get_running_loop()
    try:
        # data=None: a comment alone (an empty data line would reach clients as an empty message).
        yield ServerSentEventMessage(comment="aerovision events", retry=2000, data=None)
        quiet_since = loop.time()
        while True:
            msgs = await tail.batch(limit=256, timeout=min(1.0, keepalive))
            for msg in msgs:
                message = message_of(msg.metadata.sequence.stream, msg.data)
                if message is None:
                    log.warning("event_skipped", subject=msg.subject, reason="not JSON")
                    continue
                yield message
            if msgs:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= keepalive:
                yield ServerSentEventMessage(comment="keepalive", data=None)
                quiet_since = loop.time()
    finally:
        # The client went: the response's cancel scope is cancelled, so the cleanup is shielded
        # from it (otherwise its first await would be cancelled and the consumer left behind).
        with anyio.CancelScope(shield=True):
            await tail.close()
        slots.give_back()
        log.info("event_stream_closed", last_seq=tail.last_seq)
