"""One webhook attempt against real local servers: what it records, and which targets it refuses."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from services.notifier.http_attempt import client_session, post

NATS_LIKE = b'INFO {"server_id":"NSECRET","version":"2.15.1"}\r\n'


@pytest.fixture
async def servers():
    """Local endpoints: an HTTP app with a few behaviours, and raw TCP servers that misbehave."""
    app = web.Application()
    seen: list[web.Request] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(text="fine")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "120"}, text="slow down, internal id 42")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 100_000)
        return response

    for path, handler in (("/ok", ok), ("/moved", moved), ("/busy", busy), ("/huge", huge)):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    release = asyncio.Event()

    def raw(greeting: bytes):
        async def handle(reader, writer):
            if greeting:
                writer.write(greeting)
            await release.wait()
            writer.close()
        return handle

    hang = await asyncio.start_server(raw(b""), "127.0.0.1", 0)
    banner = await asyncio.start_server(raw(NATS_LIKE), "127.0.0.1", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    yield {
        "http": f"http://127.0.0.1:{http_port}", "port": http_port, "seen": seen, "closed": closed_port,
        "hang": f"http://127.0.0.1:{hang.sockets[0].getsockname()[1]}/",
        "banner": f"http://127.0.0.1:{banner.sockets[0].getsockname()[1]}/",
    }
    release.set()
    for server in (hang, banner):
        server.close()
    await runner.cleanup()


async def _attempt(url: str, allow_private: bool = True, timeout: float = 2.0):
    async with client_session(allow_private) as http:
        return await post(http, url, b'{"uid":"u"}', {"Content-Type": "application/json"},
                          timeout=timeout, allow_private=allow_private)


async def test_outcomes_say_what_failed_in_our_words(servers):
    cases = {
        f"{servers['http']}/ok": (True, 200, None),
        f"{servers['http']}/moved": (False, 302, "HTTP 302"),  # redirects are not followed
        f"{servers['http']}/busy": (False, 429, "HTTP 429"),
        f"http://127.0.0.1:{servers['closed']}/": (False, None, "connection refused"),
        servers["banner"]: (False, None, "invalid HTTP response"),
        f"https://127.0.0.1:{servers['port']}/ok": (False, None, "TLS error"),
        "http://no-such-host.invalid/": (False, None, "DNS lookup failed"),
    }
    for url, (delivered, status, error) in cases.items():
        outcome, _ = await _attempt(url)
        assert (outcome.delivered, outcome.status_code, outcome.error) == (delivered, status, error), url
    busy, _ = await _attempt(f"{servers['http']}/busy")
    assert busy.retry_after == 120.0
    hung, duration = await _attempt(servers["hang"], timeout=0.5)
    assert hung.error == "timeout after 0.5 s" and 450 <= duration < 2000


async def test_a_large_reply_is_not_read(servers):
    outcome, duration = await _attempt(f"{servers['http']}/huge")
    assert outcome.delivered and duration < 1000


async def test_targets_refused_at_delivery(servers):
    port = servers["port"]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://0.0.0.0/",
                "http://[::ffff:169.254.169.254]/", "http://224.0.0.1/"):
        outcome, _ = await _attempt(url)
        assert outcome.error.startswith("target refused:") and outcome.status_code is None, url
    # Loopback: allowed by default, refused with AEROVISION_WEBHOOK_PRIVATE_TARGETS=deny — also
    # when it is reached by a name, checked after resolution (the address connected to).
    assert (await _attempt(f"http://localhost:{port}/ok"))[0].delivered
    for url in (f"http://localhost:{port}/ok", f"http://127.0.0.1:{port}/ok", f"http://0x7f.0.0.1:{port}/ok",
                f"http://LOCALHOST:{port}/ok"):
        outcome, _ = await _attempt(url, allow_private=False)
        assert outcome.error.startswith("target refused:") and "private" in outcome.error, url
    assert len(servers["seen"]) == 1  # only the allowed one reached the receiver
