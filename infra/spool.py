"""A local, bounded copy of stored files for services that share one machine.

When ``aerovision up`` runs everything on one host, the gateway, the matcher and the Object Store
all sit on the same disk: a matcher reading back an upload the gateway stored a millisecond ago
would copy it through nats-server again (~1.5 ms of CPU per 350 KB). The spool keeps a copy of
such a file, keyed by its Object Store path, so that read is a local file read; the reader drops
the copy when it is done (a copy deleted within seconds usually never reaches the disk).

The Object Store stays the source of truth: a file is spooled while the store stores it and
dropped again if the store refuses it (readers learn of a file from an event published only after
the store acknowledged it), a missing or evicted copy falls back to the store, and deleting the
whole spool folder loses nothing.

Writes are atomic (temporary file, then rename), so a reader never sees half a file. The folder
is bounded: past ``max_bytes`` the oldest copies are removed (copies nobody dropped: a task
taken by a matcher on another machine, a process killed mid-task).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger("spool")


class LocalSpool:
    def __init__(self, root: Path, max_bytes: int, sweep_every: float = 30.0) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._sweep_every = sweep_every
        self._next_sweep = 0.0
        self._written = 0
        self._quiet_until = 0.0
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # an unusable spool is only a slower read
            log.warning("spool_unavailable", root=str(root), error=str(exc))

    @classmethod
    def optional(cls, root: str, max_bytes: int) -> "LocalSpool | None":
        """The spool in ``root``, or None when no folder is configured."""
        return cls(Path(root), max_bytes) if root else None

    def _file(self, name: str) -> Path:
        # One flat folder: object paths hold '/', and a quoted name cannot climb out of it.
        return self.root / quote(name, safe="")

    def read(self, name: str) -> bytes | None:
        try:
            return self._file(name).read_bytes()
        except OSError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Keep a copy; failures are logged, never raised (the store keeps the file)."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, self._file(name))
            except BaseException:
                _unlink(tmp)
                raise
        except OSError as exc:
            now = time.monotonic()
            if now >= self._quiet_until:  # a full or read-only disk: say so once a minute, not per file
                self._quiet_until = now + 60.0
                log.warning("spool_write_failed", name=name, error=str(exc))
            return
        self._written += len(data)
        now = time.monotonic()
        if now >= self._next_sweep or self._written > self.max_bytes // 4:
            self._next_sweep, self._written = now + self._sweep_every, 0
            self.sweep()

    def discard(self, name: str) -> None:
        _unlink(str(self._file(name)))

    def sweep(self) -> int:
        """Remove the oldest copies until the folder is under its budget; the bytes removed."""
        entries = []
        total = 0
        stale_tmp = time.time() - 3600
        try:
            with os.scandir(self.root) as it:
                for entry in it:
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    if entry.name.startswith(".tmp-"):
                        if st.st_mtime < stale_tmp:  # left by a process killed mid-write
                            _unlink(entry.path)
                        continue
                    entries.append((st.st_mtime, st.st_size, entry.path))
                    total += st.st_size
        except OSError:
            return 0
        removed = 0
        if total > self.max_bytes:
            entries.sort()
            for _, size, path in entries:
                if total - removed <= self.max_bytes * 3 // 4:  # hysteresis: not at every write
                    break
                _unlink(path)
                removed += size
            log.info("spool_swept", removed_bytes=removed, kept_bytes=total - removed)
        return removed


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
