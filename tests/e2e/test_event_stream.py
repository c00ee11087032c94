"""The event stream as a product, against a running ``aerovision up``: the URL it prints, the
``aerovision events`` command finding it alone, the docs' plain nats-py subscriber, and the
AsyncAPI document the gateway serves."""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, Api, free_port, service_env, start_up, wait_for
from tests.images import encode, scene_with_pastes, textured_template

pytestmark = pytest.mark.slow
FILES_TTL = 4  # seconds: the files of this module's tasks expire quickly


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
    up = start_up(home / "data", port, home / "up.log", AEROVISION_EVENT_STREAMS="3",
                  AEROVISION_FILES_TTL=f"{FILES_TTL}s", AEROVISION_EVENTS_MAX_AGE="30d")
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


class Sse:
    """A Server-Sent Events client over real HTTP (as a browser's EventSource reads the stream),
    parsed on a thread so a silent stream fails a test instead of hanging it. Closing shuts the
    socket down, so the server sees the client go at once."""

    def __init__(self, url: str, **headers: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self._conn.request("GET", f"{parts.path}?{parts.query}", headers={"Accept": "text/event-stream", **headers})
        self.response = self._conn.getresponse()
        self.status = self.response.status
        self._queue: queue.Queue = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                raw = line.decode().rstrip("\r\n")
                if raw == "":
                    if "data" in fields:
                        self._queue.put(dict(fields))
                    fields.clear()
                elif not raw.startswith(":"):
                    name, _, value = raw.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # the test closed it (http.client then meets a half-read chunk or a dropped file)

    def next(self, timeout: float = 30) -> dict:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout:.0f} s") from None

    def close(self) -> None:
        if self._conn.sock is not None:
            self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


def test_sse_streams_a_tasks_events_and_resumes_after_last_event_id(stream_system):
    url = stream_system.nats_url
    baseline = _tail_consumers(url)
    uid = stream_system.run_task()
    address = f"{stream_system.api.base}/api/v1/tasks/{uid}/events/stream"
    first = Sse(address)
    try:
        assert first.response.getheader("content-type").startswith("text/event-stream")
        events = [first.next() for _ in range(3)]
    finally:
        first.close()
    assert [e["event"] for e in events] == ["task.submitted", "task.started", "task.finished"]
    assert [json.loads(e["data"])["uid"] for e in events] == [uid] * 3
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3  # stream sequences
    resumed = Sse(address, **{"Last-Event-ID": events[0]["id"]})
    try:
        again = [resumed.next() for _ in range(2)]
    finally:
        resumed.close()
    assert [(e["id"], e["data"]) for e in again] == [(e["id"], e["data"]) for e in events[1:]]
    wait_for(lambda: _tail_consumers(url) == baseline, timeout=10, what="the streams' consumers to go")
    missing = requests.get(f"{stream_system.api.base}/api/v1/tasks/{uuid.uuid4()}/events/stream", timeout=10)
    assert missing.status_code == 404
    bad = requests.get(address, headers={"Last-Event-ID": "yesterday"}, timeout=10)
    assert bad.status_code == 422
    both = requests.get(f"{stream_system.api.base}/api/v1/events/stream", params={"task": "a.b", "type": "teleported"},
                        timeout=10)
    assert both.status_code == 422 and [e["loc"] for e in both.json()["detail"]] == [["query", "task"], ["query", "type"]]


def test_sse_live_events_are_bounded_and_leave_no_consumers(stream_system):
    url = stream_system.nats_url
    baseline = _tail_consumers(url)
    address = f"{stream_system.api.base}/api/v1/events/stream?type=task.finished"
    streams = [Sse(address) for _ in range(3)]  # AEROVISION_EVENT_STREAMS=3
    try:
        assert [s.status for s in streams] == [200, 200, 200]
        refused = requests.get(address, timeout=10)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
        uid = stream_system.run_task()
        for stream in streams:
            event = stream.next()
            assert (event["event"], json.loads(event["data"])["uid"]) == ("task.finished", uid)
        assert len(_tail_consumers(url)) == len(baseline) + 3
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: _tail_consumers(url) == baseline, timeout=10, what="the streams' consumers to go")
    again = Sse(address)  # the slots are free again
    assert again.status == 200
    again.close()


def _stream_config(url: str, stream: str):
    async def config():
        import nats

        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().stream_info(stream)).config
        finally:
            await nc.close()

    return asyncio.run(config())


