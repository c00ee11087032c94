"""Notifier configuration, read from the environment once at start."""

from __future__ import annotations

import os

import msgspec

from contracts.webhook_targets import private_targets_allowed
from services.notifier.schedule import parse_schedule

# Delays before attempts 2, 3, ... (Svix's schedule): 8 attempts in all over about a day.
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class NotifierSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    replicas: int = 1
    # One attempt (connect, send, the receiver's status line) may take this long.
    timeout: float = 15.0
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    # Attempts in flight to one webhook: a slow or hanging receiver holds at most these.
    per_receiver: int = 4
    # Attempts in flight in all (sockets and memory of the notifier).
    concurrency: int = 256
    # Loopback and private targets: allowed (receivers on localhost) unless "deny".
    allow_private_targets: bool = True

    @classmethod
    def from_env(cls) -> "NotifierSettings":
        env, d = os.environ, cls()
        raw = env.get("AEROVISION_WEBHOOK_SCHEDULE")
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            replicas=int(env.get("AEROVISION_REPLICAS", d.replicas)),
            timeout=float(env.get("AEROVISION_WEBHOOK_TIMEOUT", d.timeout)),
            schedule=parse_schedule(raw) if raw else DEFAULT_SCHEDULE,
            per_receiver=max(1, int(env.get("AEROVISION_WEBHOOK_PER_RECEIVER", d.per_receiver))),
            concurrency=max(1, int(env.get("AEROVISION_WEBHOOK_CONCURRENCY", d.concurrency))),
            allow_private_targets=private_targets_allowed(env.get("AEROVISION_WEBHOOK_PRIVATE_TARGETS")),
        )

