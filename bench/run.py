"""AeroVision benchmark: the service against the in-process limit, measured in one run.

    .venv/bin/python -m bench --quick      # under ~2 minutes
    .venv/bin/python -m bench              # full mode
    .venv/bin/python -m bench --soak       # full mode with a 10,000-task memory run

Prints a table and writes every raw figure to bench/results/<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import listbench, machine, procs, profile, statusload
from bench.client import SLOW_S
from bench.limit import LimitPool
from bench.report import render
from bench.stats import median, ms, pct
from bench.system import ListSystem, UpSystem
from bench.workloads import WORKLOADS
from contracts.tools import TOOLS

HERE = Path(__file__).resolve().parent
SECTIONS = ("clients", "throughput", "lanes", "status", "memory", "profile", "list")

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "reps": 2, "client_reps": 1, "client_n": 60,
        "workloads": {"small": {"n": 100, "n1": 20}, "large": {"n": 16, "n1": 5},
                      "feature-small": {"n": 40, "n1": 10}, "feature-large": {"n": 12, "n1": 4},
                      "surface": {"n": 12, "n1": 4}},
        "status_s": 3.0, "status_reps": 2, "long": 300, "list_tasks": 20_000, "list_pages": 40,
        "profile_s": 6.0,
    },
    "full": {
        "reps": 5, "client_reps": 2, "client_n": 200,
        "workloads": {"small": {"n": 400, "n1": 60}, "large": {"n": 60, "n1": 15, "reps": 3},
                      "feature-small": {"n": 120, "n1": 30, "reps": 3}, "feature-large": {"n": 40, "n1": 10, "reps": 3},
                      "surface": {"n": 30, "n1": 8, "reps": 3}},
        "status_s": 10.0, "status_reps": 3, "long": 2000, "list_tasks": 100_000, "list_pages": 100,
        "profile_s": 10.0,
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- one service run: a client process driving the system, CPU and RSS bracketed ------------------


class RssSampler(threading.Thread):
    def __init__(self, services: dict[str, int], every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.services, self.every = services, every
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            snap = procs.snapshot(self.services)
            self.samples.append({"t": time.monotonic() - t0, **{k: round(v, 1) for k, v in snap.rss.items()}})
            self._halt.wait(self.every)

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join()
        return self.samples


def _start_client(system: UpSystem, workload: str, n: int, concurrency: int, *, kind: str, poll: float,
                  events: bool = False, what: str = "the load client") -> subprocess.Popen:
    """A ``bench.client`` that has said it is ready: it starts its load on "go" (on its stdin)."""
    cmd = [sys.executable, "-m", "bench.client", "--base", system.base, "--workload", workload, "--n", str(n),
           "--concurrency", str(concurrency), "--kind", kind, "--poll", str(poll), "--handshake"]
    if events:
        cmd.append("--events")
    client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    assert client.stdin and client.stdout
    if client.stdout.readline().strip() != "ready":
        client.kill()
        raise RuntimeError(f"{what} did not start")
    return client


def service_run(system: UpSystem, workload: str, n: int, concurrency: int, *, kind: str, poll: float,
                events: bool = False, sample_rss: bool = False, during=None, settle: float = 0.3) -> dict[str, Any]:
    client = _start_client(system, workload, n, concurrency, kind=kind, poll=poll, events=events)
    assert client.stdin and client.stdout
    services = system.services(refresh=True)
    store = system.data / "jetstream"
    stored_before = machine.tree_bytes(store)
    before = procs.snapshot(services)
    sampler = RssSampler(services) if sample_rss else None
    client.stdin.write("go\n")
    client.stdin.flush()
    if sampler:
        sampler.start()
    hook = during() if during else None
    line = client.stdout.readline()
    time.sleep(settle)  # acks, the notifier's tail
    after = procs.snapshot(services)
    stored = machine.tree_bytes(store) - stored_before
    client.wait(timeout=60)
    if not line:
        raise RuntimeError(f"the load client died (exit {client.returncode}); system log:\n{system.log_tail()}")
    result = json.loads(line)
    result["cpu"] = procs.cpu_delta(before, after)
    result["stored_bytes"] = stored
    result["rss_before"], result["rss_after"] = before.rss, after.rss
    if sampler:
        result["rss_samples"] = sampler.stop()
    if hook is not None:
        result["profile"] = profile.finish(hook)
    return result


@contextlib.contextmanager
def warm_system(workdir: Path, source: Path | None = None) -> Iterator[UpSystem]:
    """``aerovision up`` (from ``source``, another checkout, if given) with its workers warm; on
    leaving, stopped and its folder removed (bench/ab.py and bench/growth.py measure on it)."""
    system = UpSystem(workdir, source=source).start()
    try:
        service_run(system, "small", 40, 8, kind="raw", poll=0.01)  # workers import OpenCV on first use
        yield system
    finally:
        system.stop()
        shutil.rmtree(workdir, ignore_errors=True)


DISTURBANCES: list[dict[str, Any]] = []  # runs measured again because the system misbehaved


def disturbance(r: dict[str, Any], queues_by_design: bool = False) -> str | None:
    """Why a run is not a fair figure, or None. A slow-lane workload queues for seconds by design
    (one job per slow worker), so only a restart disturbs it."""
    restarted = [k for k, d in r["cpu"].items() if d.get("restarted")]
    if restarted:
        return f"service restarted during the run: {', '.join(restarted)}"
    if queues_by_design or not r.get("slow"):
        return None
    # At c=16 a task of ~1 s compute waits behind 15 others (~9 s on 2 cores): that is queueing.
    # A stall is a task far slower than the run's own median.
    lat = sorted(r.get("lat_s") or [0.0])
    stalled = [x for x in r["slow"] if x["lat"] > max(SLOW_S, 3 * lat[len(lat) // 2])]
    if stalled:
        return f"{len(stalled)} task(s) stalled, slower than 5 s and 3× the median (max {max(x['lat'] for x in stalled):.1f} s)"
    return None


def stable_run(system: UpSystem, workload: str, n: int, concurrency: int, *, tries: int = 3, **kw) -> dict[str, Any]:
    """A service run; measured again (up to ``tries``) when a service restarted or a task stalled,
    so a crash is reported (DISTURBANCES, the service exits) but does not become the figure."""
    for attempt in range(tries):
        r = service_run(system, workload, n, concurrency, **kw)
        why = disturbance(r, queues_by_design=TOOLS[WORKLOADS[workload].tool].lane == "slow")
        if why is None:
            return r
        DISTURBANCES.append({"workload": workload, "concurrency": concurrency, "n": n, "why": why,
                             "tasks_per_s": r["tasks_per_s"], "slow": r.get("slow", [])[:3]})
        log(f"  !! disturbed run ({why}); {'measuring again' if attempt + 1 < tries else 'keeping it'}")
        system.services(refresh=True)
    return r


def summarise_service(r: dict[str, Any]) -> dict[str, Any]:
    lat = r["lat_s"]
    cpu = {}
    for role, d in r["cpu"].items():
        if role == "matcher":
            cpu["matcher (main)"] = ms(d["total"] - d["children"]) / r["n"]
            cpu["matcher workers"] = ms(d["children"]) / r["n"]
        cpu[role] = ms(d["total"]) / r["n"]
    cpu["services total"] = sum(v for k, v in cpu.items() if k in procs.ROLES)
    cpu["client"] = ms(r["client_cpu_s"]) / r["n"]
    return {
        "tasks_per_s": r["tasks_per_s"], "p50_ms": ms(pct(lat, 50)), "p95_ms": ms(pct(lat, 95)),
        "p99_ms": ms(pct(lat, 99)), "submit_p50_ms": ms(pct(r["submit_s"], 50)),
        "polls_per_task": sum(r["polls"]) / len(r["polls"]) if r["polls"] else float("nan"),
        "cpu_ms_per_task": cpu, "failures": r["failures"], "failure_examples": r["failure_examples"],
        "restarted": [k for k, d in r["cpu"].items() if d.get("restarted")],
        "redelivered": r.get("redelivered", 0), "slow": r.get("slow", []),
        "stored_mb_per_task": r["stored_bytes"] / r["n"] / 1e6 if "stored_bytes" in r else float("nan"),
    }


CLIENT_KINDS = ("raw", "aiohttp", "threads")


# --- sections ---------------------------------------------------------------------------------


def run_clients(system: UpSystem, cfg: dict[str, Any], poll: float) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": {kind: [] for kind in CLIENT_KINDS}}
    for rep in range(cfg["client_reps"]):
        order = CLIENT_KINDS if rep % 2 == 0 else CLIENT_KINDS[::-1]
        for kind in order:
            r = stable_run(system, "small", cfg["client_n"], 16, kind=kind, poll=poll)
            s = summarise_service(r)
            out["runs"][kind].append({"tasks_per_s": s["tasks_per_s"], "client_cpu_ms_per_task": s["cpu_ms_per_task"]["client"],
                                      "gateway_cpu_ms_per_task": s["cpu_ms_per_task"]["gateway"], "failures": s["failures"]})
            log(f"  client {kind}: {s['tasks_per_s']:.1f} tasks/s, client CPU {s['cpu_ms_per_task']['client']:.1f} ms/task")
    out["summary"] = {k: {"client_cpu_ms_per_task": median(x["client_cpu_ms_per_task"] for x in v),
                          "tasks_per_s": median(x["tasks_per_s"] for x in v),
                          "gateway_cpu_ms_per_task": median(x["gateway_cpu_ms_per_task"] for x in v)}
                      for k, v in out["runs"].items()}
    out["cheaper"] = min(out["summary"], key=lambda k: out["summary"][k]["client_cpu_ms_per_task"])
    return out


C1_BLOCKS = 3


def c1_blocks(system: UpSystem, pool: LimitPool, name: str, n1: int, kind: str, poll: float,
              rep: int) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """The c=1 latency and the compute alone, in alternating blocks a few seconds long.

    The overhead is a difference of two ~50 ms figures measured at different moments, and this
    machine's speed drifts by more than the overhead within a minute (the same task's compute:
    39-56 ms in one hour), so each block of c=1 tasks is paired with a block of in-process
    compute right next to it; the overhead is the median of the blocks' differences of p50s."""
    size = max(1, n1 // C1_BLOCKS)
    services, serials, overheads = [], [], []
    for block in range(C1_BLOCKS):
        first_service = (block + rep) % 2 == 0
        for step in ("service", "serial") if first_service else ("serial", "service"):
            if step == "service":
                services.append(stable_run(system, name, size, 1, kind=kind, poll=poll, events=True))
            else:
                serials.append(pool.serial(name, size))
        overheads.append(ms(pct(services[-1]["lat_s"], 50)) - ms(median(serials[-1]["compute_s"])))
    return merge_runs(services), {"workload": name, "n": sum(s["n"] for s in serials),
                                  "compute_s": [c for s in serials for c in s["compute_s"]],
                                  "cpu_s": [c for s in serials for c in s["cpu_s"]]}, overheads


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several client runs as one: samples concatenated, counts and CPU summed."""
    merged = dict(runs[0])
    for key in ("lat_s", "submit_s", "polls", "segments", "slow", "failure_examples"):
        merged[key] = [x for r in runs for x in r.get(key, [])]
    for key in ("n", "ok", "failures", "redelivered", "wall_s", "client_cpu_s"):
        merged[key] = sum(r.get(key, 0) for r in runs)
    merged["tasks_per_s"] = merged["n"] / merged["wall_s"] if merged["wall_s"] else 0.0
    merged["cpu"] = {role: {k: sum(r["cpu"].get(role, {}).get(k, float("nan")) for r in runs) for k in d}
                     for role, d in runs[0]["cpu"].items()}
    return merged


def run_throughput(system: UpSystem, pool: LimitPool, name: str, wcfg: dict[str, Any], reps: int,
                   kind: str, poll: float) -> dict[str, Any]:
    """Interleaved: limit, service c=16, then c=1 alternating with the compute alone in blocks;
    the order reversed every other rep."""
    n, n1 = wcfg["n"], wcfg["n1"]
    raw: dict[str, list] = {"limit": [], "service16": [], "service1": [], "serial": []}
    pairs = []
    for rep in range(reps):
        steps = ["limit", "service16", "c1"]
        if rep % 2:
            steps.reverse()
        row: dict[str, Any] = {}
        for step in steps:
            if step == "limit":
                row[step] = pool.run(name, n)
            elif step == "service16":
                row[step] = stable_run(system, name, n, 16, kind=kind, poll=poll)
            else:
                row["service1"], row["serial"], overheads = c1_blocks(system, pool, name, n1, kind, poll, rep)
        for k, v in row.items():
            raw[k].append(v)
        s16, s1 = summarise_service(row["service16"]), summarise_service(row["service1"])
        lim = row["limit"]["tasks_per_s"]
        serial_p50 = ms(median(row["serial"]["compute_s"]))
        pairs.append({
            "limit_tasks_per_s": lim, "service_tasks_per_s": s16["tasks_per_s"],
            "ratio": s16["tasks_per_s"] / lim, "c1_p50_ms": s1["p50_ms"], "serial_p50_ms": serial_p50,
            "overhead_p50_ms": median(overheads), "overhead_blocks_ms": overheads,
        })
        log(f"  {name} rep {rep + 1}/{reps}: limit {lim:.1f}/s, service {s16['tasks_per_s']:.1f}/s "
            f"(ratio {pairs[-1]['ratio']:.2f}); c=1 p50 {s1['p50_ms']:.1f} ms vs compute {serial_p50:.1f} ms, "
            f"overhead by block {', '.join(f'{o:.1f}' for o in overheads)} ms")
    s16s = [summarise_service(r) for r in raw["service16"]]
    s1s = [summarise_service(r) for r in raw["service1"]]
    roles = list(dict.fromkeys(k for s in s16s for k in s["cpu_ms_per_task"]))
    segs = [seg for r in raw["service1"] for seg in r["segments"]]
    limit_cpu = [ms(c) for r in raw["limit"] for c in r["cpu_s"]]
    limit_lat = [ms(c) for r in raw["limit"] for c in r["compute_s"]]
    return {
        "workload": name, "description": WORKLOADS[name].description, "n": n, "n_c1": n1, "reps": reps,
        "pairs": pairs,
        "limit": {"tasks_per_s": median(p["limit_tasks_per_s"] for p in pairs),
                  "cpu_ms_per_task": median(limit_cpu), "compute_p50_ms": median(limit_lat),
                  "failures": sum(r["failures"] for r in raw["limit"])},
        "service": {"tasks_per_s": median(p["service_tasks_per_s"] for p in pairs),
                    "c16": {k: median(s[k] for s in s16s)
                            for k in ("p50_ms", "p95_ms", "p99_ms", "submit_p50_ms", "polls_per_task", "stored_mb_per_task")},
                    "c1": {k: median(s[k] for s in s1s) for k in ("p50_ms", "p95_ms", "p99_ms", "submit_p50_ms", "polls_per_task")},
                    "cpu_ms_per_task": {role: median(s["cpu_ms_per_task"].get(role, float("nan")) for s in s16s)
                                        for role in roles},
                    "failures": sum(s["failures"] for s in s16s + s1s),
                    "failure_examples": [e for s in s16s + s1s for e in s["failure_examples"]][:5],
                    "restarted": sorted({x for s in s16s + s1s for x in s["restarted"]}),
                    "redelivered": sum(s["redelivered"] for s in s16s + s1s),
                    "slow": [x for s in s16s + s1s for x in s["slow"]][:10],
                    "tasks": sum(r["n"] for r in raw["service16"] + raw["service1"])},
        "ratio": median(p["ratio"] for p in pairs),
        "serial_p50_ms": median(p["serial_p50_ms"] for p in pairs),
        "overhead_p50_ms": median(p["overhead_p50_ms"] for p in pairs),
        "c1_breakdown_p50_ms": {k: median(s[k] for s in segs) for k in ("accept", "queue", "run", "visible")} if segs else {},
        "raw": {k: [{kk: vv for kk, vv in r.items() if kk not in ("rss_samples",)} for r in v] for k, v in raw.items()},
    }


def run_lanes(system: UpSystem, kind: str, poll: float, n: int = 20, surface_n: int = 12) -> dict[str, Any]:
    """Template latency at c=1 on an idle system, then while 4 clients keep surface jobs queued
    and running (the slow lane full): what lanes per kind of work are for."""
    idle = summarise_service(service_run(system, "small", n, 1, kind=kind, poll=poll))
    surface = _start_client(system, "surface", surface_n, 4, kind=kind, poll=0.05, what="the surface load client")
    assert surface.stdin and surface.stdout
    try:
        surface.stdin.write("go\n")
        surface.stdin.flush()
        time.sleep(2.0)  # the slow lane is busy and has a queue
        busy = summarise_service(service_run(system, "small", n, 1, kind=kind, poll=poll))
        line = surface.stdout.readline()
        surface.wait(timeout=600)
    finally:
        if surface.poll() is None:  # the busy run failed: no surface client outlives it
            surface.kill()
            surface.wait()
    heavy = json.loads(line) if line else {}
    out = {"n": n, "idle_p50_ms": idle["p50_ms"], "idle_p95_ms": idle["p95_ms"],
           "busy_p50_ms": busy["p50_ms"], "busy_p95_ms": busy["p95_ms"], "busy_p99_ms": busy["p99_ms"],
           "failures": idle["failures"] + busy["failures"],
           "surface_tasks": heavy.get("n", 0), "surface_failures": heavy.get("failures", 0)}
    log(f"  template c=1 p50/p95: idle {idle['p50_ms']:.0f}/{idle['p95_ms']:.0f} ms, "
        f"while surface jobs run {busy['p50_ms']:.0f}/{busy['p95_ms']:.0f} ms")
    return out


def task_uids(base: str, limit: int = 100) -> list[str]:
    import requests

    body = requests.get(f"{base}/api/v1/tasks", params={"limit": min(limit, 200)}, timeout=30).json()
    return [t["uid"] for t in body["tasks"] if t["status"] in ("done", "error")]


def run_status(system: UpSystem, cfg: dict[str, Any], tool: str, connections: int,
               profile_dir: Path | None) -> dict[str, Any]:
    uids = task_uids(system.base)
    if not uids:
        raise RuntimeError("no finished task to read")
    statusload.run(system.base, uids, 1.0, connections, tool)  # warm-up
    runs = []
    for rep in range(cfg["status_reps"]):
        services = system.services(refresh=True)
        box: dict[str, Any] = {}
        want_profile = False

        def around() -> None:
            box["before"] = procs.snapshot(services)
            if want_profile:
                box["profile"] = profile.start({"gateway": services["gateway"]}, cfg["status_s"] - 1,
                                               profile_dir / "status")

        r = statusload.run(system.base, uids, cfg["status_s"], connections, tool, around)
        after = procs.snapshot(services)
        cpu = procs.cpu_delta(box["before"], after)
        gw = cpu["gateway"]["total"]
        r["gateway_cpu_s"] = gw
        r["nats_cpu_s"] = cpu.get("nats-server", {}).get("total")
        r["gateway_cpu_ms_per_req"] = ms(gw) / r["requests"] if r["requests"] else float("nan")
        r["per_gateway_core_req_per_s"] = r["requests"] / gw if gw > 0 else float("nan")
        r["gateway_core_share"] = gw / r["wall_s"] if r["wall_s"] else float("nan")
        r["loader_cpu_ms_per_req"] = ms(r["loader_cpu_s"]) / r["requests"] if r["requests"] else float("nan")
        if "profile" in box:
            r["profile"] = profile.finish(box["profile"])
        runs.append(r)
        log(f"  status reads rep {rep + 1}: {r['req_per_s']:.0f} req/s, gateway {r['gateway_cpu_ms_per_req']:.3f} ms CPU/req "
            f"({r['per_gateway_core_req_per_s']:.0f} req/s per core), loader {r['loader_cpu_ms_per_req']:.3f} ms/req")
    prof = None
    if profile_dir is not None:  # an extra run, not counted: py-spy shares the machine
        services = system.services(refresh=True)
        state = {}
        statusload.run(system.base, uids, cfg["status_s"], connections, tool,
                       lambda: state.update(p=profile.start({"gateway": services["gateway"]}, cfg["status_s"] - 1,
                                                             profile_dir / "status")))
        prof = profile.finish(state["p"])
    return {
        "tool": runs[0]["tool"], "connections": connections, "duration_s": cfg["status_s"], "uids": len(uids),
        "req_per_s": median(r["req_per_s"] for r in runs),
        "gateway_cpu_ms_per_req": median(r["gateway_cpu_ms_per_req"] for r in runs),
        "per_gateway_core_req_per_s": median(r["per_gateway_core_req_per_s"] for r in runs),
        "gateway_core_share": median(r["gateway_core_share"] for r in runs),
        "loader_cpu_ms_per_req": median(r["loader_cpu_ms_per_req"] for r in runs),
        "p50_ms": median(r["latency_ms"].get("p50", float("nan")) for r in runs),
        "p99_ms": median(r["latency_ms"].get("p99", float("nan")) for r in runs),
        "errors": sum(r["errors"] for r in runs), "runs": [{k: v for k, v in r.items() if k != "raw"} for r in runs],
        "profile": prof,
    }


def run_memory(system: UpSystem, tasks: int, kind: str, poll: float) -> dict[str, Any]:
    r = service_run(system, "small", tasks, 16, kind=kind, poll=poll, sample_rss=True)
    samples = r["rss_samples"]
    s = summarise_service(r)

    def at(frac: float, role: str) -> float:
        i = min(len(samples) - 1, int(frac * (len(samples) - 1)))
        return samples[i].get(role, float("nan"))

    out: dict[str, Any] = {"tasks": tasks, "tasks_per_s": s["tasks_per_s"], "failures": s["failures"],
                           "samples": samples, "restarted": s["restarted"], "disturbed": disturbance(r),
                           "p99_ms": s["p99_ms"], "redelivered": s["redelivered"]}
    nan = float("nan")
    for role in ("gateway", "matcher", "projector", "nats-server"):
        start, mid, end = r["rss_before"].get(role, nan), at(0.5, role), r["rss_after"].get(role, nan)
        out[role] = {"start_mb": start, "mid_mb": mid, "end_mb": end,
                     # The samples run between the two snapshots: the largest of all of them.
                     "max_mb": max((v for v in (start, end, *(x.get(role, nan) for x in samples))
                                    if not math.isnan(v)), default=nan),
                     "growth_pct": 100.0 * (end - start) / start if start and not math.isnan(start) else nan}
    return out


def run_profile(system: UpSystem, seconds: float, rate_hint: float, kind: str, poll: float, outdir: Path) -> dict[str, Any]:
    """An extra small c=16 run (not counted) with py-spy on the gateway, the matcher, one of its
    workers and the projector, started 1 s into the run."""

    def targets() -> dict[str, int]:
        services = system.services(refresh=True)
        out = {r: services[r] for r in ("gateway", "matcher", "projector") if r in services}
        workers = [p for p in procs.descendants(services.get("matcher", -1))
                   if "spawn_main" in " ".join(procs.cmdline(p))]
        if workers:
            out["matcher worker"] = workers[0]
        return out

    def during() -> dict[str, Any]:
        t = targets()
        time.sleep(1.0)
        return profile.start(t, seconds, outdir / "service")

    n = max(50, int(rate_hint * (seconds + 4)))
    r = stable_run(system, "small", n, 16, kind=kind, poll=poll, during=during)
    processes = r.get("profile", {})
    for role, d in processes.items():  # CPU share from /proc over the whole run, for comparison
        cpu = r["cpu"].get("matcher" if role == "matcher worker" else role, {})
        if role == "matcher worker":
            value = cpu.get("children", float("nan")) / max(1, os.cpu_count() or 1)
        elif role == "matcher":
            value = cpu.get("total", float("nan")) - cpu.get("children", float("nan"))
        else:
            value = cpu.get("total", float("nan"))
        d["proc_cpu_share"] = value / r["wall_s"] if r["wall_s"] else float("nan")
    return {"tasks": n, "seconds": seconds, "tasks_per_s": r["tasks_per_s"], "processes": processes}


def run_list(workdir: Path, tasks: int, pages: int, log_level: str | None) -> dict[str, Any]:
    from bench import seed

    system = ListSystem(workdir / "list", log_level).start()
    try:
        log(f"  seeding {tasks} tasks (events straight to the stream, the real projector builds the view)")
        seed.quiet_logs()
        seeded = asyncio.run(seed.seed(system.nats_url, tasks, quiet=True, timeout=1800))
        log(f"  seeded: published in {seeded['publish_s']} s, projected after {seeded['projected_s']} s")
        services = system.services()
        before = procs.snapshot(services)
        measured = listbench.measure_all(system.base, pages)
        after = procs.snapshot(services)
        cpu = procs.cpu_delta(before, after)
        n_req = sum(len(v) for m in measured.values() for d in m["lat_s"].values() for v in d.values())
        queries = {}
        for name, m in measured.items():
            queries[name] = {phase: {t: {"p50_ms": ms(pct(v, 50)), "p95_ms": ms(pct(v, 95)), "n": len(v)}
                                     for t, v in d.items()} for phase, d in m["lat_s"].items()}
        errors = [e for m in measured.values() for e in m["error_examples"]]
        return {"tasks": tasks, "seed": seeded, "by_query": queries, "errors": sum(m["errors"] for m in measured.values()),
                "error_examples": errors[:5], "requests": n_req,
                "gateway_cpu_ms_per_req": ms(cpu["gateway"]["total"]) / n_req if n_req else float("nan"),
                "nats_cpu_ms_per_req": ms(cpu["nats-server"]["total"]) / n_req if n_req else float("nan"),
                "worst_p95_ms": max(x["p95_ms"] for q in queries.values() for d in q.values() for x in d.values()),
                "restarted": system.restarted(), "raw": measured}
    finally:
        system.stop()


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench", description="AeroVision benchmark: service vs in-process limit")
    p.add_argument("--quick", action="store_true", help="small counts, ~2 minutes")
    p.add_argument("--soak", action="store_true", help="memory run of 10,000 tasks (overrides --long)")
    p.add_argument("--long", type=int, default=None, help="tasks in the memory run (default: 300 quick, 2000 full)")
    p.add_argument("--reps", type=int, default=None, help="interleaved repetitions of each comparison")
    p.add_argument("--workloads", default=None,
                   help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (profile only runs when listed and --profile/full)")
    p.add_argument("--only", default=None, help="run only these sections (same names)")
    p.add_argument("--profile", action="store_true", help="py-spy profiles (default on in full mode)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--client", choices=("auto", *CLIENT_KINDS), default="auto",
                   help="load client for the service runs; auto = the one measured cheaper in CPU")
    p.add_argument("--poll", type=float, default=0.01, help="poll interval of the clients, s")
    p.add_argument("--status-tool", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument("--status-connections", type=int, default=16)
    p.add_argument("--list-tasks", type=int, default=None, help="tasks seeded for the list figure")
    p.add_argument("--tasks", type=int, default=None,
                   help="tasks per c=16 run of every workload (c=1 runs: a fifth of it); a smoke run uses a few")
    p.add_argument("--log-level", default=None, help="AEROVISION_LOG_LEVEL of the services (default: theirs, INFO)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--keep", action="store_true", help="keep the temporary data folders")
    p.add_argument("--data-root", type=Path, default=HERE / "work",
                   help="where the temporary data folders go (default: bench/work, on the project's disk)")
    args = p.parse_args(argv)

    mode = "quick" if args.quick else "full"
    cfg = json.loads(json.dumps(MODES[mode]))
    if args.reps:
        cfg["reps"] = args.reps
    if args.tasks:
        for wcfg in cfg["workloads"].values():
            wcfg["n"], wcfg["n1"] = args.tasks, max(C1_BLOCKS, args.tasks // 5)
    long_tasks = 10_000 if args.soak else (args.long or cfg["long"])
    list_tasks = args.list_tasks or cfg["list_tasks"]
    sections = set((args.only or args.sections).split(","))
    do_profile = "profile" in sections and not args.no_profile and (args.profile or mode == "full") \
        and profile.py_spy() is not None
    names = (args.workloads or ",".join(cfg["workloads"])).split(",")
    started = time.monotonic()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # The data folders sit where a user's `.aerovision` would, on the project's disk, not in /tmp:
    # on the machine of bench/README.md, creating files under /tmp was ~5x slower (0.9 vs 0.18 ms
    # per 351 KB write and rename), which cost the service 8-14 % of its throughput.
    args.data_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="aerovision-bench-", dir=args.data_root))
    profile_dir = args.out / f"{stamp}-profiles"  # raw py-spy stacks, kept beside the JSON
    results: dict[str, Any] = {
        "mode": mode, "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "free_page_reporting": machine.free_page_reporting(),
                    "loadavg_start": os.getloadavg()},
        "config": {**cfg, "long": long_tasks, "list_tasks": list_tasks, "poll_s": args.poll, "workloads_run": names,
                   "sections": sorted(sections), "profile": do_profile},
    }
    kind = args.client if args.client != "auto" else "raw"
    system = pool = stopping = None
    failed = None
    try:
        needs_up = sections & {"clients", "throughput", "status", "memory", "profile"}
        if needs_up:
            log(f"{mode} mode: starting aerovision up in {workdir}")
            system = UpSystem(workdir / "up", args.log_level).start()
            results["services"] = system.services()
            log(f"  services: {system.services()}")
            # Workers import OpenCV and the job code on their first task: warm them up.
            for name in names:
                service_run(system, name, 8, 4, kind="raw", poll=args.poll)
        if "clients" in sections and system:
            log("clients: raw HTTP/1.1 vs aiohttp vs threads+requests, small, c=16")
            results["clients"] = run_clients(system, cfg, args.poll)
            if args.client == "auto":
                kind = results["clients"]["cheaper"]
        results["client_used"] = kind
        if "throughput" in sections and system:
            # The limit of a lane's tools is as many processes as the lane has workers (the slow
            # lane: half the cores), so a ratio compares like with like.
            pools = {"fast": LimitPool(), "slow": LimitPool(max(1, (os.cpu_count() or 1) // 2))}
            for name in names:
                pools[TOOLS[WORKLOADS[name].tool].lane].warm(name)
            results["workloads"] = {}
            for name in names:
                wcfg = cfg["workloads"].get(name, {"n": 40, "n1": 10})
                reps = wcfg.get("reps", cfg["reps"]) if not args.reps else args.reps
                log(f"throughput and latency: {name} ({WORKLOADS[name].description}), {reps} reps, client {kind}")
                results["workloads"][name] = run_throughput(system, pools[TOOLS[WORKLOADS[name].tool].lane],
                                                            name, wcfg, reps, kind, args.poll)
            for lane_pool in pools.values():
                lane_pool.close()
        if "lanes" in sections and system:
            log("lanes: template tasks at c=1, idle and while surface jobs fill the slow lane")
            results["lanes"] = run_lanes(system, kind, args.poll, *((10, 6) if args.quick else (20, 12)))
        if "status" in sections and system:
            tool = args.status_tool
            log(f"status reads: {cfg['status_reps']} × {cfg['status_s']:.0f} s, "
                f"{'wrk' if (tool == 'wrk' or (tool == 'auto' and shutil.which('wrk'))) else 'aiohttp loader'}")
            results["status"] = run_status(system, cfg, tool, args.status_connections,
                                           profile_dir if do_profile else None)
        if "memory" in sections and system:
            log(f"memory: {long_tasks} small tasks at c=16")
            results["memory"] = run_memory(system, long_tasks, kind, args.poll)
        if do_profile and system:
            rate = results.get("workloads", {}).get("small", {}).get("service", {}).get("tasks_per_s", 40.0)
            log(f"profile: py-spy on gateway, matcher, a matcher worker, projector for {cfg['profile_s']:.0f} s")
            results["profile"] = run_profile(system, cfg["profile_s"], rate, kind, args.poll, profile_dir)
        if system:
            results["service_exits"] = system.exits()
            if mode == "quick":  # the services take ~20 s to stop: let them, while the list runs
                stopping = threading.Thread(target=lambda s=system: results.__setitem__("up_exit_code", s.stop()))
                stopping.start()
            else:
                t0 = time.monotonic()
                results["up_exit_code"] = system.stop()
                results["up_stop_s"] = time.monotonic() - t0
            system = None
        if "list" in sections:
            log(f"task list: {list_tasks} tasks, nats-server + projector + gateway")
            results["list"] = run_list(workdir, list_tasks, cfg["list_pages"], args.log_level)
    except BaseException as exc:  # still print and save what was measured
        import traceback

        failed = exc
        results["error"] = traceback.format_exc()
        if system is not None:
            results["up_log_tail"] = system.log_tail(6000)
    finally:
        if pool is not None:
            pool.close()
        if system is not None:
            results["service_exits"] = system.exits()
            system.stop()
        if stopping is not None:
            stopping.join()
        results["disturbed_runs"] = DISTURBANCES
        results["elapsed_s"] = time.monotonic() - started
        results["machine"]["loadavg_end"] = os.getloadavg()
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{stamp}{'-quick' if mode == 'quick' else ''}.json"
        path.write_text(json.dumps(_clean(results), indent=1, default=_json_default))
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(results))
    print(f"\nraw results: {path}")
    if failed is not None:
        print(f"\nTHE RUN FAILED:\n{results['error']}", file=sys.stderr)
        sys.exit(1)


def _clean(o: Any) -> Any:
    """NaN (a figure that could not be measured) is written as null: the file stays valid JSON."""
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    return str(o)


if __name__ == "__main__":
    main()
