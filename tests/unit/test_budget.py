"""The body budget: concurrent uploads hold at most its bytes; a request that can't fit in time is refused."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.budget import BodyBudget, BudgetExhausted


async def test_bodies_beyond_the_budget_wait_for_room() -> None:
    budget = BodyBudget(100)
    order: list[str] = []
    release, first_in = asyncio.Event(), asyncio.Event()

    async def hold(name: str, size: int) -> None:
        async with budget.reserve(size, wait=5):
            order.append(f"{name} in ({budget.in_use})")
            first_in.set()
            await release.wait()
        order.append(f"{name} out")

    first = asyncio.create_task(hold("a", 60))
    await first_in.wait()
    second = asyncio.create_task(hold("b", 60))
    with pytest.raises(asyncio.TimeoutError):  # b waits for room while a holds it
        await asyncio.wait_for(asyncio.shield(second), 0.05)
    assert order == ["a in (60)"] and budget.in_use == 60
    release.set()
    await asyncio.gather(first, second)
    assert order == ["a in (60)", "a out", "b in (60)", "b out"]
    assert budget.in_use == 0


async def test_a_request_that_cannot_fit_in_time_is_refused_and_holds_nothing() -> None:
    budget = BodyBudget(100)
    async with budget.reserve(100, wait=1):
        with pytest.raises(BudgetExhausted):
            async with budget.reserve(1, wait=0.05):
                pass
        assert budget.in_use == 100
    assert budget.in_use == 0


async def test_a_body_larger_than_the_budget_takes_all_of_it() -> None:
    budget = BodyBudget(100)
    async with budget.reserve(10_000, wait=1):
        assert budget.in_use == 100
