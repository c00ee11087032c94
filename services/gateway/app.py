"""The gateway's composition root: the Litestar app, its NATS connection and its lifespan."""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import structlog
from litestar import Litestar
from litestar.di import Provide

from infra import nats_layout
from services.gateway import edge
from services.gateway.backend import Backend
from services.gateway.docs_routes import DOCS_HANDLERS
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.event_routes import EVENT_HANDLERS
from services.gateway.paths import UUID_PATTERN
from services.gateway.routes import HANDLERS
from services.gateway.settings import GatewaySettings
from services.gateway.webhook_routes import WebhookController
from services.gateway.webhooks import WebhookStore

log = structlog.get_logger("gateway")
_TASK_PATH = re.compile(rf"/api/v1/tasks/({UUID_PATTERN})")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def create_app(settings: GatewaySettings, stop: asyncio.Event | None = None) -> Callable:
    """The gateway as an ASGI app bound to ``settings``; it connects to NATS when it starts.

    ``stop`` (set by the server on a signal) abandons connecting; the app sets it when its NATS
    connection is closed for good, so that the server exits (services/gateway/server.py).

    Status reads are the hottest path (clients poll every 10 ms): a read of a cached view is
    answered here, before the framework's routing and middleware, for a third of the CPU.
    """
    state: dict[str, Backend] = {}
    app = _litestar_app(settings, state, stop if stop is not None else asyncio.Event())
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
        request_id = scope.get(edge.REQUEST_ID_KEY, b"").decode()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await app(scope, receive, send)

    allowed = edge.AllowedMethods((route.path, route.methods) for route in app.routes
                                  if getattr(route, "route_handlers", None))
    outer = edge.wrap(asgi, allowed, settings.cors_origins)
    outer.litestar = app  # type: ignore[attr-defined]
    return outer


def _litestar_app(settings: GatewaySettings, state: dict, stop: asyncio.Event) -> Litestar:

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        reconnect_hooks: list = []
        try:
            async with nats_layout.session(settings.nats_url, "aerovision-gateway", stop,
                                           on_reconnect=reconnect_hooks) as nc:
                backend = Backend(nc, settings)
                webhooks = WebhookStore(nc.jetstream(), settings.replicas, settings.broker_patience)
                reconnect_hooks.extend([backend.on_reconnect, webhooks.on_reconnect])
                try:
                    await backend.start()
                    await webhooks.start()
                    state["backend"], state["webhooks"] = backend, webhooks
                    yield
                finally:
                    await webhooks.close()
                    await backend.close()
        except nats_layout.Stopped:
            # A signal came while connecting: start empty, the server stops at once (should_exit).
            log.info("gateway_stopped_before_connecting")
            yield
        except nats_layout.ConnectionLost:
            # Logged when it happened (nats_connection_closed); the server exits non-zero for it.
            log.info("gateway_stopped", reason="nats connection closed")

    return Litestar(
        route_handlers=[*HANDLERS, *DOCS_HANDLERS, *EVENT_HANDLERS, WebhookController],
        lifespan=[lifespan],
        dependencies={
            "backend": Provide(lambda: state["backend"], sync_to_thread=False),
            "webhooks": Provide(lambda: state["webhooks"], sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_upload_bytes,
        # The OpenAPI document and its pages are our own (docs_routes.py): generated from the
        # contract types with msgspec, and served with no CDN.
        openapi_config=None,
        logging_config=None,
    )
