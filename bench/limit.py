"""The limit: the matcher's work without any service.

A pool of as many processes as cores (spawned like the matcher's pool, each with OpenCV on one
thread, as ``services.matcher.pool`` sets it) runs ``services.matcher.jobs.run_job`` on the same
``Job`` the matcher would build (the same input bytes, the resolved params): decode the inputs,
match, render and encode the result images. The ``JobOutcome`` (with the PNGs) travels back to the
parent as the matcher's does, and every result is checked against the workload's ground truth.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

import msgspec

from bench.workloads import get


def _init() -> None:
    from services.matcher.pool import prepare_worker_process

    prepare_worker_process()  # exactly as the matcher's workers run


def _timed(job) -> tuple[Any, float, float]:
    from services.matcher.jobs import run_job

    c0, t0 = time.process_time(), time.perf_counter()
    outcome = run_job(job)
    return outcome, time.perf_counter() - t0, time.process_time() - c0


def _serial(args: tuple[Any, int]) -> list[tuple[float, float]]:
    job, n = args
    out = []
    for _ in range(n):
        _, wall, cpu = _timed(job)
        out.append((wall, cpu))
    return out


class LimitPool:
    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        self._pool = mp.get_context("spawn").Pool(self.processes, initializer=_init)

    def warm(self, workload: str) -> None:
        job = get(workload).job()
        list(self._pool.imap_unordered(_timed, [job] * (2 * self.processes), chunksize=1))

    def run(self, workload: str, n: int) -> dict[str, Any]:
        """``n`` tasks through the pool as fast as it goes: tasks/s, per-task compute, CPU."""
        wl = get(workload)
        jobs = [wl.job(f"limit-{i}") for i in range(n)]
        walls, cpus, failures = [], [], []
        start = time.perf_counter()
        for outcome, wall, cpu in self._pool.imap_unordered(_timed, jobs, chunksize=1):
            why = wl.verify(outcome.status, msgspec.to_builtins(outcome.result_data), len(outcome.files), outcome.error)
            if why:
                failures.append(why)
            walls.append(wall)
            cpus.append(cpu)
        elapsed = time.perf_counter() - start
        return {
            "workload": workload, "n": n, "processes": self.processes, "wall_s": elapsed,
            "tasks_per_s": n / elapsed, "compute_s": walls, "cpu_s": cpus,
            "ok": n - len(failures), "failures": len(failures), "failure_examples": failures[:5],
        }

    def serial(self, workload: str, n: int) -> dict[str, Any]:
        """In-process compute time of one task alone (one worker, nothing else running)."""
        pairs = self._pool.apply(_serial, ((get(workload).job(), n),))
        return {"workload": workload, "n": n, "compute_s": [w for w, _ in pairs], "cpu_s": [c for _, c in pairs]}

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
