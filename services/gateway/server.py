"""The gateway's HTTP server: uvicorn, with the limits a server facing the network needs.

uvicorn closes idle keep-alive connections and can cap concurrent ones, but it waits for ever
for a request's headers and body: 1,000 connections with unfinished headers, or a body sent a
byte every 2 s, held the gateway as long as the client liked. ``GuardedProtocol`` puts one timer
on each request: its headers must be complete ``header_timeout`` after it starts, and its body
may fall at most ``body_grace`` seconds behind ``body_min_rate``; a request that misses either
gets 408 and its connection is closed. Every limit and its reason: docs/limits.md.

The server stops on SIGTERM / SIGINT (exit 0) or when the app reports its NATS connection closed
for good (exit ``EXIT_CONNECTION_LOST``, so that a supervisor starts it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from types import FrameType
from typing import Iterator

import msgspec
import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from infra.process import EXIT_CONNECTION_LOST, ensure_open_files
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

log = structlog.get_logger("gateway")

_TIMEOUT_BODY = b'{"detail":"Request Timeout: the request did not arrive in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _TIMEOUT_BODY
)
# Descriptors beyond the connection cap: NATS, spool files, uploads spilled to disk.
_SPARE_FILES = 256

# Where a request is: none expected (between requests, or answering), a connection that has
# sent nothing yet, headers coming, body coming.
_IDLE, _WAITING, _HEADERS, _BODY = 0, 1, 2, 3


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    header_timeout: float
    body_grace: float
    body_min_rate: float


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


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a minimum body rate per request.

    One timer per request, armed when it starts and cancelled when its last byte arrives: the
    cost on the hot path is a ``call_later`` and a ``cancel`` (uvicorn arms its keep-alive timer
    the same way).
    """

    limits: Limits
    cut_offs: CutOffs

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _IDLE
        self._body_since = 0.0
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers(_WAITING)  # a connection that never sends a byte is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase == _IDLE:
            self._expect_headers(_HEADERS)
        else:  # the first request's clock started with the connection
            self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._body_since, self._body_bytes = self.loop.time(), 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _expect_headers(self, phase: int) -> None:
        self._phase = phase
        self._timer = self.loop.call_later(self.limits.header_timeout, self._on_timer)

    def _disarm(self) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._phase in (_WAITING, _HEADERS):
            self._cut_off("headers")
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # We stopped reading (the app has not taken what came), or the client waits for our
            # "100 Continue" (curl does for uploads over 1 MB): not the client's delay.
            self._body_since, self._body_bytes = now, 0
        due = self._body_since + self.limits.body_grace + self._body_bytes / self.limits.body_min_rate
        if due > now:
            self._timer = self.loop.call_later(due - now, self._on_timer)
        else:
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


def protocol_for(limits: Limits) -> type[GuardedProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``limits``."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "cut_offs": CutOffs()})


class GatewayServer(uvicorn.Server):
    """uvicorn's server, stopped by a signal or by the app setting ``stop``."""

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self.stop = stop
        self.stopped_by_signal = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's re-raises the signal once stopped, so the process dies of it; a stop that
        # was asked for is a clean exit here.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal after the connection was lost (say, a supervisor stopping an unhealthy
        # gateway) does not make the loss a requested stop.
        if not self.stop.is_set():
            self.stopped_by_signal = True
        super().handle_exit(sig, frame)
        if self._loop is not None:
            # Also abandons connecting to NATS (the app's start-up waits on it, not on should_exit).
            self._loop.call_soon_threadsafe(self.stop.set)

    async def on_tick(self, counter: int) -> bool:
        if self.stop.is_set():
            self.should_exit = True
        return await super().on_tick(counter)


def config_for(settings: GatewaySettings, stop: asyncio.Event) -> uvicorn.Config:
    limits = Limits(header_timeout=settings.header_timeout, body_grace=settings.body_grace,
                    body_min_rate=max(1, settings.body_min_rate))
    return uvicorn.Config(
        create_app(settings, stop), host=settings.host, port=settings.port, log_config=None, access_log=False,
        loop="uvloop" if _has("uvloop") else "asyncio", http=protocol_for(limits), lifespan="on",
        timeout_keep_alive=settings.keep_alive, limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_grace,
    )


def run(settings: GatewaySettings, fd: int | None = None) -> int:
    """Serve on ``settings.host:port``, or on the listening socket ``fd`` handed down by a
    supervisor; returns the exit status."""
    open_files = ensure_open_files(settings.max_connections + _SPARE_FILES)
    if open_files < settings.max_connections + _SPARE_FILES:
        log.warning("open_files_limit_low", limit=open_files, max_connections=settings.max_connections)
    stop = asyncio.Event()
    server = GatewayServer(config_for(settings, stop), stop)
    sockets = [socket.socket(fileno=fd)] if fd is not None else None
    where = sockets[0].getsockname()[:2] if sockets else (settings.host, settings.port)
    log.info("gateway_starting", host=where[0], port=where[1], inherited_socket=fd is not None)
    server.run(sockets=sockets)
    if stop.is_set() and not server.stopped_by_signal:
        return EXIT_CONNECTION_LOST
    return 0


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False
