"""The gateway's composition root: the Litestar app, its NATS connection and its lifespan."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from infra import nats_layout
from services.gateway.backend import Backend
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.event_routes import EVENT_HANDLERS
from services.gateway.paths import UUID_PATTERN
from services.gateway.routes import HANDLERS
from services.gateway.settings import GatewaySettings


_TASK_PATH = re.compile(rf"/api/v1/tasks/({UUID_PATTERN})")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def create_app(settings: GatewaySettings) -> Callable:
    """The gateway as an ASGI app bound to ``settings``; it connects to NATS when it starts.

    Status reads are the hottest path (clients poll every 10 ms): a read of a cached view is
    answered here, before the framework's routing and middleware, for a third of the CPU.
    """
    state: dict[str, Backend] = {}
    app = _litestar_app(settings, state)
    hold = settings.status_hold

    async def asgi(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and (backend := state.get("backend")):
            match = _TASK_PATH.fullmatch(scope["path"])
            uid = match.group(1) if match else None
            data, final = backend.cache.lookup(uid) if uid else (None, False)
            if data is not None and not final and hold > 0:
                # Hold a read of an unfinished task briefly: if it changes meanwhile the client
                # hears at once; either way tight polling loops cost a fraction of the requests.
                await backend.cache.wait_for_change(uid, hold)
                data = backend.cache.get(uid) or data
            if data is not None:
                headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                return
        await app(scope, receive, send)

    asgi.litestar = app  # type: ignore[attr-defined]
    return asgi


def _litestar_app(settings: GatewaySettings, state: dict[str, Backend]) -> Litestar:

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        reconnect_hooks: list = []
        nc = await nats_layout.connect(settings.nats_url, "aerovision-gateway", on_reconnect=reconnect_hooks)
        backend = Backend(nc, settings)
        reconnect_hooks.append(backend.on_reconnect)
        try:
            await backend.start()
            state["backend"] = backend
            yield
        finally:
            await backend.close()
            await nc.drain()

    return Litestar(
        route_handlers=[*HANDLERS, *EVENT_HANDLERS],
        lifespan=[lifespan],
        dependencies={
            "backend": Provide(lambda: state["backend"], sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_upload_bytes,
        openapi_config=OpenAPIConfig(title="AeroVision", version="1.0.0", path="/schema"),
        logging_config=None,
    )
