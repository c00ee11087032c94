"""The gateway's HTTP server: uvicorn, with the limits a server facing the network needs.

Deadlines for slow clients (services/gateway/deadlines.py), a cap on open connections, the
keep-alive and shutdown timeouts; every limit and its reason: docs/limits.md.

The server stops on SIGTERM / SIGINT (exit 0) or when the app reports its NATS connection closed
for good (exit ``EXIT_CONNECTION_LOST``, so that a supervisor starts it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from types import FrameType
from typing import Iterator

import structlog
import uvicorn

from infra.process import EXIT_CONNECTION_LOST, ensure_open_files
from services.gateway.app import create_app
from services.gateway.deadlines import Limits, protocol_for
from services.gateway.settings import GatewaySettings

log = structlog.get_logger("gateway")

# Descriptors beyond the connection cap: NATS, spool files, uploads spilled to disk.
_SPARE_FILES = 256


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
        loop="auto", http=protocol_for(limits), lifespan="on",
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

