"""The notifier's pure core for one (task, webhook) delivery: its state and what follows an attempt.

Each delivery keeps its own count of attempts, so its retry schedule depends on nothing but its
own outcomes: another webhook's failures, hangs or ``Retry-After`` never move it.
"""

from __future__ import annotations

import msgspec

# Retry-After is honoured (429/503), but a receiver cannot park a delivery for longer than this.
RETRY_AFTER_CAP = 24 * 3600.0


class Delivery(msgspec.Struct, kw_only=True):
    """State of one (task, webhook) delivery, kept after it ends (so it is never sent again)."""

    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False
    cancelled: bool = False  # the webhook was deleted while the delivery was still owed

    @property
    def ended(self) -> bool:
        return self.delivered or self.gave_up or self.cancelled


class Outcome(msgspec.Struct, kw_only=True, frozen=True):
    """What one attempt gave: 2xx (delivered), another status, or a failure in our own words."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def claimed(state: Delivery) -> Delivery:
    """The state stored before an attempt: its number is taken, even if the notifier dies mid-way
    (two records never share an attempt number, and their events are never de-duplicated away)."""
    return msgspec.structs.replace(state, attempts=state.attempts + 1)


def after_attempt(state: Delivery, outcome: Outcome, *, one_off: bool, schedule: tuple[float, ...],
                  retry_after_cap: float = RETRY_AFTER_CAP) -> tuple[Delivery, float | None]:
    """The state after attempt ``state.attempts`` and the seconds until the next one (None: ended).

    Attempt n that fails waits ``schedule[n - 1]`` (the first attempt is immediate); past the end
    of the schedule the delivery is given up. 410 Gone ends it at once. ``one_off`` is a resend of
    a delivery that had already ended: one attempt, after which it stays ended.
    """
    if one_off:
        return msgspec.structs.replace(state, delivered=state.delivered or outcome.delivered,
                                       gave_up=state.gave_up or not (state.delivered or outcome.delivered)), None
    if outcome.delivered:
        return msgspec.structs.replace(state, delivered=True), None
    if outcome.status_code == 410 or state.attempts > len(schedule):
        return msgspec.structs.replace(state, gave_up=True), None
    delay = schedule[state.attempts - 1]
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, retry_after_cap))
    return state, delay


def retry_after_seconds(status_code: int, header: str | None) -> float | None:
    """``Retry-After`` in seconds when a 429 or 503 carries one (the HTTP-date form is ignored)."""
    if status_code not in (429, 503) or not header or not header.strip().isascii():
        return None
    value = header.strip()
    return float(value) if value.isdigit() else None


def parse_schedule(raw: str) -> tuple[float, ...]:
    """``AEROVISION_WEBHOOK_SCHEDULE``: comma-separated seconds before attempts 2, 3, ..."""
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"AEROVISION_WEBHOOK_SCHEDULE must be comma-separated seconds, not {raw!r}") from None
    if any(d < 0 or d != d or d == float("inf") for d in delays):
        raise ValueError(f"AEROVISION_WEBHOOK_SCHEDULE must hold finite seconds >= 0, not {raw!r}")
    return delays
