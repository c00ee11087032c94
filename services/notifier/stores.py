"""The notifier's KV records: delivery state per (task, webhook), and the outbox of deliveries owed.

Every write is a compare-and-swap on the revision last read, so a concurrent writer (the gateway
asking for a resend, or a second notifier) is noticed instead of overwritten.
"""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import names
from contracts.webhooks import OutboxEntry, outbox_decoder
from infra import nats_layout
from services.notifier.schedule import Delivery

_encoder = msgspec.json.Encoder()
_delivery_decoder = msgspec.json.Decoder(Delivery)
# A removed outbox key leaves a purge marker that expires: watchers see the removal live, and a
# notifier that starts later replays only the deliveries still owed, not every one ever made.
REMOVAL_MARKER_TTL = 120.0
_WRONG_LAST_SEQUENCE = (10071, 10164)


def delivery_key(uid: str, webhook_id: str) -> str:
    return f"{uid}.{webhook_id}"


async def _nats(op, what: str):
    # Rides out a broker restart or leader election; an outage longer than that fails the
    # attempt's bookkeeping, and the scheduler tries the entry again later.
    return await nats_layout.retrying(op, deadline=60.0, what=what)


class DeliveryStates:
    """Delivery states in KV, those still owed also in memory: this notifier writes them, so an
    attempt needs no read first (a write that finds the revision moved drops the copy)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._owed: dict[str, tuple[Delivery, int]] = {}

    async def get(self, key: str) -> tuple[Delivery | None, int]:
        """The state and its revision; ``(None, 0)`` when the delivery has none yet."""
        if key in self._owed:
            return self._owed[key]
        try:
            entry = await _nats(lambda: self._kv.get(key), "deliveries")
        except KeyNotFoundError:
            return None, 0
        return _delivery_decoder.decode(entry.value), entry.revision

    async def create(self, key: str, state: Delivery) -> int | None:
        """Store a new state; None when one exists already."""
        try:
            revision = await _nats(lambda: self._kv.create(key, _encoder.encode(state)), "deliveries")
        except KeyWrongLastSequenceError:
            return None
        self._owed[key] = (state, revision)
        return revision

    async def write(self, key: str, state: Delivery, revision: int, ended: bool = False) -> int:
        """Replace the state read at ``revision`` (0: create); KeyWrongLastSequenceError if it moved."""
        data = _encoder.encode(state)
        try:
            new = await _nats(lambda: nats_layout.put_at(self._kv, key, data, revision), "deliveries")
        except KeyWrongLastSequenceError:
            self._owed.pop(key, None)
            raise
        if ended:
            self._owed.pop(key, None)
        else:
            self._owed[key] = (state, new)
        return new


class Outbox:
    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self.kv = kv

    async def get(self, key: str) -> tuple[OutboxEntry, int] | None:
        try:
            entry = await _nats(lambda: self.kv.get(key), "outbox")
        except KeyNotFoundError:
            return None
        return outbox_decoder.decode(entry.value), entry.revision

    async def create(self, key: str, entry: OutboxEntry) -> int | None:
        """Add a delivery owed; None when the key exists (it is owed already)."""
        try:
            return await _nats(lambda: self.kv.create(key, _encoder.encode(entry)), "outbox")
        except KeyWrongLastSequenceError:
            return None

    async def replace(self, key: str, entry: OutboxEntry, revision: int) -> int | None:
        """Reschedule the entry read at ``revision``; None if someone wrote it since."""
        try:
            return await _nats(lambda: self.kv.update(key, _encoder.encode(entry), last=revision), "outbox")
        except KeyWrongLastSequenceError:
            return None

    async def remove(self, key: str, revision: int) -> int | None:
        """Remove the entry read at ``revision`` (its marker expires); the marker's revision, or None
        if someone wrote the key since (the gateway asking for a resend must not be lost)."""
        headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub",
                   "Nats-Expected-Last-Subject-Sequence": str(revision)}
        try:
            ack = await _nats(lambda: self._js.publish(
                f"$KV.{names.WEBHOOK_OUTBOX_BUCKET}.{key}", b"", headers=headers, msg_ttl=REMOVAL_MARKER_TTL),
                "outbox")
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                return None
            raise
        return ack.seq
