"""Reading the task list's indexes (``contracts.view``): which tasks are on a page, newest first.

Pure of NATS: every read goes through the ``get`` it is given (a KV get that returns the value,
or None for a missing key), so a page costs a handful of gets at any offset.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from contracts.view import (
    INDEX_ALL,
    INDEX_PAGE_SIZE,
    STATUS_GROUP_PAGES,
    IndexHead,
    counts_decoder,
    head_decoder,
    index_head_key,
    index_page_key,
    members,
    page_decoder,
    status_bits_key,
    status_counts_key,
    status_head_decoder,
    status_head_key,
    tool_index,
)

Get = Callable[[str], Awaitable[bytes | None]]


async def _head(get: Get, index: str) -> IndexHead | None:
    stored = await get(index_head_key(index))
    return head_decoder.decode(stored) if stored is not None else None


async def _uids_at(get: Get, index: str, head: IndexHead | None, ordinals: list[int]) -> list[str | None]:
    """The uids at these positions of an index whose head is ``head`` (None where it does not reach)."""
    if head is None:
        return [None] * len(ordinals)
    last = head.count // INDEX_PAGE_SIZE  # the partly filled page: in the head (older heads: a key)

    async def page_uids(page: int) -> list[str]:
        if page == last and head.tail is not None:
            return head.tail
        value = await get(index_page_key(index, page))
        return page_decoder.decode(value) if value else []

    pages = sorted({o // INDEX_PAGE_SIZE for o in ordinals if 0 <= o < head.count})
    found = dict(zip(pages, await asyncio.gather(*(page_uids(p) for p in pages))))
    out: list[str | None] = []
    for o in ordinals:
        uids = found.get(o // INDEX_PAGE_SIZE, [])
        out.append(uids[o % INDEX_PAGE_SIZE] if 0 <= o < head.count and o % INDEX_PAGE_SIZE < len(uids) else None)
    return out


async def page_of_tasks(get: Get, offset: int, limit: int, tool: str | None) -> tuple[int, list[str]]:
    """Total and the uids of one page of an index (all tasks, or one tool's), newest first."""
    index = tool_index(tool) if tool else INDEX_ALL
    head = await _head(get, index)
    if head is None:
        return 0, []
    total = head.count
    hi = total - offset  # ordinals [lo, hi) newest first
    lo = max(0, hi - limit)
    uids = await _uids_at(get, index, head, list(range(hi - 1, lo - 1, -1))) if hi > 0 else []
    return total, [uid for uid in uids if uid is not None]


async def page_in_status(get: Get, offset: int, limit: int, status: str, tool: str | None) -> tuple[int, list[str]]:
    """Total and the uids of one page of the tasks in ``status`` (of one tool, or all), newest first."""
    index = tool_index(tool) if tool else INDEX_ALL
    stored = await get(status_head_key(index, status))
    if stored is None:
        return 0, []
    head = status_head_decoder.decode(stored)
    # From the newest end: skip whole groups, then whole pages, before the window; then take
    # pages until it is covered. ``newer`` counts the members of everything skipped.
    newer, taken, pages = 0, 0, []
    for group in sorted(head.groups, reverse=True):
        if not pages and newer + head.groups[group] <= offset:
            newer += head.groups[group]
            continue
        value = await get(status_counts_key(index, status, group))
        counts = counts_decoder.decode(value) if value else []
        for slot in range(len(counts) - 1, -1, -1):
            count = counts[slot]
            if not count:
                continue
            if not pages and newer + count <= offset:
                newer += count
                continue
            pages.append(group * STATUS_GROUP_PAGES + slot)
            taken += count
            if newer + taken >= offset + limit:
                break
        if pages and newer + taken >= offset + limit:
            break
    bits = await asyncio.gather(*(get(status_bits_key(index, status, page)) for page in pages))
    ordinals = [o for page, b in zip(pages, bits) for o in members(b or b"", page)]
    start = offset - newer
    # Positions are the "all" index's numbering, whatever the filter.
    uids = await _uids_at(get, INDEX_ALL, await _head(get, INDEX_ALL), ordinals[start:start + limit])
    return head.count, [uid for uid in uids if uid is not None]
