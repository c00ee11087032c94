"""Projector configuration, read from the environment once at start."""

from __future__ import annotations

import os

import msgspec


class ProjectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    replicas: int = 1
    batch: int = 256
    view_cache: int = 2_048

    @classmethod
    def from_env(cls) -> "ProjectorSettings":
        env, d = os.environ, cls()
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            replicas=int(env.get("AEROVISION_REPLICAS", d.replicas)),
            batch=int(env.get("AEROVISION_PROJECTOR_BATCH", d.batch)),
            view_cache=int(env.get("AEROVISION_PROJECTOR_CACHE", d.view_cache)),
        )
