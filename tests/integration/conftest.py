"""A client of the session's nats-server with the event stream and the files bucket declared."""

from __future__ import annotations

import pytest

from contracts import nats_layout


@pytest.fixture
async def nc(nats_server):
    client = await nats_layout.connect(nats_server.url, "test")
    await nats_layout.declare_event_stream(client.jetstream())
    await nats_layout.declare_files_bucket(client.jetstream())
    yield client
    await client.drain()
