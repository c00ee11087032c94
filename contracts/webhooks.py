"""Webhook records the gateway and the notifier share through KV (never on the event stream).

- The outbox (``WEBHOOK_OUTBOX_BUCKET``): one key per (webhook, task) delivery still owed, with the
  time of its next attempt. The notifier creates, reschedules and removes them; the gateway writes
  one to ask for a resend.
- The attempts (``WEBHOOK_ATTEMPTS_BUCKET``): every attempt per webhook, oldest first, in pages of
  ``ATTEMPTS_PAGE_SIZE``; the last, partly filled page lives in the head so an append is one write.
  The notifier projects them from ``webhook.attempted`` events; the gateway reads them.
"""

from __future__ import annotations

import msgspec

from contracts.api import DeliveryOut


class OutboxEntry(msgspec.Struct, kw_only=True):
    """A delivery owed: attempt it at ``due_at`` (Unix seconds)."""

    webhook_id: str
    uid: str
    tool: str
    due_at: float
    # Asked for by a client: one attempt even if the delivery had already ended.
    resend: bool = False


def outbox_key(webhook_id: str, uid: str) -> str:
    return f"{webhook_id}.{uid}"


ATTEMPTS_PAGE_SIZE = 100


class AttemptsHead(msgspec.Struct, kw_only=True):
    count: int = 0
    # Stream sequence of the last webhook.attempted event applied: a replayed one is skipped.
    last_seq: int = 0
    tail: list[DeliveryOut] = []


def attempts_head_key(webhook_id: str) -> str:
    return f"{webhook_id}.head"


def attempts_page_key(webhook_id: str, page: int) -> str:
    return f"{webhook_id}.page.{page}"


outbox_decoder = msgspec.json.Decoder(OutboxEntry)
attempts_head_decoder = msgspec.json.Decoder(AttemptsHead)
attempts_page_decoder = msgspec.json.Decoder(list[DeliveryOut])
