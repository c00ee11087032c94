"""Webhook delivery through the real services: isolation per receiver, schedules per (task,
webhook), what attempt records may say, restarts, the deliveries log and resends."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid

import msgspec
import pytest

from contracts import names
from contracts.api import WebhookRecord
from contracts.events import TaskSubmitted
from infra import nats_layout
from tests.e2e.receivers.original import ExpressReceiver, PythonReceiver
from tests.e2e.webhook_rig import ATTEMPT_TIMEOUT, SCHEDULE, RawServer, Receiver, Rig, start_rig, stop_rig
from tests.harness import Service, wait_for, wait_until

NATS_INFO = (b'INFO {"server_id":"NDXSECRETSERVERID","server_name":"secret-name","version":"2.15.1",'
             b'"go":"go1.24","host":"0.0.0.0","port":4222,"max_payload":1048576}\r\n')


@pytest.fixture(scope="module")
async def rig(tmp_path_factory):
    rig = await start_rig(tmp_path_factory.mktemp("webhooks"))
    yield rig
    codes = await stop_rig(rig)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done: -15 is the gateway's clean stop.
    assert codes.pop("gateway") in (0, -15) and all(code == 0 for code in codes.values()), codes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_hanging_receiver_delays_nobody_else(rig: Rig):
    hanging, healthy = await RawServer().start(), await Receiver().start()
    hooks = [await rig.register(hanging.url), await rig.register(healthy.url)]
    try:
        # More tasks than a receiver may hold attempts for (4): before, 32 hung deliveries held
        # every slot of the notifier, and the healthy receiver waited for the timeouts.
        published = {}
        for _ in range(40):
            uid = await rig.finish()
            published[uid] = time.monotonic()

        async def all_delivered():
            return all(healthy.of(uid) for uid in published)

        await wait_until(all_delivered, timeout=10, what="the healthy receiver's deliveries")
        delays = sorted(healthy.of(uid)[0].at - at for uid, at in published.items())
        assert delays[-1] < 1.0, f"p50 {delays[len(delays) // 2]:.3f} s, max {delays[-1]:.3f} s"
        assert hanging.max_open <= 4  # the hanging one holds its own slots, no more

        async def hanging_attempt():
            return (await rig.deliveries(hooks[0]["id"]))["deliveries"]

        first = (await wait_until(hanging_attempt, timeout=ATTEMPT_TIMEOUT + 10, what="a timed-out attempt"))[-1]
        assert first["delivered"] is False and first["error"] == f"timeout after {ATTEMPT_TIMEOUT:g} s"
        assert first["status_code"] is None and first["duration_ms"] >= ATTEMPT_TIMEOUT * 1000 - 50
    finally:
        for hook in hooks:
            await rig.unregister(hook["id"])
        await hanging.close()
        await healthy.close()


async def test_each_task_and_webhook_keeps_its_own_schedule(rig: Rig):
    failing = await Receiver(respond=lambda n, body: (500, {})).start()
    # Asks for 2 s with Retry-After: another webhook retrying after 0.4 s must not drag it along.
    busy = await Receiver(respond=lambda n, body: (429, {"Retry-After": "2"}) if n == 1 else (200, {})).start()
    healthy = await Receiver().start()
    refused_url = f"http://127.0.0.1:{_closed_port()}/hook"
    hooks = {name: await rig.register(url) for name, url in
             (("failing", failing.url), ("busy", busy.url), ("healthy", healthy.url), ("refused", refused_url))}
    try:
        uid = await rig.finish()
        other = await rig.finish()
        attempts = await rig.attempts_of(hooks["failing"]["id"], uid, at_least=len(SCHEDULE) + 1)
        refused = await rig.attempts_of(hooks["refused"]["id"], uid, at_least=len(SCHEDULE) + 1)
        busy_attempts = await rig.attempts_of(hooks["busy"]["id"], uid, at_least=2)

        arrivals = [r.at for r in failing.of(uid)]
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        assert len(arrivals) == len(SCHEDULE) + 1, gaps  # then given up
        for gap, delay in zip(gaps, SCHEDULE):
            assert delay - 0.05 <= gap <= delay + 1.0, (gaps, SCHEDULE)  # never early; late only by load
        assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
        assert {a["error"] for a in attempts} == {"HTTP 500"} and {a["status_code"] for a in attempts} == {500}
        assert [a["error"] for a in refused] == ["connection refused"] * 4
        busy_arrivals = [r.at for r in busy.of(uid)]
        assert len(busy_arrivals) == 2 and busy_arrivals[1] - busy_arrivals[0] >= 2.0 - 0.05
        assert [(a["status_code"], a["delivered"]) for a in busy_attempts] == [(429, False), (200, True)]
        assert len(healthy.of(uid)) == 1 and len(healthy.of(other)) == 1
        # The second task's schedule is its own too.
        assert len(await rig.attempts_of(hooks["failing"]["id"], other, at_least=4)) == 4
    finally:
        for hook in hooks.values():
            await rig.unregister(hook["id"])
        for receiver in (failing, busy, healthy):
            await receiver.close()


async def test_attempt_records_never_carry_the_targets_reply(rig: Rig):
    banner = await RawServer(greeting=NATS_INFO).start()
    hooks = [await rig.register(banner.url), await rig.register(f"http://127.0.0.1:{rig.nats.port}/")]
    try:
        uid = await rig.finish()
        for hook in hooks:
            first = (await rig.attempts_of(hook["id"], uid))[0]
            assert first["delivered"] is False and first["status_code"] is None
            assert first["error"] in ("invalid HTTP response", "connection closed without a response")
        shown = json.dumps(await rig.events(uid)) + json.dumps([await rig.deliveries(h["id"]) for h in hooks])
        for secret in ("INFO", "server_id", "NDXSECRETSERVERID", "2.15.1", "max_payload", "nats"):
            assert secret not in shown
    finally:
        for hook in hooks:
            await rig.unregister(hook["id"])
        await banner.close()


async def test_credentials_are_used_but_never_shown(rig: Rig):
    receiver = await Receiver().start()
    with_credentials = receiver.url.replace("http://", "http://alice:s%40cret@")
    hook = await rig.register(with_credentials, secret="k")
    try:
        assert hook["url"] == receiver.url
        async with rig.http.get(f"{rig.base}/api/v1/webhooks") as response:
            listed = [h for h in await response.json() if h["id"] == hook["id"]]
        assert listed == [hook]
        uid = await rig.finish()
        attempt = (await rig.attempts_of(hook["id"], uid))[0]
        assert attempt["delivered"] is True
        sent = receiver.of(uid)[0].headers
        assert sent["authorization"] == "Basic " + base64.b64encode(b"alice:s@cret").decode()
        events = [e for e in await rig.events(uid) if e["type"] == "webhook.attempted"]
        # The stream carries only where the receiver is (scheme, host, port): no path, no credentials.
        host = receiver.url.split("/")[2]
        assert events and all(e["endpoint"] == f"http://{host}" and "url" not in e for e in events)
        assert "alice" not in json.dumps(events) and "cret" not in json.dumps(events)
    finally:
        await rig.unregister(hook["id"])
        await receiver.close()


async def test_a_target_refused_at_delivery(rig: Rig):
    # A registration from before the rules (the gateway refuses it now): the notifier refuses too.
    record = WebhookRecord(id="wh_00000000000000a1", url="http://169.254.169.254/latest/meta-data/",
                           created_at="2000-01-01T00:00:00.000Z")
    webhooks = await nats_layout.open_kv(rig.nc.jetstream(), names.WEBHOOKS_BUCKET)
    await webhooks.put(record.id, msgspec.json.encode(record))
    try:
        uid = await rig.finish()
        first = (await rig.attempts_of(record.id, uid))[0]
        assert first["error"].startswith("target refused: a link-local address") and first["duration_ms"] < 100
    finally:
        await rig.unregister(record.id)


async def test_registration_limits_answer_fast_and_small(rig: Rig):
    cases = [
        ({"url": "https://example.com/" + "a" * 700_000}, ["body", "url"]),
        ({"url": "https://example.com/" + "a" * 2 * 1024 * 1024}, ["body", "url"]),
        ({"url": "https://example.com/", "secret": "s" * 2 * 1024 * 1024}, ["body", "secret"]),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, ["body", "url"]),
        ({"url": "https://example.com/\r\nX-Injected: 1"}, ["body", "url"]),
    ]
    for body, loc in cases:
        started = time.monotonic()
        async with rig.http.post(f"{rig.base}/api/v1/webhooks", json=body) as response:
            text = await response.read()
        assert time.monotonic() - started < 1.0
        assert response.status == 422 and len(text) < 1024, text[:300]
        detail = json.loads(text)["detail"]
        assert [d["loc"] for d in detail] == [loc] and set(detail[0]) == {"type", "loc", "msg", "input"}
    async with rig.http.post(f"{rig.base}/api/v1/webhooks", data=b"x" * (5 * 1024 * 1024),
                             headers={"Content-Type": "application/json"}) as response:
        assert response.status == 413 and len(await response.read()) < 1024
    # Ids that cannot exist never reach NATS (a 5,000-character one broke the connection for good).
    for bad in ("x" * 5000, "wh_" + "a" * 5000, "wh_a.b", "wh_*", "wh_>", "wh_0123456789abcdef%0a"):
        for method, path in (("DELETE", f"/{bad}"), ("GET", f"/{bad}/deliveries"),
                             ("POST", f"/{bad}/deliveries/d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f/resend")):
            started = time.monotonic()
            async with rig.http.request(method, f"{rig.base}/api/v1/webhooks{path}") as response:
                assert (response.status, await response.json()) == (404, {"detail": "Webhook not found"})
            assert time.monotonic() - started < 1.0
    async with rig.http.get(f"{rig.base}/healthz") as response:
        assert response.status == 200
    receiver = await Receiver().start()
    hook = await rig.register(receiver.url)  # still connected: registrations work
    await rig.unregister(hook["id"])
    await receiver.close()


async def test_listing_webhooks_creates_no_consumers(rig: Rig):
    receiver = await Receiver().start()
    hook = await rig.register(receiver.url)
    try:
        before = await rig.consumers()
        for _ in range(1200):
            async with rig.http.get(f"{rig.base}/api/v1/webhooks") as response:
                assert response.status == 200
                listed = await response.json()
        assert hook in listed
        assert await rig.consumers() == before
    finally:
        await rig.unregister(hook["id"])
        await receiver.close()


async def test_deliveries_are_listed_newest_first_and_can_be_resent(rig: Rig):
    receiver = await Receiver().start()
    hook = await rig.register(receiver.url, secret="resend-secret")
    try:
        uids = [await rig.finish() for _ in range(130)]  # more than one page (100) of attempts

        async def all_listed():
            return (await rig.deliveries(hook["id"]))["total"] == 130

        await wait_until(all_listed, timeout=30, what="130 attempts listed")
        everything = (await rig.deliveries(hook["id"], limit=200))["deliveries"]
        assert sorted(d["uid"] for d in everything) == sorted(uids)
        assert all(d["delivered"] and d["attempt"] == 1 and d["status_code"] == 200 for d in everything)
        # Newest first: the reverse of the order the attempts were recorded on the event stream.
        recorded = await nats_layout.direct_get_batch(rig.nc, names.EVENT_STREAM,
                                                      names.kind_filter(names.KIND_WEBHOOK_ATTEMPTED), 10_000)
        mine = [(e["uid"], e["attempt"]) for e in map(json.loads, (m.data for m in recorded))
                if e["webhook_id"] == hook["id"]]
        assert [(d["uid"], d["attempt"]) for d in everything] == mine[::-1]
        pages = []
        for offset in range(0, 130, 30):
            page = await rig.deliveries(hook["id"], offset=offset, limit=30)
            assert page["total"] == 130
            pages.extend(page["deliveries"])
        assert pages == everything
        assert (await rig.deliveries(hook["id"], offset=25, limit=10))["deliveries"] == everything[25:35]
        assert (await rig.deliveries(hook["id"], offset=130))["deliveries"] == []

        chosen = uids[7]
        first = receiver.of(chosen)[0]
        async with rig.http.post(f"{rig.base}/api/v1/webhooks/{hook['id']}/deliveries/{chosen}/resend") as response:
            assert response.status == 202
            assert await response.json() == {"webhook_id": hook["id"], "uid": chosen, "status": "scheduled"}
        again = await rig.attempts_of(hook["id"], chosen, at_least=2)
        assert [(a["attempt"], a["delivered"]) for a in again] == [(1, True), (2, True)]
        second = receiver.of(chosen)[1]
        assert second.body == first.body and second.headers["webhook-id"] == first.headers["webhook-id"] == f"msg_{chosen}"
        assert second.headers["x-webhook-signature"] == first.headers["x-webhook-signature"]
        latest = (await rig.deliveries(hook["id"], limit=1))
        assert latest["total"] == 131 and latest["deliveries"][0]["uid"] == chosen

        # A task that ended before the webhook existed was never owed to it; a resend sends it.
        late = await Receiver().start()
        late_hook = await rig.register(late.url)
        async with rig.http.post(f"{rig.base}/api/v1/webhooks/{late_hook['id']}/deliveries/{uids[0]}/resend") as r:
            assert r.status == 202
        assert [a["attempt"] for a in await rig.attempts_of(late_hook["id"], uids[0])] == [1]
        assert len(late.of(uids[0])) == 1 and len(late.received) == 1
        await rig.unregister(late_hook["id"])
        await late.close()
    finally:
        await rig.unregister(hook["id"])
        await receiver.close()


async def test_resend_answers(rig: Rig):
    receiver = await Receiver().start()
    hook = await rig.register(receiver.url)
    base = f"{rig.base}/api/v1/webhooks"
    try:
        unfinished = str(uuid.uuid4())
        await nats_layout.publish_event(rig.nc.jetstream(), TaskSubmitted(uid=unfinished, tool="template", params={},
                                                                          input_files=[]))
        expected = {
            f"{base}/wh_0123456789abcdef/deliveries/{unfinished}/resend": (404, "Webhook not found"),
            f"{base}/{hook['id']}/deliveries/d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f/resend": (404, "Task not found"),
            f"{base}/{hook['id']}/deliveries/not-a-uid/resend": (404, "Task not found"),
            f"{base}/{hook['id']}/deliveries/{'9' * 5000}/resend": (404, "Task not found"),
            f"{base}/{hook['id']}/deliveries/{unfinished}/resend":
                (409, "Task has not finished yet; its notification is sent when it ends"),
        }
        for url, (status, detail) in expected.items():
            async with rig.http.post(url) as response:
                assert (response.status, (await response.json())["detail"]) == (status, detail), url[:120]
        for query in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}):
            async with rig.http.get(f"{base}/{hook['id']}/deliveries", params=query) as response:
                assert response.status == 422 and (await response.json())["detail"][0]["loc"][0] == "query"
        async with rig.http.get(f"{base}/wh_0123456789abcdef/deliveries") as response:
            assert response.status == 404
    finally:
        await rig.unregister(hook["id"])
        await receiver.close()


async def test_a_notifier_restart_resumes_schedules_and_sends_nothing_twice(rig: Rig):
    steady = await Receiver().start()
    flaky = await Receiver(respond=lambda n, body: (500, {}) if n <= 2 else (200, {})).start()
    hooks = [await rig.register(steady.url), await rig.register(flaky.url)]
    try:
        uid = await rig.finish()

        await rig.attempts_of(hooks[0]["id"], uid)
        await rig.attempts_of(hooks[1]["id"], uid)  # the first attempts are made and recorded
        rig.services["notifier"].kill()  # SIGKILL: mid-schedule, perhaps mid-attempt
        rig.services["notifier"] = Service(["notifier"], rig.env, rig.root / "notifier-2.log").start()
        await rig.wait_notifier_ready("notifier-2.log")
        attempts = await rig.attempts_of(hooks[1]["id"], uid, at_least=3)
        assert attempts[-1]["delivered"] is True
        numbers = [a["attempt"] for a in attempts]
        assert numbers == sorted(set(numbers))  # never two records of one attempt
        after = await rig.finish()  # the restarted notifier is at work...

        async def delivered_after():
            return steady.of(after)

        await wait_until(delivered_after, what="a delivery after the restart")
        assert len(steady.of(uid)) == 1  # ...and did not send the delivered one again
        assert len(flaky.of(uid)) == len(attempts) == 3
    finally:
        for hook in hooks:
            await rig.unregister(hook["id"])
        await steady.close()
        await flaky.close()


async def test_the_originals_receivers_verify_floats_large_numbers_and_unicode(rig: Rig):
    secret = "sécret-ключ"
    express, python = ExpressReceiver(secret), PythonReceiver(secret)
    hooks = [await rig.register(r.url, secret=secret) for r in (express, python)]
    try:
        # Typed as a template result: floats in the scores, large integers in the counts, text in
        # the method (index-like keys are checked against node in tests/unit/test_canonical.py).
        data = {"best_score": 1.0, "matches_found": 2**60 + 1, "filtered_matches": 2**53 - 1,
                "method": "Ünïcødé 中文 😀 \u2028 \"q\" \\ \x01",
                "matches": [{"x": 1, "y": 2, "w": 3, "h": 4, "score": s} for s in (0.99999, 0.5, 1e-7, 100.0, -0.0, 0.1 + 0.2)]}
        uids = [await rig.finish(result_data=data),
                await rig.finish(status="error", result_data={}, error="could not decode 'image': ошибка ✗ 1.0")]

        def heard():
            return all({v["uid"] for v in r.verdicts} >= set(uids) for r in (express, python))

        await asyncio.to_thread(wait_for, heard, 15, 0.05, "both receivers")
        for receiver in (express, python):
            mine = [v for v in receiver.verdicts if v["uid"] in uids]
            assert len(mine) == 2 and all(v["verified"] for v in mine), mine
        for uid in uids:
            assert [a["delivered"] for a in await rig.attempts_of(hooks[0]["id"], uid)] == [True]
    finally:
        for hook in hooks:
            await rig.unregister(hook["id"])
        express.close()
        python.close()
