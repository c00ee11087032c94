"""The gateway's view cache: newest revision wins, unfinished views expire, size is bounded."""

from __future__ import annotations

from services.gateway.viewcache import ViewCache


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_newer_revisions_win_and_unfinished_views_expire():
    clock = Clock()
    cache = ViewCache(capacity=10, ttl=2.0, clock=clock)
    cache.put("a", b'{"status":"processing"}', 5)
    cache.put("a", b'{"status":"queued"}', 0)  # the gateway's own queued view is older
    assert cache.get("a") == b'{"status":"processing"}'
    clock.now = 3.0
    assert cache.get("a") is None
    cache.put("a", b'{"status":"done"}', 6)
    clock.now = 1000.0
    assert cache.get("a") == b'{"status":"done"}'


def test_bounded():
    cache = ViewCache(capacity=3, ttl=2.0)
    for i in range(10):
        cache.put(str(i), b'{"status":"done"}', 1)
    assert len(cache) == 3 and cache.get("9") is not None and cache.get("0") is None
    cache.put("x", b"not json", 1)
    assert cache.get("x") is None


async def test_a_held_read_wakes_on_a_newer_view():
    import asyncio

    cache = ViewCache(capacity=10, ttl=2.0)
    cache.put("a", b'{"status":"queued"}', 1)
    assert cache.lookup("a") == (b'{"status":"queued"}', False)
    waiter = asyncio.create_task(cache.wait_for_change("a", 5.0))
    # Runs after the waiter's first step (callbacks run in the order they were scheduled).
    asyncio.get_running_loop().call_soon(cache.put, "a", b'{"status":"done"}', 2)
    await asyncio.wait_for(waiter, 1.0)
    assert cache.lookup("a") == (b'{"status":"done"}', True)
    await cache.wait_for_change("a", 0.01)  # nothing changes: returns after the timeout
