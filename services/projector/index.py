"""The task-list index: uids numbered in submission order, stored in fixed-size pages.

A list request reads the head and at most two pages, whatever the offset. The head holds the
count, the tracking position (``last_seq``: a replayed event is not appended twice) and the
last, partly filled page, so appending a batch is one write (plus one per page it fills).
"""

from __future__ import annotations

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.view import INDEX_PAGE_SIZE, IndexHead, head_decoder, index_head_key, index_page_key, page_decoder
from infra import nats_layout

_enc = msgspec.json.Encoder()


class TaskIndex:
    """One index (all tasks, or one tool's), cached in memory; this projector is its writer."""

    def __init__(self, kv: KeyValue, name: str) -> None:
        self._kv = kv
        self._name = name
        self._head: IndexHead | None = None
        self._head_rev = 0

    async def _load(self) -> None:
        try:
            entry = await self._kv.get(index_head_key(self._name))
            head, self._head_rev = head_decoder.decode(entry.value), entry.revision
        except KeyNotFoundError:
            head, self._head_rev = IndexHead(), 0
        if head.tail is None:  # written before the head kept the last page: it is its own key
            head.tail = await self._page(head.count // INDEX_PAGE_SIZE) if head.count % INDEX_PAGE_SIZE else []
        self._head = head

    async def position_of(self, uid: str, look_back: int = 8) -> int | None:
        """Where an indexed uid stands, searched from the newest end (a replayed creation: the
        uid was appended in the batch that crashed, so it is among the last few pages)."""
        if self._head is None:
            await self._load()
        assert self._head is not None and self._head.tail is not None
        last = self._head.count // INDEX_PAGE_SIZE
        for page in range(last, max(-1, last - look_back), -1):
            uids = self._head.tail if page == last else await self._page(page)
            if uid in uids:
                return page * INDEX_PAGE_SIZE + uids.index(uid)
        return None

    async def _page(self, page: int) -> list[str]:
        try:
            return page_decoder.decode((await self._kv.get(index_page_key(self._name, page))).value)
        except KeyNotFoundError:
            return []

    async def append(self, entries: list[tuple[int, str]]) -> dict[str, int]:
        """Append (stream seq, uid) pairs in order, skipping those already indexed; the
        positions of the uids appended."""
        for _ in range(5):
            if self._head is None:
                await self._load()
            assert self._head is not None and self._head.tail is not None
            fresh = [uid for seq, uid in entries if seq > self._head.last_seq]
            if not fresh:
                return {}
            count = self._head.count
            tail = self._head.tail[: count % INDEX_PAGE_SIZE]  # a copy: the head stays as stored
            page = count // INDEX_PAGE_SIZE
            for uid in fresh:
                tail.append(uid)
                if len(tail) == INDEX_PAGE_SIZE:
                    # Full pages never change again; readers find them once the head counts them.
                    await self._kv.put(index_page_key(self._name, page), _enc.encode(tail))
                    page, tail = page + 1, []
            head = IndexHead(count=count + len(fresh), last_seq=max(seq for seq, _ in entries), tail=tail)
            try:
                rev = await nats_layout.put_at(self._kv, index_head_key(self._name), _enc.encode(head), self._head_rev)
            except KeyWrongLastSequenceError:
                self._head = None  # someone else wrote: reload and redo
                continue
            self._head, self._head_rev = head, rev
            return {uid: count + i for i, uid in enumerate(fresh)}
        raise RuntimeError(f"index {self._name}: could not append after 5 attempts")
