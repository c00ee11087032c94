"""The registered webhooks, mirrored in memory by a KV watcher.

Listing keys per finished task would create a consumer each time (nats-py's ``keys()``); webhooks
are few and change rarely, so the notifier keeps all of them and follows the changes.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import msgspec
import structlog
from nats.js.kv import KeyValue

from contracts.api import WebhookRecord

log = structlog.get_logger("notifier")
_records = msgspec.json.Decoder(WebhookRecord)


class WebhookDirectory:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._hooks: dict[str, WebhookRecord] = {}
        # Told when a webhook is deleted (the scheduler cancels what it still owed it at once).
        self.on_removed: Callable[[str], None] | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        watcher = await self._kv.watchall()
        self._task = asyncio.create_task(self._follow(watcher))
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def _follow(self, watcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:  # the initial values are all in
                    self._ready.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    if self._hooks.pop(entry.key, None) is not None and self.on_removed is not None:
                        self.on_removed(entry.key)
                    continue
                try:
                    self._hooks[entry.key] = _records.decode(entry.value)
                except msgspec.ValidationError:
                    log.warning("webhook_unreadable", key=entry.key)
        finally:
            await watcher.stop()

    def __len__(self) -> int:
        return len(self._hooks)

    def get(self, webhook_id: str) -> WebhookRecord | None:
        return self._hooks.get(webhook_id)

    def registered_before(self, moment: str) -> list[WebhookRecord]:
        """The webhooks that existed when a task ended (they are owed its notification)."""
        return [hook for hook in self._hooks.values() if hook.created_at <= moment]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
