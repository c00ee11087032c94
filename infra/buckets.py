"""Whole KV buckets read and copied at stream speed (a replay compares and switches views of
100,000 tasks; ``keys()`` plus a get per key would take minutes)."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from infra.tail import EventTail

_DELETED = ("DEL", "PURGE")


async def read_bucket(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """Every key's current value (deleted keys left out), read from the bucket's stream."""
    prefix = f"$KV.{bucket}."
    values: dict[str, bytes] = {}
    async with EventTail(js, f"{prefix}>", stream=f"KV_{bucket}", last_per_subject=True) as tail:
        done = tail.pending_at_open == 0
        while not done:
            msgs = await tail.batch(limit=1024, timeout=5.0)
            if not msgs:
                raise TimeoutError(f"bucket {bucket}: reading stalled")
            for msg in msgs:
                key = msg.subject[len(prefix):]
                if (msg.headers or {}).get("KV-Operation") in _DELETED:
                    values.pop(key, None)
                else:
                    values[key] = msg.data
                done = msg.metadata.num_pending == 0
    return values


async def make_equal(target: KeyValue, current: dict[str, bytes], wanted: dict[str, bytes],
                     window: int = 512) -> tuple[int, int]:
    """Write into ``target`` (holding ``current``) what makes it hold ``wanted``: changed values
    put, extra keys deleted, equal ones untouched. (written, deleted)."""
    puts = [(key, value) for key, value in wanted.items() if current.get(key) != value]
    extra = [key for key in current if key not in wanted]
    for i in range(0, len(puts), window):
        await asyncio.gather(*(target.put(key, value) for key, value in puts[i:i + window]))
    for i in range(0, len(extra), window):
        await asyncio.gather(*(target.delete(key) for key in extra[i:i + window]))
    return len(puts), len(extra)
