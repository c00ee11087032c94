"""Notifier configuration, read from the environment once at start."""

from __future__ import annotations

import os

import msgspec

# Delays before attempts 2, 3, ... (Svix's schedule, shortened at the end): 8 attempts in all.
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class NotifierSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    replicas: int = 1
    timeout: float = 15.0
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    concurrency: int = 32

    @classmethod
    def from_env(cls) -> "NotifierSettings":
        env, d = os.environ, cls()
        raw = env.get("AEROVISION_WEBHOOK_SCHEDULE")
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            replicas=int(env.get("AEROVISION_REPLICAS", d.replicas)),
            timeout=float(env.get("AEROVISION_WEBHOOK_TIMEOUT", d.timeout)),
            schedule=tuple(float(x) for x in raw.split(",")) if raw else DEFAULT_SCHEDULE,
        )
