"""Gateway configuration, read from the environment once at start."""

from __future__ import annotations

import os

import msgspec

from contracts.webhook_targets import private_targets_allowed
from infra.retention import Retention


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    # Loopback unless told otherwise: containers and deliberate exposure pass 0.0.0.0 explicitly.
    host: str = "127.0.0.1"
    port: int = 8888
    replicas: int = 1
    # Whole request body (both files and the fields); larger uploads get 413.
    max_upload_bytes: int = 64 * 1024 * 1024
    # Bodies held at once (docs/limits.md): past it, a submission waits up to 10 s, then gets 429.
    body_budget_bytes: int = 128 * 1024 * 1024
    # Images declaring more pixels are refused (422). Measured cost at 25 Mpx: a template-matching
    # worker peaks at ~0.7 GB (gray) / ~1.4 GB (colour); see docs/limits.md.
    max_image_pixels: int = 25_000_000
    # Browser pages on these origins may call the API (comma-separated, or "*"); none by default.
    cors_origins: str = ""
    # Recently read task views kept in memory (kept current by a KV watcher).
    view_cache: int = 4_096
    # A non-final cached view older than this is re-read (a safety net if the watcher stalls).
    view_cache_ttl: float = 2.0
    # A status read of an unfinished task waits up to this long for a change before answering.
    status_hold: float = 0.1
    # How long a request waits out a broker restart or leader election before it gets 503.
    broker_patience: float = 15.0
    # A local copy of stored files (infra/spool.py); `aerovision up` sets it, "" = none.
    spool_dir: str = ""
    spool_bytes: int = 256 * 2**20
    # Slow clients (docs/limits.md): a request's headers must be complete this long after it starts.
    header_timeout: float = 5.0
    # A request body may fall this many seconds behind body_min_rate before it is cut off (408).
    body_grace: float = 10.0
    body_min_rate: int = 16 * 1024
    # An idle keep-alive connection is closed after this long.
    keep_alive: float = 5.0
    # Open connections beyond this get 503 at once.
    max_connections: int = 1000
    # On stop, requests in flight get this long to finish.
    shutdown_grace: float = 10.0
    # Webhooks to loopback and private addresses: allowed unless AEROVISION_WEBHOOK_PRIVATE_TARGETS=deny.
    webhook_allow_private_targets: bool = True
    # Server-Sent Event streams open at once (each holds a consumer on the server); past it, 429.
    max_event_streams: int = 64
    # Seconds of silence after which an event stream sends a comment (proxies close idle ones).
    sse_keepalive: float = 15.0
    # How long the event log and the files are kept (infra/retention.py); the gateway applies it.
    retention: Retention = Retention()

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        env, d = os.environ, cls()
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            host=env.get("AEROVISION_HOST", d.host),
            port=int(env.get("AEROVISION_PORT", d.port)),
            replicas=int(env.get("AEROVISION_REPLICAS", d.replicas)),
            max_upload_bytes=int(float(env.get("AEROVISION_MAX_UPLOAD_MB", d.max_upload_bytes / 2**20)) * 2**20),
            max_image_pixels=int(env.get("AEROVISION_MAX_IMAGE_PIXELS", d.max_image_pixels)),
            body_budget_bytes=int(float(env.get("AEROVISION_BODY_BUDGET_MB", d.body_budget_bytes / 2**20)) * 2**20),
            view_cache=int(env.get("AEROVISION_VIEW_CACHE", d.view_cache)),
            cors_origins=env.get("AEROVISION_CORS_ORIGINS", d.cors_origins),
            status_hold=float(env.get("AEROVISION_STATUS_HOLD_MS", d.status_hold * 1000)) / 1000,
            broker_patience=float(env.get("AEROVISION_BROKER_PATIENCE_S", d.broker_patience)),
            spool_dir=env.get("AEROVISION_SPOOL_DIR", d.spool_dir),
            spool_bytes=int(float(env.get("AEROVISION_SPOOL_MB", d.spool_bytes / 2**20)) * 2**20),
            header_timeout=float(env.get("AEROVISION_HEADER_TIMEOUT_S", d.header_timeout)),
            body_grace=float(env.get("AEROVISION_BODY_GRACE_S", d.body_grace)),
            body_min_rate=int(float(env.get("AEROVISION_BODY_MIN_KBPS", d.body_min_rate / 1024)) * 1024),
            keep_alive=float(env.get("AEROVISION_KEEPALIVE_S", d.keep_alive)),
            max_connections=int(env.get("AEROVISION_MAX_CONNECTIONS", d.max_connections)),
            webhook_allow_private_targets=private_targets_allowed(env.get("AEROVISION_WEBHOOK_PRIVATE_TARGETS")),
            max_event_streams=int(env.get("AEROVISION_EVENT_STREAMS", d.max_event_streams)),
            sse_keepalive=float(env.get("AEROVISION_SSE_KEEPALIVE_S", d.sse_keepalive)),
            retention=Retention.from_env(),
        )
