"""Process settings made through the C library, for every AeroVision process.

**Allocator.** glibc serves allocations above its mmap threshold with a fresh ``mmap`` and returns them with
``munmap``: every 300 KB image buffer, PNG, pickled job or NATS frame then costs a page fault
per 4 KB page, and the kernel zeroes each page. Measured here: storing a 507 KB result through
nats-py took 2.0 ms of CPU, of which ~1 ms were such faults (building the PUB frame alone:
0.57 ms). With buffers under 16 MiB served from the heap, and up to 32 MiB of freed heap kept
for reuse instead of trimmed, the same put takes 1.0 ms. The cost is memory: each process may
keep up to 32 MiB of freed heap.

**Dying with the parent.** A child process (a service under ``aerovision up``, its embedded
nats-server, a matcher's worker) gets a signal when its parent dies, even by SIGKILL: nothing is
left running orphaned.

**Exit status.** A service whose NATS connection was closed for good exits with
``EXIT_CONNECTION_LOST`` so that whatever supervises it (``aerovision up``, compose, systemd)
starts it again; a stop that was asked for exits 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 2**20
TRIM_THRESHOLD = 32 * 2**20
# EX_TEMPFAIL (sysexits.h): "a temporary failure; the user is invited to retry" - by restarting.
EXIT_CONNECTION_LOST = 75


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only).

    Meant as a ``preexec_fn``. The signal follows the death of the thread that forked, so fork
    from the main thread. With ``parent`` (the forker's pid, taken before the fork), a parent
    that died before the request took effect is noticed too: the child signals itself.
    """
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)


def tied_to_this_process(sig: int = signal.SIGTERM):
    """A ``preexec_fn`` for children that must not outlive the calling process."""
    parent = os.getpid()
    return lambda: die_with_parent(sig, parent)


def ensure_open_files(needed: int) -> int:
    """Raise this process's soft limit of open files towards ``needed`` (up to the hard limit);
    returns the soft limit in force. A server that runs out of descriptors stops accepting."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def tune_allocator() -> bool:
    """Apply the allocator settings above; False where the C library is not glibc (nothing changes)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False  # not Linux, or musl and others: no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
