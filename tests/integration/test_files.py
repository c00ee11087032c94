"""The file store against a real nats-server: the Object Store's format, replacing, the spool."""

from __future__ import annotations

import os

import pytest
from nats.js.errors import NoStreamResponseError, NotFoundError

from contracts import names
from infra.objects import FileStore, FileStoreError
from infra.spool import LocalSpool


async def test_a_file_of_several_chunks_round_trips_and_nats_py_reads_it_too(nc):
    store = FileStore(nc)
    data = os.urandom(2 * 2**20 + 12345)  # three chunks of at most 1 MiB
    await store.put("uploads/t1/image.png", data)
    assert await store.get("uploads/t1/image.png") == data
    # The Object Store's own format: nats-py's reader (and `nats object get`) read what we wrote.
    theirs = await nc.jetstream().object_store(names.FILES_BUCKET)
    assert (await theirs.get("uploads/t1/image.png")).data == data
    assert await store.get("uploads/t1/missing.png") is None


async def test_replacing_a_file_drops_the_older_chunks(nc):
    store, js = FileStore(nc), nc.jetstream()
    await store.put("results/t2/matches.png", b"first attempt" * 1000)
    stream = f"OBJ_{names.FILES_BUCKET}"
    before = (await js.stream_info(stream)).state.messages
    await store.put("results/t2/matches.png", b"second attempt" * 1000, replace=True)
    assert await store.get("results/t2/matches.png") == b"second attempt" * 1000
    # One chunk and the meta rolled up in place of the old ones: the count does not grow.
    assert (await js.stream_info(stream)).state.messages == before


async def test_a_damaged_file_is_reported_not_returned(nc):
    store, js = FileStore(nc), nc.jetstream()
    await store.put("uploads/t3/image.png", b"x" * 5000)
    objects = await js.object_store(names.FILES_BUCKET)
    info = await objects.get_info("uploads/t3/image.png")
    await js.purge_stream(f"OBJ_{names.FILES_BUCKET}", subject=f"$O.{names.FILES_BUCKET}.C.{info.nuid}")
    with pytest.raises(FileStoreError):
        await store.get("uploads/t3/image.png")


async def test_the_local_copy_is_read_first_and_dropped_on_request(nc, tmp_path):
    spool = LocalSpool(tmp_path / "spool", 2**20)
    writer, reader = FileStore(nc, spool), FileStore(nc, spool)
    await writer.put("uploads/t4/image.png", b"upload", local_copy=True)
    assert spool.read("uploads/t4/image.png") == b"upload"
    assert await reader.get("uploads/t4/image.png") == b"upload"
    reader.drop_local_copy("uploads/t4/image.png")
    assert spool.read("uploads/t4/image.png") is None
    assert await reader.get("uploads/t4/image.png") == b"upload"  # from the store


async def test_a_put_the_store_refuses_leaves_no_local_copy(private_nats, tmp_path):
    _, client = private_nats  # no files bucket on this one
    spool = LocalSpool(tmp_path / "spool", 2**20)
    with pytest.raises(NoStreamResponseError):
        await FileStore(client, spool).put("uploads/t5/image.png", b"upload", local_copy=True)
    assert spool.read("uploads/t5/image.png") is None
    with pytest.raises(NotFoundError):
        await client.jetstream().stream_info(f"OBJ_{names.FILES_BUCKET}")
