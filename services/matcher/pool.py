"""A pool of worker processes for OpenCV work, each killable on its own.

OpenCV can crash (SIGSEGV) or hang on hostile input. Running each job in a child process keeps
the matcher alive: a crash becomes ``WorkerCrashed``, a job over its deadline ``JobTimedOut``
(its process is killed), and the worker is replaced. The event loop never blocks on a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing as mp
import os
import pickle
import signal
import socket
import struct
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any, Callable, Generator

import structlog

from infra.process import die_with_parent, tune_allocator

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


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_main(conn: Connection, nice: int) -> None:
    die_with_parent(signal.SIGKILL)  # no orphaned workers if the matcher is killed
    if nice:
        # A slow lane's workers yield the CPU to the fast lane's: seconds-long jobs never make a
        # millisecond one wait for a core (the kernel weighs nice 10 at about a tenth of nice 0).
        os.nice(nice)
    # The parent decides when we stop: Ctrl-C reaches the whole process group, and systemd or a
    # killpg sends SIGTERM to every process; a worker dying with it would cost the task in hand
    # an attempt (a crash) during what should be a graceful stop. The parent started us with
    # both signals blocked, so one that came while this interpreter started is dropped here.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    prepare_worker_process()
    while True:
        try:
            fn, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = fn(arg)
            if inspect.isgenerator(result):
                result = _send_parts(conn, result)
            conn.send((True, result))
        except Exception as exc:  # reported to the parent, which decides what it means
            conn.send((False, f"{type(exc).__name__}: {exc}"))


def _send_parts(conn: Connection, parts: Generator) -> Any:
    """Send what a generator yields as it comes (tagged None); its return value is the result."""
    while True:
        try:
            part = next(parts)
        except StopIteration as end:
            return end.value
        conn.send((None, part))


# A job's images go through the pipe both ways (~0.9 MB for a 640×480 task). With the default
# socket buffers each direction takes a dozen wake-ups; in a pipe benchmark here, 4 MiB buffers
# cut the CPU of such a round trip from ~1.3 ms to ~0.5 ms (both processes together).
_PIPE_BUFFER = 4 * 2**20


def _widen(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PIPE_BUFFER)


class _Worker:
    """One worker process and the parent's end of its socket pair, read and written by the loop."""

    def __init__(self, ctx: Any, nice: int) -> None:
        self._sock, theirs = socket.socketpair()  # what ctx.Pipe(duplex=True) makes on Unix
        _widen(self._sock)
        _widen(theirs)
        child = Connection(theirs.detach())  # the worker speaks multiprocessing's framing
        self.process = ctx.Process(target=_worker_main, args=(child, nice), daemon=True)
        # The child inherits the blocked mask through fork and exec (see _worker_main); ours is
        # restored at once, and a signal that came meanwhile is delivered to us then.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        child.close()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, fn: Callable[[Any], Any], arg: Any, on_part: Callable[[Any], None]) -> tuple[bool, Any]:
        """Send ``(fn, arg)`` and read the answer, framed as ``multiprocessing.Connection`` frames
        them (the worker uses one): no thread hand-off per job, the event loop does the I/O.
        What a generator ``fn`` yields is handed to ``on_part`` as it arrives."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        reader = self._reader
        assert reader is not None
        payload = pickle.dumps((fn, arg), protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_frame_header(len(payload)))
        self._writer.write(payload)
        await self._writer.drain()
        while True:
            (size,) = struct.unpack("!i", await reader.readexactly(4))
            if size == -1:
                (size,) = struct.unpack("!Q", await reader.readexactly(8))
            tag, value = pickle.loads(await reader.readexactly(size))
            if tag is not None:
                return tag, value
            on_part(value)

    def terminate(self) -> None:
        """Kill the process and reap it. Blocks: the pool runs it off the event loop."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def close_pipe(self) -> None:
        """Close our end of the pipe; on the event loop's thread (its transport is not thread-safe)."""
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()


def _frame_header(size: int) -> bytes:
    return struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", size)


def _no_parts(part: Any) -> None:
    raise RuntimeError("the job sent partial results, but nobody takes them")


class WorkerPool:
    def __init__(self, size: int, nice: int = 0) -> None:
        self.size = size
        self._nice = nice
        self._ctx = mp.get_context("spawn")  # fork after asyncio/NATS threads is unsafe
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self._nice)
        self._all.add(worker)
        return worker

    async def start(self) -> None:
        # multiprocessing starts its resource tracker at the first Process.start(), and its
        # ensure_running() *unblocks* SIGINT and SIGTERM when done: inside _Worker's blocked
        # window, the first worker was then born with them deliverable, and a stop during its
        # start-up killed it (an attempt lost). Started here first, it leaves the mask alone.
        resource_tracker.ensure_running()
        for _ in range(self.size):
            self._idle.put_nowait(self._spawn())

    async def run(self, fn: Callable[[Any], Any], arg: Any, timeout: float,
                  on_part: Callable[[Any], None] = _no_parts) -> Any:
        """Run ``fn(arg)`` in a worker; raises WorkerCrashed, JobTimedOut or RuntimeError. When
        ``fn`` is a generator function, each value it yields is passed to ``on_part`` (on the
        event loop) as soon as the worker sends it; its return value is the result."""
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        healthy = False
        try:
            ok, value = await asyncio.wait_for(worker.call(fn, arg, on_part), timeout)
            healthy = True
        except asyncio.TimeoutError:
            raise JobTimedOut(f"no result after {timeout:.0f} s") from None
        except (EOFError, OSError, asyncio.IncompleteReadError):
            await loop.run_in_executor(None, worker.process.join, 1)
            code = worker.process.exitcode
            reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise WorkerCrashed(f"the worker process died ({reason})") from None
        finally:
            if healthy:
                self._idle.put_nowait(worker)
            else:
                self._all.discard(worker)
                try:
                    await loop.run_in_executor(None, worker.terminate)
                finally:  # even if cancelled meanwhile: the pool keeps its size
                    worker.close_pipe()
                    self._idle.put_nowait(self._spawn())
                    log.warning("worker_replaced")
        if not ok:
            raise RuntimeError(value)
        return value

    async def close(self) -> None:
        for worker in list(self._all):
            worker.terminate()
            worker.close_pipe()
        self._all.clear()
