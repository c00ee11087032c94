"""Process-wide allocator settings for processes that move images (every AeroVision process).

glibc serves allocations above its mmap threshold with a fresh ``mmap`` and returns them with
``munmap``: every 300 KB image buffer, PNG, pickled job or NATS frame then costs a page fault
per 4 KB page, and the kernel zeroes each page. Measured here: storing a 507 KB result through
nats-py took 2.0 ms of CPU, of which ~1 ms were such faults (building the PUB frame alone:
0.57 ms). With buffers under 16 MiB served from the heap, and up to 32 MiB of freed heap kept
for reuse instead of trimmed, the same put takes 1.0 ms. The cost is memory: each process may
keep up to 32 MiB of freed heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 2**20
TRIM_THRESHOLD = 32 * 2**20


def tune_allocator() -> bool:
    """Apply the settings above; False where the C library is not glibc (nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others: no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
