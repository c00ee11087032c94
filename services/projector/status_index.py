"""Which tasks are in which status: one bit per task position, per index and status.

The projector notes where each task of a batch is now (``contracts.view`` describes the
layout) and flushes the notes after the views are written: at once when it was idle, at most
every ``FLUSH_INTERVAL`` under load, so many tasks' moves share one write of each page, counts
list and head. Bits are set and cleared, never counted up or down: each page's count is its
popcount, so replaying the events after a crash writes the same values and the totals stay
exact. This projector is the only writer; its pages, counts and heads are cached in memory.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.view import (
    INDEX_ALL,
    STATUS_GROUP_PAGES,
    STATUS_PAGE_BITS,
    STATUSES,
    StatusHead,
    counts_decoder,
    status_bits_key,
    status_counts_key,
    status_head_decoder,
    status_head_key,
    tool_index,
)
from infra import nats_layout
from infra.lru import Lru

_EMPTY_PAGE = bytes(STATUS_PAGE_BITS // 8)
# Under load, how often the notes are written. Every status change wrote ~10 keys one at a time
# (30 per task): small template tasks lost a fifth of their throughput (service/limit 0.69 →
# 0.54) and 9 ms of latency to it. Status lists lag the views by at most this.
FLUSH_INTERVAL = 0.05
_enc = msgspec.json.Encoder()


def _popcount(bits: bytes) -> int:
    return int.from_bytes(bits, "little").bit_count()


class Move(NamedTuple):
    """Where a task is now: its list position, tool and status."""

    position: int
    tool: str
    status: str


class StatusIndex:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._bits: Lru[tuple[str, str, int], bytes] = Lru(8192)  # (index, status, page) -> bits
        self._counts: Lru[tuple[str, str, int], list[int]] = Lru(512)  # (index, status, group) -> per-page counts
        self._heads: dict[tuple[str, str], StatusHead] = {}
        self._pending: dict[int, Move] = {}  # position -> where that task is now, not yet written

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

    def note(self, move: Move) -> None:
        """Remember where a task is now; ``flush`` writes it. The latest note of a task wins."""
        self._pending[move.position] = move

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def apply(self, moves: list[Move]) -> None:
        for move in moves:
            self.note(move)
        await self.flush()

    async def flush(self) -> int:
        """Write every page, counts list and head that the noted tasks change; how many writes.

        Each noted task's bit is set in its status and cleared in the others, in every index it is
        in. Counts and heads are recomputed for every page a note touches and written where they
        differ from what is stored (an absent one reads as empty), so a flush cut short by a crash
        is completed by replaying it.
        The writes are pipelined and their acknowledgements awaited together; the caches take the
        new values only once all are stored (a failed flush is simply done again).
        """
        if not self._pending:
            return 0
        wanted: dict[tuple[str, str, int], dict[int, bool]] = defaultdict(dict)
        for move in self._pending.values():
            page, bit = divmod(move.position, STATUS_PAGE_BITS)
            for index in (INDEX_ALL, tool_index(move.tool)):
                for status in STATUSES:
                    wanted[(index, status, page)][bit] = status == move.status
        writes: dict[str, bytes] = {}
        pages: dict[tuple[str, str, int], bytes] = {}
        for key, bits in wanted.items():
            old = await self._page(*key)
            number = int.from_bytes(old, "little")
            for bit, on in bits.items():
                number = number | (1 << bit) if on else number & ~(1 << bit)
            pages[key] = number.to_bytes(len(_EMPTY_PAGE), "little")
            if pages[key] != old:
                writes[status_bits_key(*key)] = pages[key]
        touched: dict[tuple[str, str], dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        for index, status, page in pages:
            touched[(index, status)][page // STATUS_GROUP_PAGES].add(page)
        counts_now: dict[tuple[str, str, int], list[int]] = {}
        heads_now: dict[tuple[str, str], StatusHead] = {}
        for (index, status), groups_touched in touched.items():
            head = await self._head(index, status)
            groups = dict(head.groups)
            for group, in_group in groups_touched.items():
                stored = await self._group(index, status, group)
                counts = list(stored)
                for page in in_group:
                    counts[page % STATUS_GROUP_PAGES] = _popcount(pages[(index, status, page)])
                if counts != stored:
                    writes[status_counts_key(index, status, group)] = _enc.encode(counts)
                counts_now[(index, status, group)] = counts
                groups[group] = sum(counts)
            new_head = StatusHead(count=sum(groups.values()), groups={g: n for g, n in groups.items() if n})
            if new_head != head:
                writes[status_head_key(index, status)] = _enc.encode(new_head)
            heads_now[(index, status)] = new_head
        if writes:
            await nats_layout.put_pipelined(self._kv._js, self._kv, writes.items(), 10)  # noqa: SLF001
        for key, value in pages.items():
            self._bits.remember(key, value)
        for key, counts in counts_now.items():
            self._counts.remember(key, counts)
        self._heads.update(heads_now)
        self._pending.clear()
        return len(writes)
