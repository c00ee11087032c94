"""Status-read load: GET /api/v1/tasks/{uid} as fast as the gateway answers, over keep-alive
connections, rotating over a set of finished tasks, for a fixed time.

The load generator must cost little CPU (it shares the 2 cores with the gateway): ``wrk`` when it
is installed (C, one thread), else this module's aiohttp loader in its own process (uvloop).

    python -m bench.statusload --base http://127.0.0.1:8888 --uids a,b,c --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(base: str, uids: list[str], duration: float, connections: int,
            around: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run wrk (1 thread); ``around`` is called right before it starts (for CPU snapshots)."""
    lua = "local uids = {" + ",".join(f'"{u}"' for u in uids) + "}\nlocal i = 0\n" \
          "request = function()\n  i = i + 1\n  return wrk.format(\"GET\", \"/api/v1/tasks/\" .. uids[(i % #uids) + 1])\nend\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", script, base]
        if around:
            around()
        cpu0 = _children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
        cpu = _children_cpu() - cpu0
    finally:
        Path(script).unlink(missing_ok=True)
    reqs = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    n = int(reqs.group(1)) if reqs else 0
    return {
        "tool": "wrk", "connections": connections, "requests": n,
        "wall_s": n / float(rps.group(1)) if rps and float(rps.group(1)) > 0 else duration,
        "req_per_s": float(rps.group(1)) if rps else 0.0,
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in errs.groups()) if errs else 0),
        "latency_ms": {f"p{k}": _ms(v) for k, v in pct.items()},
        "loader_cpu_s": cpu, "raw": out[-1500:],
    }


async def _aiohttp_load(base: str, uids: list[str], duration: float, connections: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    count = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        end = time.perf_counter() + duration

        async def worker(k: int) -> None:
            nonlocal errors, count
            i = k
            while time.perf_counter() < end:
                i += 1
                t0 = time.perf_counter()
                try:
                    async with http.get(f"{base}/api/v1/tasks/{uids[i % len(uids)]}") as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        wall = time.perf_counter() - start
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")

    return {"tool": "aiohttp", "connections": connections, "requests": count, "wall_s": wall,
            "req_per_s": count / wall, "errors": errors,
            "latency_ms": {"p50": q(0.5), "p75": q(0.75), "p90": q(0.9), "p99": q(0.99)}}


def run_aiohttp_process(base: str, uids: list[str], duration: float, connections: int,
                        around: Callable[[], None] | None = None) -> dict[str, Any]:
    """The aiohttp loader in its own process (so it gets its own core when one is free)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.statusload", "--base", base, "--uids", ",".join(uids),
         "--duration", str(duration), "--connections", str(connections), "--handshake"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdin and proc.stdout
    proc.stdout.readline()  # ready
    if around:
        around()
    cpu0 = _children_cpu()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    proc.wait(timeout=60)
    result = json.loads(line)
    result["loader_cpu_s"] = _children_cpu() - cpu0
    return result


def run(base: str, uids: list[str], duration: float, connections: int, tool: str = "auto",
        around: Callable[[], None] | None = None) -> dict[str, Any]:
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return run_wrk(base, uids, duration, connections, around)
    return run_aiohttp_process(base, uids, duration, connections, around)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.statusload", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--uids", required=True, help="comma-separated task uids")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--handshake", action="store_true")
    args = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.handshake:
        print("ready", flush=True)
        sys.stdin.readline()
    result = asyncio.run(_aiohttp_load(args.base, args.uids.split(","), args.duration, args.connections))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
