"""A webhook test rig: NATS, the gateway, projector and notifier as real processes (no matcher:
tests publish the finished-task events a matcher would), and real receivers on local ports."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp
import msgspec
from aiohttp import web

from contracts import events
from contracts.params import TemplateParams
from contracts.results import TemplateResult
from infra import nats_layout
from tests.harness import NatsServer, Service, free_port, service_env, wait_until

SCHEDULE = (0.4, 0.8, 1.2)  # delays before attempts 2, 3, 4 (short, so a whole schedule fits a test)
ATTEMPT_TIMEOUT = 3.0


_RESULT = {"method": "TM_CCOEFF_NORMED", "matches_found": 1, "filtered_matches": 1, "best_score": 1.0,
           "matches": [{"x": 0, "y": 0, "w": 8, "h": 8, "score": 1.0}]}


@dataclass
class Rig:
    base: str
    nats: NatsServer
    nc: Any
    http: aiohttp.ClientSession
    services: dict[str, Service]
    root: Path
    env: dict[str, str]

    async def register(self, url: str, secret: str | None = None) -> dict:
        body = {"url": url} if secret is None else {"url": url, "secret": secret}
        async with self.http.post(f"{self.base}/api/v1/webhooks", json=body) as response:
            assert response.status == 201, await response.text()
            return await response.json()

    async def unregister(self, webhook_id: str) -> None:
        async with self.http.delete(f"{self.base}/api/v1/webhooks/{webhook_id}") as response:
            assert response.status == 204

    async def finish(self, *, status: str = "done", result_data: dict | None = None, error: str | None = None,
                     submitted: bool = True) -> str:
        """A task that ends now, as a matcher reports it: its events on the stream; the uid."""
        uid = str(uuid.uuid4())
        js = self.nc.jetstream()
        if submitted:
            await nats_layout.publish_event(js, events.submitted("template", uid=uid, params=TemplateParams(), input_files=[]))
        if status == "done":
            # The events are typed: what a test wants in the body goes into a template result.
            result = msgspec.convert({**_RESULT, **(result_data or {})}, TemplateResult)
            finished = events.finished("template", "done", uid=uid, result_data=result,
                                       result_files=[f"results/{uid}/matches.png"])
        else:
            finished = events.finished("template", "error", uid=uid, error=error)
        await nats_layout.publish_event(js, finished)
        return uid

    async def deliveries(self, webhook_id: str, **query: int) -> dict:
        async with self.http.get(f"{self.base}/api/v1/webhooks/{webhook_id}/deliveries", params=query) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def attempts_of(self, webhook_id: str, uid: str, at_least: int = 1, timeout: float = 15) -> list[dict]:
        """The attempts listed for one (task, webhook), oldest first, once there are ``at_least``."""

        async def listed():
            found = [d for d in (await self.deliveries(webhook_id, limit=200))["deliveries"] if d["uid"] == uid]
            return found[::-1] if len(found) >= at_least else None

        return await wait_until(listed, timeout=timeout, what=f"{at_least} attempts of {uid} to {webhook_id}")

    async def events(self, uid: str) -> list[dict]:
        async with self.http.get(f"{self.base}/api/v1/tasks/{uid}/events") as response:
            return await response.json() if response.status == 200 else []

    async def consumers(self) -> int:
        return (await self.nc.jetstream().account_info()).consumers

    async def wait_notifier_ready(self, log: str) -> None:
        """Until the notifier writing ``log`` has loaded what is owed and consumes."""
        path = self.root / log

        async def started():
            return path.exists() and "notifier_started" in path.read_text(errors="replace")

        await wait_until(started, timeout=60, interval=0.1, what=f"the notifier ({log})")


async def start_rig(root: Path, **env: str) -> Rig:
    nats = NatsServer(root / "jetstream").start()
    port = free_port()
    env = service_env(NATS_URL=nats.url, AEROVISION_WEBHOOK_SCHEDULE=",".join(map(str, SCHEDULE)),
                      AEROVISION_WEBHOOK_TIMEOUT=str(ATTEMPT_TIMEOUT), **env)
    services = {
        name: Service(args, env, root / f"{name}.log").start()
        for name, args in (("projector", ["projector"]), ("notifier", ["notifier"]),
                           ("gateway", ["gateway", "--port", str(port)]))
    }
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    base = f"http://127.0.0.1:{port}"

    async def healthy():
        try:
            async with http.get(f"{base}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, timeout=60, interval=0.1, what="the gateway")
    rig = Rig(base, nats, await nats_layout.connect(nats.url, "webhook-tests"), http, services, root, env)
    await rig.wait_notifier_ready("notifier.log")
    return rig


async def stop_rig(rig: Rig) -> dict[str, int | None]:
    await rig.http.close()
    await rig.nc.drain()
    codes = {name: service.stop() for name, service in rig.services.items()}
    rig.nats.stop()
    return codes


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP receiver (aiohttp). ``respond(n, body)`` → (status, headers) for its n-th request."""

    respond: Callable[[int, bytes], tuple[int, dict[str, str]]] = lambda n, body: (200, {})
    received: list[Received] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self, path: str = "/callback") -> "Receiver":
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            self.received.append(Received(time.monotonic(), {k.lower(): v for k, v in request.headers.items()}, body))
            status, headers = self.respond(len(self.received), body)
            return web.Response(status=status, headers=headers)

        app = web.Application()
        app.router.add_post(path, handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{path}"
        return self

    def of(self, uid: str) -> list[Received]:
        return [r for r in self.received if f'"uid":"{uid}"'.encode() in r.body]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class RawServer:
    """A TCP server that is not an HTTP receiver: it hangs (accepts, reads, never answers) or
    answers ``greeting`` (e.g. a NATS INFO banner) and then waits."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def start(self) -> "RawServer":
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            try:
                if self.greeting:
                    writer.write(self.greeting)
                    await writer.drain()
                await self._release.wait()  # until the client gives up (or the test ends)
            except ConnectionError:
                pass  # the client gave up and reset the connection: that is what it is for
            finally:
                self.open -= 1
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

