"""A bound on the request bodies the gateway holds at once.

A submission is read whole into memory (and parsed there: ``formdata.py``), so its memory is its
size, about twice over while it is parsed and stored. Bodies are read only once a handler asks,
and uvicorn stops reading a socket whose data nobody takes, so reserving a body's size before
reading it bounds what concurrent large uploads can hold. Past the budget a request waits a
little, then gets 429 with Retry-After instead of taking the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator


class BudgetExhausted(Exception):
    """No room for this body within the wait allowed."""


class BodyBudget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.in_use = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def reserve(self, size: int, wait: float) -> AsyncIterator[None]:
        """Hold ``size`` bytes of the budget (a body larger than all of it waits for all of it)."""
        size = min(size, self.max_bytes)
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.in_use + size <= self.max_bytes), wait)
            except asyncio.TimeoutError:
                raise BudgetExhausted from None
            self.in_use += size
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= size
                self._changed.notify_all()
