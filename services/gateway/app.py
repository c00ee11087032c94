"""The gateway's composition root: the Litestar app, its NATS connection and its lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from contracts import nats_layout
from services.gateway.backend import Backend
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.routes import HANDLERS
from services.gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> Litestar:
    """A gateway app bound to ``settings``; it connects to NATS when it starts."""
    state: dict[str, Backend] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        nc = await nats_layout.connect(settings.nats_url, "aerovision-gateway")
        backend = Backend(nc, settings)
        try:
            await backend.start()
            state["backend"] = backend
            yield
        finally:
            await backend.close()
            await nc.drain()

    return Litestar(
        route_handlers=HANDLERS,
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
