"""Task-list latency: GET /api/v1/tasks?offset=…&limit=50 at offsets 0, N/2 and N−50 of N tasks.

Each target offset is read at K distinct pages next to it (offset, offset ± 50, …), one request at
a time over a keep-alive connection, interleaved across the targets; then the same pages again.
The first pass ("cold") mostly misses the gateway's view cache (the gateway caches views it read
or was told about since it started: the newest ~20k of a fresh seed); the second ("warm") hits it.
"""

from __future__ import annotations

import time
from typing import Any

import requests


def pages_near(target: int, total: int, k: int, limit: int = 50) -> list[int]:
    top = max(0, total - limit)
    step = -limit if target >= top else limit
    out = []
    for i in range(k):
        off = target + i * step
        if not 0 <= off <= top:
            break
        out.append(off)
    return out


def measure(base: str, total: int, k: int, limit: int = 50) -> dict[str, Any]:
    targets = [0, total // 2, max(0, total - limit)]
    plan = {t: pages_near(t, total, k, limit) for t in targets}
    lat: dict[str, dict[int, list[float]]] = {"cold": {t: [] for t in targets}, "warm": {t: [] for t in targets}}
    errors: list[str] = []
    with requests.Session() as http:
        http.get(f"{base}/api/v1/tasks?offset=0&limit=1", timeout=30)  # connection up
        for phase in ("cold", "warm"):
            for i in range(k):
                for t in targets:
                    if i >= len(plan[t]):
                        continue
                    off = plan[t][i]
                    t0 = time.perf_counter()
                    r = http.get(f"{base}/api/v1/tasks", params={"offset": off, "limit": limit}, timeout=30)
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        errors.append(f"offset {off}: HTTP {r.status_code}")
                        continue
                    body = r.json()
                    expect = min(limit, max(0, body["total"] - off))
                    if len(body["tasks"]) != expect:
                        errors.append(f"offset {off}: {len(body['tasks'])} tasks, expected {expect}")
                    lat[phase][t].append(dt)
    return {"targets": targets, "pages_per_target": k, "lat_s": {ph: {str(t): v for t, v in d.items()} for ph, d in lat.items()},
            "errors": len(errors), "error_examples": errors[:5]}
