"""The original document's receivers — its Express handler (which signs JSON.stringify(req.body))
and its Python verify_signature — verify every real delivery: template tasks that end done, with
floats such as best_score 1.0, and tasks that end in error."""

from __future__ import annotations

import json

import pytest

from tests.e2e.receivers.original import ExpressReceiver, PythonReceiver
from tests.harness import wait_for
from tests.images import encode, scene_with_pastes, textured_template

SECRET = "my-secret-key"


@pytest.fixture
def receivers():
    express, python = ExpressReceiver(SECRET), PythonReceiver(SECRET)
    yield express, python
    express.close()
    python.close()


def _damaged(png: bytes) -> bytes:
    """A PNG whose header is valid (accepted at submission) but whose pixels are not (task error)."""
    data = bytearray(png)
    start = data.index(b"IDAT") + 100
    for i in range(start, start + 2000):
        data[i] ^= 0x5A
    return bytes(data)


def test_the_originals_receivers_verify_real_deliveries(api, receivers):
    express, python = receivers
    hooks = [api.http.post(f"{api.base}/api/v1/webhooks", json={"url": r.url, "secret": SECRET}).json()
             for r in (express, python)]
    try:
        template = textured_template()
        image, small = encode(scene_with_pastes(template)), encode(template)
        uids = [
            api.submit_template(image, small, method="TM_SQDIFF_NORMED").json()["uid"],  # best_score 1.0
            api.submit_template(image, small, threshold="0.3", method="TM_CCORR_NORMED").json()["uid"],
            api.submit_template(_damaged(image), small).json()["uid"],
        ]
        ends = [api.wait_done(uid) for uid in uids]
        assert [t["status"] for t in ends] == ["done", "done", "error"]
        assert ends[0]["result_data"]["best_score"] == 1.0

        def verdicts():
            heard = [{v["uid"] for v in r.verdicts} for r in (express, python)]
            return all(set(uids) <= h for h in heard)

        wait_for(verdicts, timeout=30, what="both receivers to hear of every task")
        for receiver in (express, python):
            mine = [v for v in receiver.verdicts if v["uid"] in uids]
            assert len(mine) == 3 and all(v["verified"] for v in mine), mine
        bodies = {json.loads(v["body"])["uid"]: v["body"] for v in python.verdicts if v["uid"] in uids}
        assert b'"best_score":1,' in bodies[uids[0]] or b'"best_score":1}' in bodies[uids[0]]
        failed = json.loads(bodies[uids[2]])
        assert failed["status"] == "error" and failed["error"].startswith("could not decode")
    finally:
        for hook in hooks:
            api.http.delete(f"{api.base}/api/v1/webhooks/{hook['id']}")
