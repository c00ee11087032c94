"""The delivery core: each (task, webhook) follows its own schedule, whatever its outcomes."""

from __future__ import annotations

import pytest

from services.notifier.schedule import Delivery, Outcome, after_attempt, claimed, parse_schedule, retry_after_seconds

SCHEDULE = (5.0, 300.0, 1800.0)
FAILED = Outcome(delivered=False, status_code=500, error="HTTP 500")
OK = Outcome(delivered=True, status_code=200)


def _run(outcomes: list[Outcome], one_off: bool = False, state: Delivery | None = None):
    """Attempts in a row, as the deliverer makes them: claim, attempt, decide."""
    state, waits = state or Delivery(), []
    for outcome in outcomes:
        state, wait = after_attempt(claimed(state), outcome, one_off=one_off, schedule=SCHEDULE)
        waits.append(wait)
        if wait is None:
            break
    return state, waits


def test_failures_follow_the_schedule_then_give_up():
    state, waits = _run([FAILED] * 10)
    assert waits == [5.0, 300.0, 1800.0, None]  # 1 + len(schedule) attempts
    assert state.attempts == 4 and state.gave_up and not state.delivered and state.ended


def test_success_ends_it_and_410_stops_at_once():
    state, waits = _run([FAILED, OK])
    assert waits == [5.0, None] and state.delivered and state.attempts == 2
    state, waits = _run([Outcome(delivered=False, status_code=410, error="HTTP 410")])
    assert waits == [None] and state.gave_up


def test_retry_after_lengthens_a_wait_but_never_shortens_it_and_is_capped():
    slow = Outcome(delivered=False, status_code=429, error="HTTP 429", retry_after=60.0)
    assert after_attempt(claimed(Delivery()), slow, one_off=False, schedule=SCHEDULE)[1] == 60.0
    quick = Outcome(delivered=False, status_code=503, error="HTTP 503", retry_after=1.0)
    assert after_attempt(claimed(Delivery()), quick, one_off=False, schedule=SCHEDULE)[1] == 5.0
    forever = Outcome(delivered=False, status_code=429, error="HTTP 429", retry_after=10**9)
    assert after_attempt(claimed(Delivery()), forever, one_off=False, schedule=SCHEDULE)[1] == 24 * 3600


def test_a_resend_of_an_ended_delivery_is_one_attempt_and_it_stays_ended():
    delivered = Delivery(attempts=1, delivered=True)
    state, waits = _run([FAILED], one_off=True, state=delivered)
    assert waits == [None] and state.attempts == 2 and state.delivered and state.ended
    never_owed, waits = _run([FAILED], one_off=True)
    assert waits == [None] and never_owed.ended and not never_owed.delivered
    state, _ = _run([OK], one_off=True, state=Delivery(attempts=8, gave_up=True))
    assert state.delivered and state.attempts == 9


def test_a_legacy_state_mid_schedule_goes_on_from_its_count():
    # Written before the outbox existed: attempts 2 made, still owed.
    state, wait = after_attempt(claimed(Delivery(attempts=2)), FAILED, one_off=False, schedule=SCHEDULE)
    assert state.attempts == 3 and wait == 1800.0


@pytest.mark.parametrize("status,header,expected", [
    (429, "7", 7.0), (503, " 12 ", 12.0), (500, "7", None), (429, "Wed, 21 Oct 2015 07:28:00 GMT", None),
    (429, None, None), (429, "-1", None), (429, "٣", None),
])
def test_retry_after_header(status, header, expected):
    assert retry_after_seconds(status, header) == expected


def test_schedule_setting():
    assert parse_schedule("0.2, 0.5,1") == (0.2, 0.5, 1.0)
    for bad in ("a,b", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match="AEROVISION_WEBHOOK_SCHEDULE"):
            parse_schedule(bad)
