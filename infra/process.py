"""Process settings made through the C library, for every AeroVision process.

**Allocator.** glibc serves allocations above its mmap threshold with a fresh ``mmap`` and returns them with
``munmap``: every 300 KB image buffer, PNG, pickled job or NATS frame then costs a page fault
per 4 KB page, and the kernel zeroes each page. Measured here: storing a 507 KB result through
nats-py took 2.0 ms of CPU, of which ~1 ms were such faults (building the PUB frame alone:
0.57 ms). With buffers under 16 MiB served from the heap, and up to 32 MiB of freed heap kept
for reuse instead of trimmed, the same put takes 1.0 ms. The cost is memory: each process may
keep up to 32 MiB of freed heap.

**Dying with the parent.** A child process (a service under ``aerovision up``, a matcher's
worker) gets a signal when its parent dies, even by SIGKILL: nothing is left running orphaned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

_PR_SET_PDEATHSIG = 1
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 2**20
TRIM_THRESHOLD = 32 * 2**20


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only)."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))


def tune_allocator() -> bool:
    """Apply the allocator settings above; False where the C library is not glibc (nothing changes)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False  # not Linux, or musl and others: no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
