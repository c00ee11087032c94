"""Task-list latency: GET /api/v1/tasks?offset=…&limit=50 at offsets 0, N/2 and N−50 of N tasks,
plain and filtered (``?status=done``: most tasks; ``?status=error``: one in ten, so its pages are
spread over ten times as many positions).

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


QUERIES: dict[str, dict[str, str]] = {"all": {}, "status=done": {"status": "done"}, "status=error": {"status": "error"}}


def measure_all(base: str, k: int, limit: int = 50) -> dict[str, dict[str, Any]]:
    """``measure`` for each query of QUERIES, each over its own total."""
    return {name: measure(base, k, limit, query) for name, query in QUERIES.items()}


def measure(base: str, k: int, limit: int = 50, query: dict[str, str] | None = None) -> dict[str, Any]:
    """Over the query's total, as the first (connection-opening) request reports it."""
    query = query or {}
    errors: list[str] = []
    with requests.Session() as http:
        first = http.get(f"{base}/api/v1/tasks", params={**query, "offset": 0, "limit": 1}, timeout=30)
        total = first.json()["total"]
        targets = [0, total // 2, max(0, total - limit)]
        plan = {t: pages_near(t, total, k, limit) for t in targets}
        lat: dict[str, dict[int, list[float]]] = {"cold": {t: [] for t in targets}, "warm": {t: [] for t in targets}}
        for phase in ("cold", "warm"):
            for i in range(k):
                for t in targets:
                    if i >= len(plan[t]):
                        continue
                    off = plan[t][i]
                    t0 = time.perf_counter()
                    r = http.get(f"{base}/api/v1/tasks", params={**query, "offset": off, "limit": limit}, timeout=30)
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        errors.append(f"offset {off}: HTTP {r.status_code}")
                        continue
                    body = r.json()
                    expect = min(limit, max(0, body["total"] - off))
                    if len(body["tasks"]) != expect or body["total"] != total:
                        errors.append(f"offset {off}: {len(body['tasks'])} of {body['total']} tasks, expected {expect} of {total}")
                    elif query.get("status") and any(t["status"] != query["status"] for t in body["tasks"]):
                        errors.append(f"offset {off}: a task not in status {query['status']}")
                    lat[phase][t].append(dt)
    return {"targets": targets, "pages_per_target": k, "lat_s": {ph: {str(t): v for t, v in d.items()} for ph, d in lat.items()},
            "errors": len(errors), "error_examples": errors[:5]}
