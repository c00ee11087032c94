"""A client of the session's nats-server with the event stream and the files bucket declared."""

from __future__ import annotations

import pytest

from infra import nats_layout


@pytest.fixture
async def nc(nats_server):
    client = await nats_layout.connect(nats_server.url, "test")
    await nats_layout.declare_event_stream(client.jetstream())
    await nats_layout.declare_files_bucket(client.jetstream())
    yield client
    await client.drain()


@pytest.fixture
async def private_nats(tmp_path):
    """A nats-server of the test's own (no other test sees its streams) and a client of it."""
    from tests.harness import NatsServer

    server = NatsServer(tmp_path / "store").start()
    client = await nats_layout.connect(server.url, "test-private")
    try:
        await nats_layout.declare_event_stream(client.jetstream())
        yield server, client
    finally:
        try:
            await client.drain()
        finally:  # a test that left the server down must not leave it running either
            server.stop()


@pytest.fixture
async def kv(nats_server):
    """A KV bucket of the test's own on the session's server, deleted afterwards."""
    import uuid

    client = await nats_layout.connect(nats_server.url, "test-kv")
    js = client.jetstream()
    bucket = f"test_kv_{uuid.uuid4().hex[:8]}"
    yield await nats_layout.open_kv(js, bucket, 1)
    await js.delete_key_value(bucket)
    await client.drain()
