"""Webhooks: registered, listed without secrets, signed deliveries, retries, deletion."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.harness import wait_for
from tests.images import encode, scene_with_pastes, textured_template
from tests.receivers import ThreadedReceiver


class Receiver(ThreadedReceiver):
    """A real HTTP endpoint that records what it receives and fails the first N requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.fail_left = fail_first
        super().__init__(self._respond)

    def _respond(self, headers, body: bytes) -> int:
        if self.fail_left > 0:
            self.fail_left -= 1
            return 500
        self.received.append(({k.lower(): v for k, v in headers.items()}, body))
        return 200


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def pair():
    template = textured_template()
    return encode(scene_with_pastes(template)), encode(template)


def _for(receiver: Receiver, uid: str) -> list[tuple[dict, bytes]]:
    return [(h, b) for h, b in receiver.received if json.loads(b)["uid"] == uid]


def test_signed_delivery_and_registration_lifecycle(api, pair, receiver):
    created = api.http.post(f"{api.base}/api/v1/webhooks", json={"url": receiver.url, "secret": "my-secret-key"})
    assert created.status_code == 201
    hook = created.json()
    assert set(hook) == {"id", "url", "created_at"} and hook["id"].startswith("wh_")
    listed = api.http.get(f"{api.base}/api/v1/webhooks").json()
    assert {"id": hook["id"], "url": receiver.url, "created_at": hook["created_at"]} in listed
    assert all("secret" not in h for h in listed)
    try:
        uid = api.wait_done(api.submit_template(*pair).json()["uid"])["uid"]
        headers, body = wait_for(lambda: _for(receiver, uid), timeout=30, what="the webhook")[0]
        payload = json.loads(body)
        assert payload["status"] == "done" and payload["tool"] == "template"
        assert payload["result_files"] == [f"results/{uid}/matches.png", f"results/{uid}/heatmap.png"]
        assert payload["result_data"]["matches_found"] == 3 and "error" not in payload
        expected = "sha256=" + hmac.new(b"my-secret-key", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, headers["x-webhook-signature"])
        assert headers["webhook-id"] == f"msg_{uid}" and headers["webhook-signature"].startswith("v1,")
        events = wait_for(lambda: [e for e in api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
                                   if e["type"] == "webhook.attempted"], timeout=10, what="the attempt event")
        assert events[0]["delivered"] is True and events[0]["status_code"] == 200
        assert "my-secret-key" not in json.dumps(events)
    finally:
        assert api.http.delete(f"{api.base}/api/v1/webhooks/{hook['id']}").status_code == 204
    assert hook["id"] not in [h["id"] for h in api.http.get(f"{api.base}/api/v1/webhooks").json()]
    assert len(_for(receiver, uid)) == 1  # delivered once, not again


def test_failing_receiver_is_retried(api, pair):
    flaky = Receiver(fail_first=2)
    hook = api.http.post(f"{api.base}/api/v1/webhooks", json={"url": flaky.url}).json()
    try:
        uid = api.wait_done(api.submit_template(*pair).json()["uid"])["uid"]
        headers, body = wait_for(lambda: _for(flaky, uid), timeout=30, what="the retried webhook")[0]
        assert "x-webhook-signature" not in headers  # no secret, no signature

        def attempts():
            events = api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
            found = [e for e in events if e["type"] == "webhook.attempted" and e["webhook_id"] == hook["id"]]
            return found if len(found) >= 3 else None

        assert [(e["attempt"], e["delivered"]) for e in wait_for(attempts, timeout=10, what="three attempts")] == [
            (1, False), (2, False), (3, True)]
    finally:
        api.http.delete(f"{api.base}/api/v1/webhooks/{hook['id']}")
        flaky.close()


def test_bad_registrations(api):
    assert api.http.post(f"{api.base}/api/v1/webhooks", json={"secret": "x"}).status_code == 422
    assert api.http.post(f"{api.base}/api/v1/webhooks", json={"url": "not a url"}).status_code == 422
    assert api.http.post(f"{api.base}/api/v1/webhooks", data=b"{", headers={"Content-Type": "application/json"}).status_code == 422
