"""The registered webhooks, mirrored in memory (infra/kv_mirror.py): webhooks are few and change
rarely, and every finished task asks which are owed its notification."""

from __future__ import annotations

from typing import Callable

import msgspec
from nats.js.kv import KeyValue

from contracts.api import WebhookRecord
from infra.kv_mirror import KvMirror

_records = msgspec.json.Decoder(WebhookRecord)


class WebhookDirectory:
    def __init__(self, kv: KeyValue) -> None:
        self._mirror: KvMirror[WebhookRecord] = KvMirror(kv, _records, name="webhooks")

    @property
    def on_removed(self) -> Callable[[str], None] | None:
        """Told when a webhook is deleted (the scheduler cancels what it still owed it at once)."""
        return self._mirror.on_removed

    @on_removed.setter
    def on_removed(self, callback: Callable[[str], None] | None) -> None:
        self._mirror.on_removed = callback

    async def start(self) -> None:
        await self._mirror.start()

    async def on_reconnect(self) -> None:
        """A fresh watcher, as the gateway's mirror gets: a watcher can stay silent ~17 s after a
        reconnect, and a webhook registered meanwhile would not be owed the tasks ending then."""
        await self._mirror.restart()

    def __len__(self) -> int:
        return len(self._mirror.values)

    def get(self, webhook_id: str) -> WebhookRecord | None:
        return self._mirror.values.get(webhook_id)

    def registered_before(self, moment: str) -> list[WebhookRecord]:
        """The webhooks that existed when a task ended (they are owed its notification)."""
        return [hook for hook in self._mirror.values.values() if hook.created_at <= moment]

    async def stop(self) -> None:
        await self._mirror.stop()
