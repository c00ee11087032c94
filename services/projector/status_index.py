"""Which tasks are in which status: one bit per task position, per index and status.

The projector moves a task's bit when its status changes (``contracts.view`` describes the
layout). Bits are set and cleared, never counted up or down: each page's count is its popcount,
so a batch replayed after a crash writes the same pages, counts and heads again and the totals
stay exact. This projector is the only writer; its pages, counts and heads are cached in memory.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import NamedTuple

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.view import (
    INDEX_ALL,
    STATUS_GROUP_PAGES,
    STATUS_PAGE_BITS,
    StatusHead,
    counts_decoder,
    status_bits_key,
    status_counts_key,
    status_head_decoder,
    status_head_key,
    tool_index,
)

_EMPTY_PAGE = bytes(STATUS_PAGE_BITS // 8)
_enc = msgspec.json.Encoder()


def _popcount(bits: bytes) -> int:
    return int.from_bytes(bits, "little").bit_count()


class Move(NamedTuple):
    """A task's status changed (``old`` is None for a task just created)."""

    position: int
    tool: str
    old: str | None
    new: str


class _Lru(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


class StatusIndex:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._bits = _Lru(8192)  # (index, status, page) -> bits
        self._counts = _Lru(512)  # (index, status, group) -> per-page counts
        self._heads: dict[tuple[str, str], StatusHead] = {}

    async def _get(self, key: str) -> bytes | None:
        try:
            return (await self._kv.get(key)).value
        except KeyNotFoundError:
            return None

    async def _page(self, index: str, status: str, page: int) -> bytes:
        key = (index, status, page)
        if key not in self._bits:
            self._bits.remember(key, await self._get(status_bits_key(*key)) or _EMPTY_PAGE)
        return self._bits[key]

    async def _group(self, index: str, status: str, group: int) -> list[int]:
        key = (index, status, group)
        if key not in self._counts:
            stored = await self._get(status_counts_key(*key))
            self._counts.remember(key, counts_decoder.decode(stored) if stored else [0] * STATUS_GROUP_PAGES)
        return self._counts[key]

    async def _head(self, index: str, status: str) -> StatusHead:
        key = (index, status)
        if key not in self._heads:
            stored = await self._get(status_head_key(index, status))
            self._heads[key] = status_head_decoder.decode(stored) if stored else StatusHead()
        return self._heads[key]

    async def apply(self, moves: list[Move]) -> None:
        """Move each task's bit from its old status to its new one, in every index it is in."""
        flips: dict[tuple[str, str, int], dict[int, bool]] = defaultdict(dict)
        for move in moves:
            page, bit = divmod(move.position, STATUS_PAGE_BITS)
            for index in (INDEX_ALL, tool_index(move.tool)):
                if move.old is not None and move.old != move.new:
                    flips[(index, move.old, page)][bit] = False
                flips[(index, move.new, page)][bit] = True
        touched: dict[tuple[str, str], set[int]] = defaultdict(set)
        for (index, status, page), bits in flips.items():
            old = await self._page(index, status, page)
            number = int.from_bytes(old, "little")
            for bit, on in bits.items():
                number = number | (1 << bit) if on else number & ~(1 << bit)
            new = number.to_bytes(len(_EMPTY_PAGE), "little")
            if new != old:
                await self._kv.put(status_bits_key(index, status, page), new)
                self._bits.remember((index, status, page), new)
            touched[(index, status)].add(page)
        for (index, status), pages in touched.items():
            head = await self._head(index, status)
            groups = dict(head.groups)
            for group in sorted({page // STATUS_GROUP_PAGES for page in pages}):
                counts = list(await self._group(index, status, group))
                for page in pages:
                    if page // STATUS_GROUP_PAGES == group:
                        counts[page % STATUS_GROUP_PAGES] = _popcount(await self._page(index, status, page))
                await self._kv.put(status_counts_key(index, status, group), _enc.encode(counts))
                self._counts.remember((index, status, group), counts)
                groups[group] = sum(counts)
            head = StatusHead(count=sum(groups.values()), groups={g: n for g, n in groups.items() if n})
            await self._kv.put(status_head_key(index, status), _enc.encode(head))
            self._heads[(index, status)] = head
