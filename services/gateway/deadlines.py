"""Deadlines for slow clients, added to uvicorn's httptools protocol.

uvicorn closes idle keep-alive connections and can cap concurrent ones, but it waits for ever
for a request's headers and body: 1,000 connections with unfinished headers, or a body sent a
byte every 2 s, held the gateway as long as the client liked. With ``DeadlineProtocol``, a
request's headers must be complete ``header_timeout`` seconds after it starts (after the
connection opens, for its first request), and its body may fall at most ``body_grace`` seconds
behind ``body_min_rate``. A request that misses either gets 408 and its connection is closed.
The values and their reasons: docs/limits.md.

The deadlines are enforced by one sweep over the open connections every ``SWEEP_INTERVAL``, not
by a timer per request: on the hottest path (clients polling a task's status) a request then
costs two clock reads instead of a timer armed and cancelled (~2.6 µs with uvloop here). A
deadline is kept to within the sweep interval.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger("gateway")

SWEEP_INTERVAL = 0.5

_TIMEOUT_BODY = b'{"detail":"Request Timeout: the request did not arrive in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _TIMEOUT_BODY
)

# Where a connection is: no request expected (between requests, or answering one), opened but
# nothing sent yet, headers coming, body coming.
_IDLE, _WAITING, _HEADERS, _BODY = 0, 1, 2, 3


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    header_timeout: float
    body_grace: float
    body_min_rate: float  # bytes per second


class CutOffs:
    """Slow clients cut off, logged calmly: the first at once, then at most a line per interval
    with the counts since the last one (a flood of slow clients must not flood the log)."""

    interval = 10.0

    def __init__(self) -> None:
        self._counts = {"headers": 0, "body": 0}
        self._logged = float("-inf")

    def note(self, what: str, client: tuple[str, int] | None) -> None:
        self._counts[what] += 1
        now = time.monotonic()
        if now - self._logged >= self.interval:
            log.info("slow_clients_cut_off", **self._counts, last_client=client[0] if client else None)
            self._counts = dict.fromkeys(self._counts, 0)
            self._logged = now


class _Sweep:
    """A server's one recurring timer: it checks every open connection's deadline, and rests
    while there is none."""

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None

    def ensure(self, loop: asyncio.AbstractEventLoop, connections: set) -> None:
        if self._handle is None:
            self._handle = loop.call_later(SWEEP_INTERVAL, self._run, loop, connections)

    def _run(self, loop: asyncio.AbstractEventLoop, connections: set) -> None:
        now = loop.time()
        for connection in list(connections):  # a cut-off leaves the set
            check = getattr(connection, "check_deadline", None)
            if check is not None:
                check(now)
        self._handle = loop.call_later(SWEEP_INTERVAL, self._run, loop, connections) if connections else None


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a minimum body rate per request."""

    limits: Limits
    cut_offs: CutOffs
    sweep: _Sweep

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._since = 0.0
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase, self._since = _WAITING, self.loop.time()  # one that never sends a byte is cut off too
        self.sweep.ensure(self.loop, self.connections)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase == _IDLE:  # the first request's clock started with the connection
            self._since = self.loop.time()
        self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        self._phase, self._since, self._body_bytes = _BODY, self.loop.time(), 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        super().on_message_complete()

    def check_deadline(self, now: float) -> None:
        """Cut the connection off if its request is late (called by the sweep)."""
        if self._phase == _IDLE:
            return
        if self._phase != _BODY:
            if now - self._since > self.limits.header_timeout:
                self._cut_off("headers")
            return
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # We stopped reading (the app has not taken what came), or the client waits for our
            # "100 Continue" (curl does for uploads over 1 MB): not the client's delay.
            self._since, self._body_bytes = now, 0
        elif now > self._since + self.limits.body_grace + self._body_bytes / self.limits.body_min_rate:
            self._cut_off("body")

    def _cut_off(self, what: str) -> None:
        began, self._phase = self._phase != _WAITING, _IDLE
        self.cut_offs.note(what, self.client)
        cycle = self.cycle
        if what == "headers":
            # A connection that never sent a byte is just closed (browsers open spare ones);
            # otherwise answer, unless an earlier request's response is still being written.
            answer = began and (cycle is None or cycle.response_complete)
        else:
            answer = not cycle.response_started
            # The app reading this body hears a disconnect; anything it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer and not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def protocol_for(limits: Limits) -> type[DeadlineProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``limits``."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"limits": limits, "cut_offs": CutOffs(), "sweep": _Sweep()})
