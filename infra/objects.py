"""Files (uploads, thumbnails, results) in the NATS Object Store, read and written fast.

The format is the Object Store's own (``$O.<bucket>.M.<b64 name>`` meta with a rollup,
``$O.<bucket>.C.<nuid>`` chunks), so ``nats object get`` and nats-py read what we write. We do not
use nats-py's ``ObjectStore.get``: it creates a consumer per read and polls flow control every
0.25 s (nats.py #703), ~265 ms for 5 MiB. Here one batched direct get returns every chunk
(~20 ms for 5 MiB).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from contracts import names
from infra import nats_layout
from infra.spool import LocalSpool

_STREAM = f"OBJ_{names.FILES_BUCKET}"
_MAX_CHUNK = 1024 * 1024


class FileStoreError(Exception):
    """A file could not be stored or read back intact, or its name is not one the store takes."""


# A name travels base64-encoded in a subject; nats-server closes a connection whose control line
# passes 4096 bytes, so names are bounded well below that (the gateway's own are under 200).
MAX_NAME = 1024


def _meta_subject(name: str) -> str:
    if not name or len(name) > MAX_NAME:
        raise FileStoreError(f"a stored file's name must be 1 to {MAX_NAME} characters")
    return f"$O.{names.FILES_BUCKET}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def _chunk_subject(nuid: str) -> str:
    return f"$O.{names.FILES_BUCKET}.C.{nuid}"


class FileStore:
    """Put and get whole files by path (e.g. ``uploads/<uid>/image.png``)."""

    def __init__(self, nc: NATS, spool: LocalSpool | None = None) -> None:
        self._nc = nc
        self._spool = spool
        self._js = nc.jetstream()
        # Leave room for headers under the server's max_payload.
        self._chunk = max(64 * 1024, min(_MAX_CHUNK, (nc.max_payload or _MAX_CHUNK) - 4096))

    async def _info(self, name: str) -> dict | None:
        try:
            msg = await self._js.get_msg(_STREAM, subject=_meta_subject(name), direct=True)
        except NotFoundError:
            return None
        info = json.loads(msg.data or b"{}")
        return None if info.get("deleted") else info

    async def put(self, name: str, data: bytes, *, replace: bool = False, local_copy: bool = False) -> None:
        """Store ``data`` under ``name``; with ``replace``, drop the chunks of an older version;
        with ``local_copy``, keep a copy in the spool for a reader on this machine (an upload the
        matcher reads in a moment)."""
        old = await self._info(name) if replace else None
        nuid = self._nc._nuid.next().decode()
        subject = _chunk_subject(nuid)
        count = (len(data) + self._chunk - 1) // self._chunk
        info = {
            "name": name,
            "bucket": names.FILES_BUCKET,
            "nuid": nuid,
            "size": len(data),
            "chunks": count,
            "mtime": dt.datetime.now(dt.timezone.utc).isoformat(),
            "digest": "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode(),
            "options": {"max_chunk_size": self._chunk},
        }
        # Chunks and meta in one round trip: the server stores one connection's messages to a
        # stream in order, and a meta stored without its chunks (a failed chunk) reads as damaged,
        # never as a short file; the caller only uses the file once every ack is in.
        # A whole-bytes slice is the object itself: a file of one chunk is not copied again.
        acks = [
            await self._js.publish_async(subject, data[i : i + self._chunk])
            for i in range(0, len(data), self._chunk)
        ]
        acks.append(await self._js.publish_async(
            _meta_subject(name), json.dumps(info).encode(), headers={"Nats-Rollup": "sub"}))
        spooled = local_copy and self._spool is not None
        if spooled:
            # The local copy is written while the server stores the chunks (the flusher sends
            # them first, once we yield); a put that then fails drops it again.
            await asyncio.sleep(0)
            self._spool.write(name, data)
        # nats-py's publish_async futures never time out: a message the server lost in a crash
        # would hang the put for ever. Cancelling them frees their slots; the caller retries.
        try:
            await asyncio.wait_for(asyncio.gather(*acks), timeout=5.0 + len(data) / 2**20)
        except BaseException:
            for ack in acks:
                ack.cancel()
            if spooled:
                self._spool.discard(name)
            raise
        if old is not None and old.get("nuid"):
            await self._js.purge_stream(_STREAM, subject=_chunk_subject(old["nuid"]))

    async def get(self, name: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        if self._spool is not None and (local := self._spool.read(name)) is not None:
            return local
        info = await self._info(name)
        if info is None:
            return None
        size, chunks = int(info.get("size", 0)), int(info.get("chunks", 0))
        if size == 0:
            return b""
        parts = await self._read_chunks(_chunk_subject(info["nuid"]), chunks)
        data = b"".join(parts)
        digest = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        if len(data) != size or digest.rstrip("=") != str(info.get("digest", "")).rstrip("="):
            raise FileStoreError(f"{name}: stored file is incomplete or damaged")
        return data

    def drop_local_copy(self, name: str) -> None:
        """The local copy is no longer needed (the store keeps the file)."""
        if self._spool is not None:
            self._spool.discard(name)

    async def _read_chunks(self, subject: str, count: int) -> list[bytes]:
        msgs = await nats_layout.direct_get_batch(self._nc, _STREAM, subject, count)
        if len(msgs) != count:
            raise FileStoreError(f"expected {count} chunks, read {len(msgs)}")
        return [m.data for m in msgs]
