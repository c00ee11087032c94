"""The notifier's pure core: the payload of a finished task and its signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

from contracts.api import WebhookPayload
from contracts.events import TaskFinished
from services.notifier import canonical

USER_AGENT = "AeroVision-Webhooks/1"


def payload_for(event: TaskFinished) -> bytes:
    """The JSON body POSTed for a finished task (``error`` only when it failed), serialised so that
    ``JSON.stringify(JSON.parse(body))`` gives the same bytes (the signatures are over these)."""
    return canonical.dumps(msgspec.to_builtins(WebhookPayload(
        uid=event.uid, status=event.status, tool=event.tool, result_files=event.result_files,
        result_data=event.result_data, error=event.error if event.status == "error" else None,
    )))


def legacy_signature(secret: str, body: bytes) -> str:
    """``X-Webhook-Signature``: what the original product's verification snippet checks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _standard_key(secret: str) -> bytes:
    # Standard Webhooks secrets look like "whsec_<base64>"; any other string is used as is.
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except ValueError:
            pass
    return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` of the Standard Webhooks spec: ``v1,<base64 HMAC of id.ts.body>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()).decode()


def headers_for(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": msg_id,
               "webhook-timestamp": str(timestamp)}
    if secret:
        headers["X-Webhook-Signature"] = legacy_signature(secret, body)
        headers["webhook-signature"] = standard_signature(secret, msg_id, timestamp, body)
    return headers


def verify_legacy(secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(legacy_signature(secret, body), signature)

