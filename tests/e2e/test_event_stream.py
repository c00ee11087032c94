"""The event stream as a product, against a running ``aerovision up``: the URL it prints, the
``aerovision events`` command finding it alone, the docs' plain nats-py subscriber, and the
AsyncAPI document the gateway serves."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, Api, free_port, service_env, start_up, wait_for
from tests.images import encode, scene_with_pastes, textured_template

pytestmark = pytest.mark.slow


class System:
    def __init__(self, data: Path, api: Api, log: Path) -> None:
        self.data, self.api, self.log = data, api, log

    @property
    def nats_url(self) -> str:
        return json.loads((self.data / "runtime.json").read_text())["nats_url"]

    def run_task(self) -> str:
        template = textured_template()
        response = self.api.submit_template(encode(scene_with_pastes(template)), encode(template))
        assert response.status_code == 201, response.text
        uid = response.json()["uid"]
        self.api.wait_done(uid)
        return uid

    def aerovision(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """An aerovision command as a user runs it on this machine (no NATS_URL in its environment)."""
        return subprocess.run([sys.executable, "-m", "aerovision", *args], env=service_env(), cwd=ROOT,
                              capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def stream_system(tmp_path_factory):
    home = tmp_path_factory.mktemp("event-stream")
    port = free_port()
    up = start_up(home / "data", port, home / "up.log")
    yield System(home / "data", Api(f"http://127.0.0.1:{port}"), home / "up.log")
    assert up.stop() == 0
    assert not (home / "data" / "runtime.json").exists()  # withdrawn on a clean stop


class Lines:
    """A process's stdout as JSON lines, read on a thread so a silent process cannot hang a test."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(line) for line in proc.stdout], daemon=True).start()

    def next(self, timeout: float = 30) -> dict:
        try:
            return json.loads(self._queue.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no line within {timeout:.0f} s") from None


def _lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def test_up_prints_the_nats_url_and_leaves_it_where_tools_find_it(stream_system):
    url = stream_system.nats_url
    assert url.startswith("nats://127.0.0.1:")
    assert f"NATS (for event subscribers): {url}" in stream_system.log.read_text()


def test_events_prints_the_log_as_json_lines_and_finds_the_system_alone(stream_system):
    uid = stream_system.run_task()
    data = ["--data", str(stream_system.data)]
    everything = stream_system.aerovision("events", *data)
    assert everything.returncode == 0, everything.stderr.decode()[-2000:]
    assert {(e["type"], e["uid"]) for e in _lines(everything.stdout)} >= {("task.submitted", uid), ("task.finished", uid)}

    one = _lines(stream_system.aerovision("events", "--task", uid, *data).stdout)
    assert [e["type"] for e in one] == ["task.submitted", "task.started", "task.finished"]
    assert {e["uid"] for e in one} == {uid}
    finished = _lines(stream_system.aerovision("events", "--type", "task.finished", "--since", "10m", *data).stdout)
    assert uid in {e["uid"] for e in finished} and {e["type"] for e in finished} == {"task.finished"}
    assert stream_system.aerovision("events", "--since", "1m", "--task", str(uuid.uuid4()), *data).stdout == b""

    bad = stream_system.aerovision("events", "--type", "task.teleported", *data)
    assert bad.returncode == 2 and b"unknown event type" in bad.stderr
    nowhere = stream_system.aerovision("events", "--data", str(stream_system.data / "nothing-here"))
    assert nowhere.returncode == 2 and b"no running AeroVision found" in nowhere.stderr


def test_events_follow_prints_new_events_and_leaves_no_consumer_on_ctrl_c(stream_system):
    follower = subprocess.Popen([sys.executable, "-m", "aerovision", "events", "--follow", "--type", "finished",
                                 "--since", "1s", "--data", str(stream_system.data)],
                                env=service_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _tail_consumers(stream_system.nats_url), timeout=20, what="the follower's consumer")
        uid = stream_system.run_task()
        line = Lines(follower).next()
        assert (line["type"], line["uid"], line["status"]) == ("task.finished", uid, "done")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=15) == 0, follower.stderr.read().decode()[-2000:]
    assert _tail_consumers(stream_system.nats_url) == []


def _tail_consumers(url: str) -> list[str]:
    async def names() -> list[str]:
        import nats

        nc = await nats.connect(url)
        try:
            return [c.name for c in await nc.jetstream().consumers_info("AEROVISION_EVENTS") if c.name.startswith("tail-")]
        finally:
            await nc.close()

    return asyncio.run(names())


def test_the_docs_subscriber_follows_finished_tasks(stream_system):
    uid = stream_system.run_task()
    name = f"docs-test-{uuid.uuid4().hex[:8]}"
    script = ROOT / "docs" / "subscriber.py"
    # It imports nothing of AeroVision's: it must run from the docs folder with nats-py alone.
    assert "aerovision" not in {line.split()[1].split(".")[0] for line in script.read_text().splitlines()
                                if line.startswith(("import ", "from "))}
    env = {**service_env(), "AEROVISION_DATA": str(stream_system.data)}
    follower = subprocess.Popen([sys.executable, str(script), "--from-start", "--name", name], env=env,
                                cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = Lines(follower)
    try:
        seen = [lines.next()]
        while seen[-1]["uid"] != uid:
            seen.append(lines.next())
        later = stream_system.run_task()  # and what finishes while it runs
        while lines.next()["uid"] != later:
            pass
    finally:
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=15) == 0, follower.stderr.read().decode()[-2000:]
    assert seen[-1]["status"] == "done" and seen[-1]["cloudevent_type"] == "io.aerovision.task.finished.v1"


def test_the_gateway_serves_the_documented_asyncapi(stream_system):
    served = requests.get(f"{stream_system.api.base}/schema/asyncapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
    assert served.content == (ROOT / "docs" / "asyncapi.json").read_bytes()
