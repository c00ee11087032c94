"""A pool of worker processes for OpenCV work, each killable on its own.

OpenCV can crash (SIGSEGV) or hang on hostile input. Running each job in a child process keeps
the matcher alive: a crash becomes ``WorkerCrashed``, a job over its deadline ``JobTimedOut``
(its process is killed), and the worker is replaced. The event loop never blocks on a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Callable

import structlog

from contracts.process import die_with_parent, tune_allocator

log = structlog.get_logger("matcher.pool")


class WorkerCrashed(Exception):
    """The worker process died while running the job."""


class JobTimedOut(Exception):
    """The job ran past its deadline and its worker was killed."""


def prepare_worker_process() -> None:
    """How a worker process runs OpenCV (the benchmark's in-process limit uses it too)."""
    tune_allocator()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)  # one job per core: OpenCV's own threads would oversubscribe
    except ImportError:
        pass


def _worker_main(conn: Connection) -> None:
    die_with_parent(signal.SIGKILL)  # no orphaned workers if the matcher is killed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    prepare_worker_process()
    while True:
        try:
            fn, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send((True, fn(arg)))
        except Exception as exc:  # reported to the parent, which decides what it means
            conn.send((False, f"{type(exc).__name__}: {exc}"))


# A job's images go through the pipe both ways (~0.9 MB for a 640×480 task). With the default
# socket buffers each direction takes a dozen wake-ups; in a pipe benchmark here, 4 MiB buffers
# cut the CPU of such a round trip from ~1.3 ms to ~0.5 ms (both processes together).
_PIPE_BUFFER = 4 * 2**20


def _widen(conn: Connection) -> None:
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PIPE_BUFFER)
        finally:
            sock.close()


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        _widen(self.conn)
        _widen(child)
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._ctx = mp.get_context("spawn")  # fork after asyncio/NATS threads is unsafe
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._threads = ThreadPoolExecutor(max_workers=size + 1, thread_name_prefix="pool-io")

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx)
        self._all.add(worker)
        return worker

    async def start(self) -> None:
        for _ in range(self.size):
            self._idle.put_nowait(self._spawn())

    async def run(self, fn: Callable[[Any], Any], arg: Any, timeout: float) -> Any:
        """Run ``fn(arg)`` in a worker; raises WorkerCrashed, JobTimedOut or RuntimeError."""
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        healthy = False
        try:
            await loop.run_in_executor(self._threads, worker.conn.send, (fn, arg))
            ok, value = await asyncio.wait_for(loop.run_in_executor(self._threads, worker.conn.recv), timeout)
            healthy = True
        except asyncio.TimeoutError:
            raise JobTimedOut(f"no result after {timeout:.0f} s") from None
        except (EOFError, OSError, BrokenPipeError):
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise WorkerCrashed(f"the worker process died ({reason})") from None
        finally:
            if healthy:
                self._idle.put_nowait(worker)
            else:
                self._all.discard(worker)
                await loop.run_in_executor(self._threads, worker.kill)
                self._idle.put_nowait(self._spawn())
                log.warning("worker_replaced")
        if not ok:
            raise RuntimeError(value)
        return value

    async def close(self) -> None:
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
