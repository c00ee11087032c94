"""Recently read task views, kept in memory as the JSON the API returns.

Status reads are the hottest path (clients poll every 10 ms-1 s): a hit costs a dict lookup and
no NATS round trip. A KV watcher feeds every view update in, so entries stay current; an entry of
a task that has not ended is also re-read after ``ttl`` seconds, in case the watcher stalled
(after a reconnect it can stay silent for a while). Final views never change, so never expire.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Callable

import msgspec


class _Status(msgspec.Struct):
    status: str = ""


_status = msgspec.json.Decoder(_Status)
_FINAL = ("done", "error")


class ViewCache:
    def __init__(self, capacity: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._clock = clock
        # uid -> (view JSON, KV revision, final?, time stored)
        self._entries: OrderedDict[str, tuple[bytes, int, bool, float]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future]] = {}

    def get(self, uid: str) -> bytes | None:
        entry = self._entries.get(uid)
        if entry is None:
            return None
        data, _, final, stored = entry
        if not final and self._clock() - stored > self._ttl:
            return None
        self._entries.move_to_end(uid)
        return data

    def lookup(self, uid: str) -> tuple[bytes | None, bool]:
        """The view (as ``get``) and whether it is final."""
        data = self.get(uid)
        return data, data is not None and self._entries[uid][2]

    async def wait_for_change(self, uid: str, timeout: float) -> None:
        """Return when a newer view of ``uid`` arrives, or after ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(uid, [])
        waiters.append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(uid, None)

    def put(self, uid: str, data: bytes, revision: int) -> None:
        """Store a view unless a newer revision of it is already here."""
        old = self._entries.get(uid)
        if old is not None and old[1] > revision:
            return
        try:
            final = _status.decode(data).status in _FINAL
        except msgspec.DecodeError:
            return
        self._entries[uid] = (data, revision, final, self._clock())
        self._entries.move_to_end(uid)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        for future in self._waiters.get(uid, ()):
            if not future.done():
                future.set_result(None)

    def expire_unfinished(self) -> None:
        """Updates may have been missed (a reconnect): re-read unfinished views on next access."""
        for uid, (data, revision, final, _) in list(self._entries.items()):
            if not final:
                self._entries[uid] = (data, revision, final, float("-inf"))

    def drop(self, uid: str) -> None:
        self._entries.pop(uid, None)

    def __len__(self) -> int:
        return len(self._entries)
