"""When each owed delivery is attempted: the outbox mirrored in memory, due times in a heap.

A KV watcher keeps the mirror current (deliveries the fan-out adds, resends the gateway asks for);
our own writes update it at once. Each due entry runs in its own task, behind two bounds: attempts
in flight per webhook (a hanging receiver holds only its own slots, and nobody else waits for
it) and in all. State lives in KV, so a restart resumes every schedule where it was.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

import structlog

from contracts.webhooks import OutboxEntry, outbox_decoder
from services.notifier.deliverer import Change, Removed, Scheduled

log = structlog.get_logger("notifier")
Deliver = Callable[[str, OutboxEntry, int, AbstractAsyncContextManager[None]], Awaitable[Change]]
# After an unexpected failure (the broker away, a write that lost a race), try again this much later.
RETRY_LATER = 5.0


class Scheduler:
    def __init__(self, deliver: Deliver, *, per_receiver: int, concurrency: int) -> None:
        self._deliver = deliver
        self._per_receiver = per_receiver
        self._total = asyncio.Semaphore(concurrency)
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._entries: dict[str, tuple[OutboxEntry, int]] = {}
        # Keys we removed, with the removal's revision: older watcher news of them is stale.
        self._removed: dict[str, int] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._generation: dict[str, int] = {}  # only a key's newest heap item counts
        self._counter = itertools.count()
        self._running: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()

    def pending(self) -> int:
        return len(self._entries)

    # --- what is owed -------------------------------------------------------------------

    def _schedule(self, key: str, due_at: float) -> None:
        generation = next(self._counter)
        self._generation[key] = generation
        heapq.heappush(self._heap, (due_at, generation, key))
        self._wake.set()

    def observe(self, key: str, revision: int, value: bytes | None) -> None:
        """A watcher update of the outbox (``value`` None: the key was removed)."""
        if value is None:
            if self._removed.get(key, 0) <= revision:
                self._removed.pop(key, None)
            known = self._entries.get(key)
            if known is not None and known[1] < revision:
                self._forget(key)
            return
        known = self._entries.get(key)
        if revision <= self._removed.get(key, 0) or (known is not None and known[1] >= revision):
            return  # we already know better
        self.owed(key, outbox_decoder.decode(value), revision)

    def owed(self, key: str, entry: OutboxEntry, revision: int) -> None:
        """An entry written at ``revision`` (by this notifier, or seen by the watcher)."""
        known = self._entries.get(key)
        if revision <= self._removed.get(key, 0) or (known is not None and known[1] >= revision):
            return
        self._entries[key] = (entry, revision)
        self._schedule(key, entry.due_at)

    def hook_removed(self, webhook_id: str) -> None:
        """A deleted webhook: make its entries due now, so they are cancelled at once."""
        self._lanes.pop(webhook_id, None)
        now = time.time()
        for key, (entry, _) in list(self._entries.items()):
            if entry.webhook_id == webhook_id:
                self._schedule(key, now)

    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)
        self._generation.pop(key, None)

    # --- running attempts ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start due entries until ``stop``; then wait for the attempts in flight to end."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._start_due(time.time())
                timeout = min(1.0, max(0.0, self._heap[0][0] - time.time())) if self._heap else 1.0
                self._wake.clear()
                waker = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({waker, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            stopping.cancel()

    async def drain(self, grace: float) -> None:
        """Let running attempts finish for ``grace`` seconds, then cancel them (their entries stay
        in the outbox: the next start attempts them again)."""
        running = set(self._running.values())
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _start_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, generation, key = heapq.heappop(self._heap)
            if self._generation.get(key) != generation or key in self._running:
                continue  # superseded, or running (it is rescheduled when it ends)
            entry, revision = self._entries[key]
            self._running[key] = asyncio.create_task(self._attempt(key, entry, revision))

    @asynccontextmanager
    async def _slot(self, webhook_id: str) -> AsyncIterator[None]:
        """A turn to talk to one receiver: its own lane first, then one of all (so waiting for a
        slow receiver's lane never holds a slot anyone else could use)."""
        lane = self._lanes.setdefault(webhook_id, asyncio.Semaphore(self._per_receiver))
        async with lane, self._total:
            yield

    async def _attempt(self, key: str, entry: OutboxEntry, revision: int) -> None:
        change: Change | float
        try:
            change = await self._deliver(key, entry, revision, self._slot(entry.webhook_id))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook_delivery_failed", webhook_id=entry.webhook_id, uid=entry.uid)
            change = time.time() + RETRY_LATER
        finally:
            self._running.pop(key, None)
        self._apply(key, revision, change)

    def _apply(self, key: str, revision: int, change: Change | float) -> None:
        match change:
            case Removed(revision=removed_at):
                self._removed[key] = removed_at
                if self._entries.get(key, (None, 0))[1] <= revision:
                    self._forget(key)
            case Scheduled(entry=entry, revision=new_rev):
                if self._entries.get(key, (None, 0))[1] <= new_rev:
                    self._entries[key] = (entry, new_rev)
            case None:
                self._forget(key)
            case float() as retry_at:
                if key in self._entries:
                    self._schedule(key, retry_at)
                return
        if key in self._entries:  # what it is now (including news that came while it ran)
            self._schedule(key, self._entries[key][0].due_at)


async def follow(watcher, scheduler: Scheduler, ready: asyncio.Event) -> None:
    """Feed the scheduler from a KV watcher of the outbox (stopped when this ends)."""
    try:
        async for update in watcher:
            if update is None:  # the current entries are all in
                ready.set()
                continue
            deleted = update.operation in ("DEL", "PURGE") or not update.value
            scheduler.observe(update.key, update.revision, None if deleted else update.value)
    finally:
        await watcher.stop()
