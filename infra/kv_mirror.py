"""A KV bucket's values, decoded, kept in memory by a watcher: reads cost no NATS call.

For small buckets read far more often than written (webhook registrations): nats-py's
``kv.keys()`` creates a JetStream consumer per call (about 990 calls exhausted the server's
limit), and a get per read would cost a round trip each time.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, TypeVar

import msgspec
import structlog
from nats.js.kv import KeyValue

log = structlog.get_logger("kv_mirror")
T = TypeVar("T")


class KvMirror(Generic[T]):
    """``values`` follows the bucket: the current values first (``start`` waits for them), then
    every change. A write of this process is applied at once with ``remember``/``forget``; the
    watcher's news of a key no newer than what is known (by revision) is then skipped."""

    def __init__(self, kv: KeyValue, decoder: msgspec.json.Decoder, *, name: str,
                 on_removed: Callable[[str], None] | None = None) -> None:
        self._kv = kv
        self._decoder = decoder
        self._name = name
        self.on_removed = on_removed
        self.values: dict[str, T] = {}
        self._revisions: dict[str, int] = {}  # deleted keys included
        self._following: asyncio.Task | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Watch, and return once the current values are in."""
        await asyncio.wait_for((await self._watch()).wait(), timeout)

    async def _watch(self) -> asyncio.Event:
        ready = asyncio.Event()
        watcher = await self._kv.watchall()
        self._following = asyncio.create_task(self._follow(watcher, ready))
        return ready

    async def _follow(self, watcher, ready: asyncio.Event) -> None:
        try:
            async for entry in watcher:
                if entry is None:  # the current values are all in
                    ready.set()
                    continue
                if entry.revision <= self._revisions.get(entry.key, 0):
                    continue  # our own write, or older than it
                self._revisions[entry.key] = entry.revision
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._removed(entry.key)
                    continue
                try:
                    self.values[entry.key] = self._decoder.decode(entry.value)
                except msgspec.ValidationError:
                    log.warning("kv_value_unreadable", bucket=self._name, key=entry.key)
        finally:
            await watcher.stop()

    def _removed(self, key: str) -> None:
        if self.values.pop(key, None) is not None and self.on_removed is not None:
            self.on_removed(key)

    def remember(self, key: str, value: T, revision: int) -> None:
        """This process wrote ``value`` at ``revision``."""
        self._revisions[key] = max(revision, self._revisions.get(key, 0))
        self.values[key] = value

    def forget(self, key: str) -> None:
        """This process deleted ``key`` (the watcher's older news of it stays skipped)."""
        self._removed(key)

    async def restart(self) -> None:
        """A fresh watcher, not waited for (after a reconnect a watcher can stay silent for a
        while; this runs inside the client's reconnection, and the mirror serves meanwhile)."""
        await self.stop()
        try:
            await self._watch()
        except Exception:  # the next reconnect tries again; until then the mirror is as it was
            log.exception("kv_watch_restart_failed", bucket=self._name)

    async def stop(self) -> None:
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
            self._following = None
