"""The task-list index against a real KV bucket: pages, the head's tail, replays, older heads."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError

from contracts.view import INDEX_PAGE_SIZE, head_decoder, index_head_key, index_page_key, page_decoder
from infra import nats_layout
from services.projector.index import TaskIndex
from tests import events as ev


async def _head(kv, name):
    return head_decoder.decode((await kv.get(index_head_key(name))).value)


async def _page(kv, name, page):
    return page_decoder.decode((await kv.get(index_page_key(name, page))).value)


async def test_full_pages_are_keys_and_the_last_page_lives_in_the_head(kv):
    uids = [str(uuid.uuid4()) for _ in range(INDEX_PAGE_SIZE + 44)]
    entries = list(enumerate(uids, start=1))
    index = TaskIndex(kv, "all")
    for i in range(0, len(entries), 37):  # batches that straddle the page boundary
        await index.append(entries[i:i + 37])
    head = await _head(kv, "all")
    assert (head.count, head.last_seq) == (len(uids), len(uids))
    assert head.tail == uids[INDEX_PAGE_SIZE:]
    assert await _page(kv, "all", 0) == uids[:INDEX_PAGE_SIZE]
    with pytest.raises(KeyNotFoundError):
        await kv.get(index_page_key("all", 1))  # the partly filled page is not written on its own

    # A replay (a restarted projector, with or without its memory) appends nothing twice.
    await index.append(entries[-50:])
    await TaskIndex(kv, "all").append(entries)
    assert await _head(kv, "all") == head


async def test_a_head_written_before_it_kept_the_tail_is_continued(kv):
    uids = [str(uuid.uuid4()) for _ in range(INDEX_PAGE_SIZE + 10)]
    # The older layout: every page its own key, the head only counting.
    await kv.put(index_page_key("all", 0), msgspec.json.encode(uids[:INDEX_PAGE_SIZE]))
    await kv.put(index_page_key("all", 1), msgspec.json.encode(uids[INDEX_PAGE_SIZE:]))
    await kv.put(index_head_key("all"), msgspec.json.encode({"count": len(uids), "last_seq": 500}))
    more = [str(uuid.uuid4()) for _ in range(5)]
    await TaskIndex(kv, "all").append([(501 + i, uid) for i, uid in enumerate(more)])
    head = await _head(kv, "all")
    assert head.count == len(uids) + 5
    assert head.tail == uids[INDEX_PAGE_SIZE:] + more
    assert await _page(kv, "all", 0) == uids[:INDEX_PAGE_SIZE]


async def test_the_gateway_lists_from_an_older_head_too(private_nats):
    """A head without the tail (written before it was kept there): the page is read as a key."""
    from contracts import names
    from contracts.events import encode_event, subject_of
    from services.gateway.backend import Backend
    from services.gateway.settings import GatewaySettings

    server, client = private_nats  # its own stream: no other test sees these
    backend = Backend(client, GatewaySettings(nats_url=server.url))
    try:
        await backend.start()
        js = client.jetstream()
        uids = [str(uuid.uuid4()) for _ in range(3)]
        for uid in uids:  # not projected: the gateway answers them from the events themselves
            event = ev.chain_submitted(uid)
            await js.publish(subject_of(event), encode_event(event))
        index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET, 1)
        await index_kv.put(index_page_key("tool-chain", 0), msgspec.json.encode(uids))
        await index_kv.put(index_head_key("tool-chain"), msgspec.json.encode({"count": 3, "last_seq": 3}))
        total, views = await backend.task_page(0, 2, "chain")
        assert total == 3
        assert [msgspec.json.decode(v)["uid"] for v in views] == uids[::-1][:2]
    finally:
        await backend.close()
