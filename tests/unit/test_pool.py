"""The matcher's worker pool with real processes: answers, big payloads, crashes, hangs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.matcher.pool import JobTimedOut, WorkerCrashed, WorkerPool


def echo_size(data: bytes) -> tuple[int, bytes]:
    return len(data), data[::-1]


def segfault(_: object) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)  # what a crash inside OpenCV looks like to the parent


def hang(_: object) -> None:
    threading.Event().wait()  # for ever: only the pool's deadline ends it


def fail(_: object) -> None:
    raise ValueError("bad input")


def countdown(n: int):
    for i in range(n, 0, -1):
        yield i, os.urandom(2**20)
    return "liftoff"


def part_then_crash(_: object):
    yield "first"
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.fixture
async def pool():
    workers = WorkerPool(1)
    await workers.start()
    yield workers
    await workers.close()


async def test_a_job_larger_than_the_pipe_buffers_round_trips(pool):
    data = os.urandom(9 * 2**20)
    assert await pool.run(echo_size, data, timeout=30) == (len(data), data[::-1])


async def test_a_generator_job_hands_over_each_part_before_its_result(pool):
    parts: list[int] = []
    result = await pool.run(countdown, 3, timeout=30, on_part=lambda part: parts.append(part[0]))
    assert (parts, result) == ([3, 2, 1], "liftoff")
    assert await pool.run(echo_size, b"abc", timeout=30) == (3, b"cba")  # the pipe is clean after it


async def test_parts_already_sent_arrive_when_the_worker_then_crashes(pool):
    parts: list[str] = []
    with pytest.raises(WorkerCrashed):
        await pool.run(part_then_crash, None, timeout=30, on_part=parts.append)
    assert parts == ["first"]


async def test_parts_nobody_takes_fail_the_job_not_the_pool(pool):
    with pytest.raises(RuntimeError, match="partial results"):
        await pool.run(countdown, 2, timeout=30)
    assert await pool.run(echo_size, b"ab", timeout=30) == (2, b"ba")


async def test_a_crashed_worker_is_reported_and_replaced(pool):
    with pytest.raises(WorkerCrashed, match="signal 11"):
        await pool.run(segfault, None, timeout=30)
    assert await pool.run(echo_size, b"abc", timeout=30) == (3, b"cba")


async def test_a_job_past_its_deadline_is_killed_and_the_pool_goes_on(pool):
    with pytest.raises(JobTimedOut):
        await pool.run(hang, 30.0, timeout=0.5)
    assert await pool.run(echo_size, b"xy", timeout=30) == (2, b"yx")


async def test_replaced_workers_keep_the_pool_whole():
    """Several deadlines in a row (an input that hangs every attempt): each replacement works."""
    workers = WorkerPool(2)
    await workers.start()
    try:
        for _ in range(4):
            with pytest.raises(JobTimedOut):
                await workers.run(hang, 30.0, timeout=0.3)
        results = await asyncio.gather(*(workers.run(echo_size, b"ok", timeout=30) for _ in range(4)))
        assert results == [(2, b"ko")] * 4
    finally:
        await workers.close()


async def test_an_exception_in_the_job_is_an_error_not_a_crash(pool):
    with pytest.raises(RuntimeError, match="ValueError: bad input"):
        await pool.run(fail, None, timeout=30)
    assert await pool.run(echo_size, b"", timeout=30) == (0, b"")


async def test_a_stop_signal_to_the_whole_group_leaves_workers_running():
    """systemd and killpg signal every process: a worker, even one still starting, ignores it."""
    workers = WorkerPool(1)
    await workers.start()
    try:
        (worker,) = workers._all
        os.kill(worker.process.pid, signal.SIGTERM)  # most likely while its interpreter starts
        os.kill(worker.process.pid, signal.SIGINT)
        assert await workers.run(echo_size, b"still here", timeout=30) == (10, b"ereh llits")
        os.kill(worker.process.pid, signal.SIGTERM)  # and once it runs
        assert await workers.run(echo_size, b"!", timeout=30) == (1, b"!")
        assert worker in workers._all
    finally:
        await workers.close()


_FRESH = """
import asyncio, os, signal, sys, time
from services.matcher.pool import WorkerPool

async def main():
    pool = WorkerPool(2)
    await pool.start()
    # At once, while every worker is still starting up, as a stop of the process group would.
    for worker in pool._all:
        os.kill(worker.process.pid, signal.SIGTERM)
    # Any that dies of it exits within 3 s; the rest are alive then.
    deadline = time.monotonic() + 3
    for worker in pool._all:
        await asyncio.to_thread(worker.process.join, max(0.0, deadline - time.monotonic()))
    alive = [w.process.is_alive() for w in pool._all]
    await pool.close()
    print(alive)

if __name__ == "__main__":
    # Handled, as the matcher does (an ignored signal would stay ignored in the children).
    signal.signal(signal.SIGTERM, lambda *_: None)
    asyncio.run(main())
"""


def test_workers_survive_a_stop_signal_from_their_first_moment(tmp_path) -> None:
    # A fresh interpreter: multiprocessing's resource tracker must not be running yet.
    script = tmp_path / "fresh.py"
    script.write_text(_FRESH)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, True]", out.stdout + out.stderr
