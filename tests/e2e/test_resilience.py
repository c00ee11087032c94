"""Nothing accepted is lost: restarts, a matcher killed mid-task, inputs that fail every time."""

from __future__ import annotations

import json
import os
import signal
import uuid

import cv2
import pytest

from tests.harness import DATA, Api, NatsServer, Service, free_port, service_env, start_up, wait_for
from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def slow_pair():
    """A 4000×3000 colour photo and a 200×200 crop: several seconds of matching per attempt."""
    photo = cv2.resize(cv2.imread(str(DATA / "messi5.jpg")), (4000, 3000))
    return encode(photo, ".jpg"), encode(photo[1000:1200, 2000:2200])


def test_restart_keeps_tasks_files_and_queue(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    up = start_up(data, port, tmp_path / "up1.log", AEROVISION_MATCHER_WORKERS="1")
    api = Api(f"http://127.0.0.1:{port}")
    template = textured_template()
    small = (encode(scene_with_pastes(template)), encode(template))
    first = api.wait_done(api.submit_template(*small).json()["uid"])
    big = encode(cv2.resize(scene_with_pastes(template), (1920, 1440)))
    queued = [api.submit_template(big, small[1], use_grayscale="false").json()["uid"] for _ in range(12)]
    still_waiting = [uid for uid in queued if api.task(uid)["status"] == "queued"]
    assert up.stop() == 0
    assert still_waiting, "the test needs tasks still queued when the system stops"

    port = free_port()
    up = start_up(data, port, tmp_path / "up2.log", AEROVISION_MATCHER_WORKERS="1")
    try:
        api = Api(f"http://127.0.0.1:{port}")
        again = api.task(first["uid"])
        assert again == first
        for path in first["input_files"] + first["result_files"]:
            assert api.http.get(f"{api.base}/{path}").status_code == 200
        for uid in queued:
            assert api.wait_done(uid, timeout=120)["status"] == "done"
        listed = api.http.get(f"{api.base}/api/v1/tasks", params={"limit": 200}).json()
        assert listed["total"] == 13
    finally:
        assert up.stop() == 0


@pytest.fixture(scope="module")
def split_system(tmp_path_factory):
    """NATS, projector and gateway as separate processes; each test brings its own matchers."""
    root = tmp_path_factory.mktemp("split")
    nats = NatsServer(root / "jetstream").start()
    port = free_port()
    env = service_env(NATS_URL=nats.url, AEROVISION_ACK_WAIT="3", AEROVISION_RETRY_DELAY="0.2")
    services = [
        Service(["projector"], env, root / "projector.log").start(),
        Service(["gateway", "--port", str(port)], env, root / "gateway.log").start(),
    ]
    api = Api(f"http://127.0.0.1:{port}")
    wait_for(api.healthy, timeout=60, what="gateway")
    yield api, env, root
    for service in services:
        service.stop()
    nats.stop()


def _slow_task_in_progress(split_system, slow_pair, log_name: str) -> tuple[Service, str]:
    """A matcher, and the uid of a slow task it is working on."""
    api, env, root = split_system
    matcher = Service(["matcher"], env, root / log_name).start()
    uid = api.submit_template(*slow_pair, use_grayscale="false").json()["uid"]
    wait_for(lambda: api.task(uid)["status"] == "processing", timeout=60, what="the task to start")
    return matcher, uid


def test_matcher_killed_mid_task_is_redelivered(split_system, slow_pair):
    api, env, root = split_system
    doomed, uid = _slow_task_in_progress(split_system, slow_pair, "matcher-a.log")
    doomed.kill()  # SIGKILL: no goodbye, no nak; the server redelivers after ack_wait
    survivor = Service(["matcher"], env, root / "matcher-b.log").start()
    try:
        task = api.wait_done(uid, timeout=120)
        assert task["status"] == "done", task["error"]
        assert task["attempts"] == 2
        assert (task["result_data"]["matches"][0]["x"], task["result_data"]["matches"][0]["y"]) == (2000, 1000)
        events = api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
        assert [e["type"] for e in events] == ["task.submitted", "task.started", "task.started", "task.finished"]
    finally:
        survivor.stop()


def test_a_chain_retried_after_a_crash_resumes_after_its_recorded_steps(split_system, slow_pair):
    api, env, root = split_system
    doomed = Service(["matcher"], env, root / "matcher-chain-a.log").start()
    # Both steps take seconds on the 12 MP colour photo; the JPEG'd photo never scores a perfect 1.0.
    steps = [{"tool": "template", "params": {"threshold": 1.0, "use_grayscale": False}},
             {"tool": "template", "params": {"threshold": 0.5, "use_grayscale": False}}]
    files = {"image": ("photo.jpg", slow_pair[0]), "template": ("crop.png", slow_pair[1])}
    uid = api.http.post(f"{api.base}/api/v1/match/chain", files=files, data={"steps": json.dumps(steps)}).json()["uid"]
    wait_for(lambda: api.task(uid)["result_data"].get("completed_step") == 1, timeout=120,
             what="the first step to be recorded")
    doomed.kill()  # in the middle of step 2
    survivor = Service(["matcher"], env, root / "matcher-chain-b.log").start()
    try:
        task = api.wait_done(uid, timeout=120)
        assert task["status"] == "done" and task["attempts"] == 2, task
        assert (task["result_data"]["chain_result"], task["result_data"]["completed_step"]) == ("found", 2)
        events = api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
        assert [(e["type"], e.get("step", {}).get("step")) for e in events] == [
            ("task.submitted", None), ("task.started", None), ("task.step_completed", 1),
            ("task.started", None), ("task.step_completed", 2), ("task.finished", None)]
        lines = [json.loads(line) for line in (root / "matcher-chain-b.log").read_text().splitlines()
                 if line.startswith("{")]
        resumed = [line for line in lines if line.get("event") == "chain_resumed"]
        assert [(line["uid"], line["after_step"]) for line in resumed] == [(uid, 1)]  # step 1 was not run again
    finally:
        survivor.stop()


def test_graceful_stop_finishes_or_hands_back_the_task(split_system, slow_pair):
    api, env, root = split_system
    first, uid = _slow_task_in_progress(split_system, slow_pair, "matcher-c.log")
    first.signal(signal.SIGTERM)  # to the whole process group, workers included, as systemd does
    assert first.proc.wait(timeout=30) == 0
    second = Service(["matcher"], env, root / "matcher-d.log").start()
    try:
        task = api.wait_done(uid, timeout=120)
        assert task["status"] == "done"
        # Finished within the stop's grace period, or handed back and run once more; a stop is
        # not a crash, so it never costs more than that attempt.
        assert task["attempts"] <= 2
    finally:
        second.stop()


def test_input_that_fails_every_time_ends_in_error(split_system, slow_pair):
    api, env, root = split_system
    # A deadline shorter than the work: every attempt is killed, like a hang in OpenCV.
    impatient = Service(["matcher"], {**env, "AEROVISION_TASK_TIMEOUT": "0.5"}, root / "matcher-e.log").start()
    try:
        uid = api.submit_template(*slow_pair, use_grayscale="false").json()["uid"]
        task = api.wait_done(uid, timeout=120)
        assert task["status"] == "error"
        assert "3 attempts" in task["error"] and "too long" in task["error"]
        ok = api.submit_template(*slow_pair[:1], slow_pair[1], use_grayscale="true", threshold="0.5")
        assert ok.status_code == 201  # the matcher is still alive and taking work
    finally:
        impatient.stop()


def _children(pid: int, name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            comm, ppid = stat[stat.index("(") + 1: stat.rindex(")")], int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == pid and comm.startswith(name):
                found.append(int(entry))
    return found


def test_nats_and_services_killed_lose_nothing(tmp_path):
    port = free_port()
    up = start_up(tmp_path / "data", port, tmp_path / "up.log")
    api = Api(f"http://127.0.0.1:{port}")
    template = textured_template()
    pair = (encode(scene_with_pastes(template)), encode(template))
    try:
        before = [api.submit_template(*pair).json()["uid"] for _ in range(5)]
        first = api.wait_done(before[0])
        nats_pids = _children(up.proc.pid, "nats-server")
        assert nats_pids, "aerovision up runs its own nats-server"
        os.kill(nats_pids[0], signal.SIGKILL)
        # Accepted while NATS restarts: the gateway rides it out instead of failing the request.
        during = [api.submit_template(*pair) for _ in range(3)]
        assert [r.status_code for r in during] == [201] * 3
        # Every other kind of request rides it out too (none of them may answer 5xx).
        os.kill(_children(up.proc.pid, "nats-server")[0], signal.SIGKILL)
        expected = {
            "/api/v1/settings/template": 200, "/api/v1/tasks?limit=5": 200, f"/api/v1/tasks/{uuid.uuid4()}": 404,
            f"/api/v1/tasks/{before[0]}/events": 200, "/" + first["result_files"][0]: 200,
            "/" + first["input_files"][0]: 200,
        }
        assert {path: api.http.get(api.base + path, timeout=30).status_code for path in expected} == expected
        for name in ("python",):  # every service process: gateway, matcher, projector, notifier
            for pid in _children(up.proc.pid, name):
                os.kill(pid, signal.SIGKILL)
        wait_for(api.healthy, timeout=60, interval=0.2, what="the gateway to come back")
        for uid in before + [r.json()["uid"] for r in during]:
            task = api.wait_done(uid, timeout=120)
            assert task["status"] == "done" and len(task["result_data"]["matches"]) == 3
    finally:
        assert up.stop() == 0
