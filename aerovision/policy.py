"""When ``aerovision up`` restarts a service: pure functions of what it saw, no clocks or processes."""

from __future__ import annotations

# Delays before restarting a service that exited: 1, 2, 4, 8, then 10 s for every later exit...
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
# ...until it has run this long: then its next exit counts as a first one again. A service that
# crashed five times at start-up last week must not wait 10 s after today's one-off exit.
HEALTHY_RUN = 60.0
# A gateway that has answered /healthz since its start, and then not for this long, is alive but
# unable to serve (wedged, or its NATS connection gone without it noticing): it is restarted.
# Longer than a request's patience with a NATS restart (15 s), so a broker restart is waited out.
UNHEALTHY_RESTART = 30.0


def restart_plan(restarts: int, ran_for: float) -> tuple[int, float]:
    """After a service that ran ``ran_for`` seconds exits: its new restart count, and the delay
    before starting it again."""
    if ran_for >= HEALTHY_RUN:
        restarts = 0
    restarts += 1
    return restarts, min(MAX_DELAY, FIRST_DELAY * 2 ** min(restarts, 5))


def unhealthy_too_long(last_healthy: float | None, now: float, threshold: float = UNHEALTHY_RESTART) -> bool:
    """Whether a gateway last healthy at ``last_healthy`` (None: not yet since its start) should
    be restarted. One still starting is left alone: its own log says what it waits for."""
    return last_healthy is not None and now - last_healthy > threshold
