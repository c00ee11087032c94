"""Matcher configuration, read from the environment once at start."""

from __future__ import annotations

import os
import socket

import msgspec


class MatcherSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    replicas: int = 1
    workers: int = 0  # worker processes of the fast lane; 0 = one per core
    # The slow lane (surface matching and chains): its own processes, at a lower
    # CPU priority, so seconds-long jobs never hold up the fast lane (docs/architecture.md).
    slow_workers: int = 1  # from the environment: half the cores, at least one
    slow_nice: int = 10
    # Deliveries of one task before it ends in error (an input that crashes or hangs a worker).
    max_attempts: int = 3
    task_timeout: float = 300.0
    # Unacknowledged for this long, a task is redelivered (a replica died); heartbeats keep
    # long tasks alive.
    ack_wait: float = 10.0
    retry_delay: float = 1.0
    name: str = ""
    # A local copy of stored files (infra/spool.py); `aerovision up` sets it, "" = none.
    spool_dir: str = ""
    spool_bytes: int = 256 * 2**20

    @classmethod
    def from_env(cls) -> "MatcherSettings":
        env, d = os.environ, cls()
        cores = os.cpu_count() or 1
        workers = int(env.get("AEROVISION_MATCHER_WORKERS", 0)) or cores
        slow_workers = int(env.get("AEROVISION_SLOW_WORKERS", 0)) or max(1, cores // 2)
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            replicas=int(env.get("AEROVISION_REPLICAS", d.replicas)),
            workers=workers,
            slow_workers=slow_workers,
            slow_nice=int(env.get("AEROVISION_SLOW_NICE", d.slow_nice)),
            max_attempts=int(env.get("AEROVISION_MAX_ATTEMPTS", d.max_attempts)),
            task_timeout=float(env.get("AEROVISION_TASK_TIMEOUT", d.task_timeout)),
            ack_wait=float(env.get("AEROVISION_ACK_WAIT", d.ack_wait)),
            retry_delay=float(env.get("AEROVISION_RETRY_DELAY", d.retry_delay)),
            name=env.get("AEROVISION_MATCHER_NAME", f"{socket.gethostname()}-{os.getpid()}"),
            spool_dir=env.get("AEROVISION_SPOOL_DIR", d.spool_dir),
            spool_bytes=int(float(env.get("AEROVISION_SPOOL_MB", d.spool_bytes / 2**20)) * 2**20),
        )
