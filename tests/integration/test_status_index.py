"""The status index against a real KV bucket, read back as the gateway reads it, checked against
a plain model: exact totals, newest first, any offset, with and without a tool, through replays."""

from __future__ import annotations

import random
import uuid

from nats.js.errors import KeyNotFoundError

from contracts.view import STATUS_GROUP_PAGES, STATUS_PAGE_BITS
from services.gateway.listing import page_in_status, page_of_tasks
from services.projector.index import TaskIndex
from services.projector.status_index import Move, StatusIndex


def _getter(kv):
    async def get(key: str) -> bytes | None:
        try:
            return (await kv.get(key)).value
        except KeyNotFoundError:
            return None
    return get


async def test_pages_in_status_match_a_plain_model(kv):
    rng = random.Random(5)
    # Enough tasks to cross pages; one far position crosses into the second group of pages.
    count = 3 * STATUS_PAGE_BITS + 40
    uids = [str(uuid.uuid4()) for _ in range(count)]
    positions = await TaskIndex(kv, "all").append([(i + 1, uid) for i, uid in enumerate(uids)])
    assert positions == {uid: i for i, uid in enumerate(uids)}
    tools = [rng.choice(["template", "feature"]) for _ in uids]
    status: dict[int, str] = {}
    index = StatusIndex(kv)
    # Created in batches, then moved on in a shuffled order, as a busy system would.
    for start in range(0, count, 97):
        batch = range(start, min(count, start + 97))
        await index.apply([Move(p, tools[p], "queued") for p in batch])
        status.update({p: "queued" for p in batch})
    for p in rng.sample(range(count), count // 2):
        await index.apply([Move(p, tools[p], "processing")])
        status[p] = "processing"
    moves = []
    for p in [p for p, s in status.items() if s == "processing"][: count // 3]:
        end = "done" if rng.random() < 0.8 else "error"
        moves.append(Move(p, tools[p], end))
        status[p] = end
    await index.apply(moves)
    await index.apply(moves)  # a replayed batch changes nothing
    await StatusIndex(kv).apply(moves)  # nor does a restarted projector replaying it

    get = _getter(kv)
    for tool in (None, "template", "feature"):
        for state in ("queued", "processing", "done", "error"):
            expected = [uids[p] for p in range(count - 1, -1, -1)
                        if status[p] == state and (tool is None or tools[p] == tool)]
            for offset, limit in [(0, 50), (0, 200), (37, 50), (len(expected) - 10, 50), (len(expected), 5), (1000, 50)]:
                offset = max(0, offset)
                total, page = await page_in_status(get, offset, limit, state, tool)
                assert total == len(expected), (tool, state)
                assert page == expected[offset:offset + limit], (tool, state, offset, limit)
    total, newest = await page_of_tasks(get, 0, 3, None)
    assert (total, newest) == (count, uids[::-1][:3])


async def test_a_second_group_of_pages_is_walked_too(kv):
    far = STATUS_PAGE_BITS * STATUS_GROUP_PAGES + 7  # the first position of the second group, and then some
    index = StatusIndex(kv)
    await index.apply([Move(3, "template", "done"), Move(far, "template", "done"), Move(far + 1, "template", "queued")])
    get = _getter(kv)
    from contracts.view import members, status_bits_key, status_head_decoder, status_head_key
    head = status_head_decoder.decode(await get(status_head_key("all", "done")))
    assert head.count == 2 and head.groups == {0: 1, 1: 1}
    page = far // STATUS_PAGE_BITS
    assert members(await get(status_bits_key("all", "done", page)), page) == [far]
    # Without uids at those positions the page is empty, but the total is still exact.
    assert await page_in_status(get, 0, 10, "done", None) == (2, [])


async def test_a_flush_cut_short_is_completed_by_replaying_it_and_a_replay_writes_nothing(kv):
    from contracts.view import status_counts_key, status_head_key, tool_index
    uids = [str(uuid.uuid4()) for _ in range(40)]
    await TaskIndex(kv, "all").append([(i + 1, uid) for i, uid in enumerate(uids)])
    index = StatusIndex(kv)
    assert await index.apply([Move(p, "template", "queued") for p in range(40)]) is None
    keys = [key(index_name, status) for index_name in ("all", tool_index("template")) for status in ("done", "error", "queued")
            for key in (lambda i, s: status_counts_key(i, s, 0), status_head_key)]
    before = {k: await _getter(kv)(k) for k in keys}
    moves = [Move(p, "template", "done" if p % 3 else "error") for p in range(40)]
    for move in moves:
        index.note(move)
    assert index.pending == 40 and await index.flush() > 0 and index.pending == 0
    for move in moves:  # the same facts again (a redelivered batch): nothing to write
        index.note(move)
    assert await index.flush() == 0
    # A crash after the pages were stored but before their counts and heads: the stale ones are
    # what a restarted projector reads, and replaying the batch puts them right.
    for k, value in before.items():
        if value is None:
            await kv.delete(k)
        else:
            await kv.put(k, value)
    restarted = StatusIndex(kv)
    for move in moves:
        restarted.note(move)
    assert await restarted.flush() == 12
    get = _getter(kv)
    expected_done = [uids[p] for p in range(39, -1, -1) if p % 3]
    assert await page_in_status(get, 0, 100, "done", None) == (len(expected_done), expected_done)
    assert await page_in_status(get, 0, 100, "queued", "template") == (0, [])
    assert (await page_in_status(get, 0, 100, "error", "template"))[0] == 14