def test_retention_is_what_the_gateway_was_told_whatever_the_other_services_declared(stream_system):
    events = _stream_config(stream_system.nats_url, "AEROVISION_EVENTS")
    assert (str(getattr(events.retention, "value", events.retention)), events.max_age, events.max_bytes) == \
        ("limits", 30 * 86400, -1)
    files = _stream_config(stream_system.nats_url, "OBJ_aerovision-files")
    assert files.max_age == FILES_TTL


def test_a_task_whose_files_expired_still_answers_and_its_files_say_gone(stream_system):
    api = stream_system.api
    uid = stream_system.run_task()
    task = api.task(uid)
    files = [*task["input_files"], *task["thumbnails"], *task["result_files"]]
    assert len(files) == 6
    assert api.http.get(f"{api.base}/{task['result_files'][0]}", timeout=10).status_code == 200

    def gone():
        return all(api.http.get(f"{api.base}/{path}", timeout=10).status_code == 410 for path in files)

    wait_for(gone, timeout=FILES_TTL + 20, interval=0.5, what="the files to expire")
    answer = api.http.get(f"{api.base}/{task['result_files'][0]}", timeout=10)
    assert answer.json() == {"detail": f"This file has expired: files are kept for {FILES_TTL} seconds "
                                       "(AEROVISION_FILES_TTL)"}
    assert api.task(uid) == task  # the task itself is the log's: status, params and results stay
    never = api.http.get(f"{api.base}/results/{uid}/nothing.png", timeout=10)
    assert never.status_code == 404


def test_an_auditor_sees_when_each_default_changed_and_the_bucket_follows(stream_system):
    api = stream_system.api
    before = api.http.get(f"{api.base}/api/v1/settings/feature", timeout=10).json()["params"]
    changes = [{**before, "max_matches": 50}, {**before, "max_matches": 70, "detector": "ORB"}]
    for params in changes:
        assert api.http.put(f"{api.base}/api/v1/settings/feature", json=params, timeout=10).status_code == 200
    log = _lines(stream_system.aerovision("events", "--type", "settings.changed", "--since", "5m",
                                          "--data", str(stream_system.data)).stdout)
    feature = [e for e in log if e["tool"] == "feature"]
    assert [e["params"] for e in feature[-2:]] == changes
    assert feature[-2]["occurred_at"] <= feature[-1]["occurred_at"]
    # The settings bucket is their projection: a replay rebuilds it (and the task views) exactly.
    replayed = stream_system.aerovision("replay", "--json", "--data", str(stream_system.data))
    assert replayed.returncode == 0, replayed.stdout.decode()[-3000:] + replayed.stderr.decode()[-2000:]
    report = json.loads(replayed.stdout)
    assert report["differences"] == [] and report["events"] > 0
    assert api.http.get(f"{api.base}/api/v1/settings/feature", timeout=10).json()["params"] == changes[-1]


def test_webhook_registrations_are_on_the_log_without_their_secret_or_path(stream_system):
    api = stream_system.api
    url = "https://hooks.example.com:8443/in/t0ps3cret-path?token=abc"
    created = api.http.post(f"{api.base}/api/v1/webhooks", json={"url": url, "secret": "s3cret-key"}, timeout=10)
    assert created.status_code == 201, created.text
    hook = created.json()["id"]
    assert api.http.delete(f"{api.base}/api/v1/webhooks/{hook}", timeout=10).status_code == 204
    assert api.http.delete(f"{api.base}/api/v1/webhooks/{hook}", timeout=10).status_code == 404  # once
    out = stream_system.aerovision("events", "--since", "5m", "--data", str(stream_system.data)).stdout
    mine = [e for e in _lines(out) if e["uid"] == hook]
    assert [e["type"] for e in mine] == ["webhook.registered", "webhook.removed"]
    assert mine[0]["endpoint"] == "https://hooks.example.com:8443" and mine[0]["signed"] is True
    assert mine[0]["occurred_at"] == created.json()["created_at"] and {e["tool"] for e in mine} == {"webhooks"}
    assert "s3cret" not in out.decode() and "t0ps3cret" not in out.decode() and "token=abc" not in out.decode()
    # Not tasks: the projector leaves them alone, and a replay still rebuilds the views exactly.
    assert api.http.get(f"{api.base}/api/v1/tasks/{hook}", timeout=10).status_code in (404, 422)
