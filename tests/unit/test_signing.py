"""Webhook signatures: the original's X-Webhook-Signature and Standard Webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac

from contracts.events import TaskFinished
from services.notifier.signing import headers_for, payload_for, standard_signature, verify_legacy


def test_original_verification_snippet_accepts_our_signature():
    body = b'{"uid":"x","status":"done"}'
    headers = headers_for("my-secret", "msg_x", 1700000000, body)

    def verify_signature(body: bytes, secret: str, signature: str) -> bool:  # from the original docs
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    assert verify_signature(body, "my-secret", headers["X-Webhook-Signature"])
    assert verify_legacy("my-secret", body, headers["X-Webhook-Signature"])
    assert not verify_signature(body + b" ", "my-secret", headers["X-Webhook-Signature"])


def test_standard_webhooks_signature():
    key = base64.b64encode(b"0123456789abcdef").decode()
    body = b"{}"
    sig = standard_signature(f"whsec_{key}", "msg_1", 1700000000, body)
    expected = base64.b64encode(hmac.new(b"0123456789abcdef", b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sig == f"v1,{expected}"


def test_no_secret_no_signature():
    headers = headers_for(None, "msg_1", 1, b"{}")
    assert "X-Webhook-Signature" not in headers and "webhook-signature" not in headers
    assert headers["webhook-id"] == "msg_1"


def test_payload_shape():
    done = TaskFinished(uid="u", tool="template", status="done", result_files=["r"], result_data={"a": 1})
    assert payload_for(done) == b'{"uid":"u","status":"done","tool":"template","result_files":["r"],"result_data":{"a":1}}'
    failed = TaskFinished(uid="u", tool="template", status="error", error="why")
    assert b'"error":"why"' in payload_for(failed)

