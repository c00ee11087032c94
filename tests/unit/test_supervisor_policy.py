"""When ``aerovision up`` restarts a service: the backoff grows while it keeps failing, and
resets once it has run a while; a gateway is restarted for being unhealthy only after it was healthy."""

from __future__ import annotations

from aerovision.policy import HEALTHY_RUN, MAX_DELAY, UNHEALTHY_RESTART, restart_plan, unhealthy_too_long


def _delays(runs: list[float]) -> list[float]:
    restarts, delays = 0, []
    for ran_for in runs:
        restarts, delay = restart_plan(restarts, ran_for)
        delays.append(delay)
    return delays


def test_backoff_grows_while_a_service_keeps_failing_at_start():
    assert _delays([0.5] * 7) == [1.0, 2.0, 4.0, 8.0, MAX_DELAY, MAX_DELAY, MAX_DELAY]


def test_backoff_resets_after_a_healthy_run():
    # Crash-looped to the longest delay, then ran for a minute: the next exit is a first one again.
    crash_loop = [0.5] * 6
    assert _delays([*crash_loop, HEALTHY_RUN])[-1] == 1.0
    assert _delays([*crash_loop, HEALTHY_RUN, 0.5])[-2:] == [1.0, 2.0]


def test_a_run_just_short_of_healthy_does_not_reset():
    assert _delays([0.5] * 5 + [HEALTHY_RUN - 1])[-1] == MAX_DELAY


def test_a_gateway_still_starting_is_never_restarted_for_health():
    assert not unhealthy_too_long(None, now=10_000.0)


def test_a_gateway_unhealthy_past_the_threshold_is_restarted():
    assert not unhealthy_too_long(100.0, now=100.0 + UNHEALTHY_RESTART)
    assert unhealthy_too_long(100.0, now=100.0 + UNHEALTHY_RESTART + 0.1)
    assert unhealthy_too_long(100.0, now=104.0, threshold=3.0)
