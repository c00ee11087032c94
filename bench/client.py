"""The HTTP load client, run as its own process: ``concurrency`` clients, each submitting one task
(multipart POST) and polling GET /api/v1/tasks/{uid} until it ends, as the original docs' examples
do (GET, and if not done, sleep ``poll`` s and GET again), ``n`` tasks in all.

Three implementations, to measure which costs least CPU (the client shares the machine's cores
with the system under test, so a heavy client makes the service look slower): ``raw`` (one event
loop, one keep-alive connection per client, just enough HTTP/1.1, as wrk does it), ``aiohttp``
(one event loop, keep-alive pool) and ``threads`` (one thread and one ``requests.Session`` per
client). All send the same bytes: the multipart form is encoded once.

Protocol with the orchestrator: the client prepares its inputs, prints ``ready``, waits for a line
on stdin (so CPU snapshots of the services bracket the work only), runs, prints one JSON line.

    python -m bench.client --base http://127.0.0.1:8888 --workload small --n 100 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import mimetypes
import resource
import sys
import threading
import time
from typing import Any

from bench.workloads import Workload, get

TERMINAL = ("done", "error")
ASYNC_KINDS = ("raw", "aiohttp")
KINDS = (*ASYNC_KINDS, "threads")
SLOW_S = 5.0  # a task slower than this is reported with its event history


def multipart_body(files: list[tuple[str, str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    """The form encoded once, as a browser or curl would send it: every submission of a run sends
    the same bytes, so the load client spends its CPU on requests rather than on re-encoding."""
    boundary = "aerovision-bench-7d3f0c"
    parts: list[bytes] = []
    for field, name, data in files:
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: {media}\r\n\r\n".encode() + data + b"\r\n")
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _segments(events: list[dict[str, Any]], wall_start: float, wall_done: float) -> dict[str, float] | None:
    """Where the time of one task went, from its event history (ms; clocks of one machine)."""
    at = {}
    for e in events:
        at.setdefault(e.get("type"), _ts(e["occurred_at"]))
    if not all(k in at for k in ("task.submitted", "task.started", "task.finished")):
        return None
    return {
        "accept": (at["task.submitted"] - wall_start) * 1e3,  # POST sent -> TaskSubmitted stamped
        "queue": (at["task.started"] - at["task.submitted"]) * 1e3,  # -> a matcher took it
        "run": (at["task.finished"] - at["task.started"]) * 1e3,  # inputs, pool job, results stored
        "visible": (wall_done - at["task.finished"]) * 1e3,  # projector + view + poll interval
    }


def _record(wl: Workload, task: dict[str, Any], t0: float, t_sub: float, t_done: float, polls: int) -> dict[str, Any]:
    why = wl.verify(task.get("status", "?"), task.get("result_data") or {}, len(task.get("result_files") or []),
                    task.get("error"))
    return {"uid": task.get("uid"), "lat": t_done - t0, "submit": t_sub - t0, "polls": polls, "why": why,
            "attempts": task.get("attempts", 1)}


# --- asyncio clients: aiohttp, or raw HTTP/1.1 ----------------------------------------------


class _AiohttpClient:
    """One of the concurrent clients, on a shared aiohttp session (keep-alive pool)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def request(self, method: str, url: str, body: bytes | None = None,
                      content_type: str | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else None
        async with self._session.request(method, url, data=body, headers=headers) as r:
            return r.status, await r.read()

    async def close(self) -> None:
        pass


class _RawClient:
    """One client on its own keep-alive connection, speaking just enough HTTP/1.1 (as wrk does):
    the load generator should spend the shared cores on requests, not on a client library."""

    def __init__(self, base: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._prefix = len(f"{parts.scheme}://{parts.netloc}")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, url: str, body: bytes | None = None,
                      content_type: str | None = None) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        head = f"{method} {url[self._prefix:] or '/'} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n")
        if body:
            writer.write(body)
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                data = bytearray()
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    data += await reader.readexactly(size + 2)
                    del data[-2:]
                await reader.readuntil(b"\r\n")
                payload = bytes(data)
            else:
                payload = await reader.readexactly(int(headers.get("content-length", 0)))
        except (asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            await self.close()
            raise ConnectionError(f"bad or cut response: {exc}") from None
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = self._reader = None


async def _run_async(kind: str, base: str, wl: Workload, n: int, concurrency: int, poll: float, events: bool,
                     timeout: float) -> tuple[list[dict[str, Any]], float]:
    form, content_type = multipart_body(wl.inputs(), wl.form_fields())
    counter = itertools.count()
    records: list[dict[str, Any]] = []
    session = None
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
                                        timeout=aiohttp.ClientTimeout(total=timeout))
        errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError)
    else:
        errors = (asyncio.TimeoutError, ValueError, OSError)

    async def one(http: Any) -> None:
        wall0, t0 = time.time(), time.perf_counter()
        try:
            code, body = await http.request("POST", base + wl.endpoint, form, content_type)
            t_sub = time.perf_counter()
            if code != 201:
                records.append({"lat": None, "why": f"POST answered {code}: {body[:200]!r}"})
                return
            uid = json.loads(body)["uid"]
            polls = 0
            while True:
                _, body = await http.request("GET", f"{base}/api/v1/tasks/{uid}")
                polls += 1
                task = json.loads(body)
                if task.get("status") in TERMINAL:
                    break
                if time.perf_counter() - t0 > timeout:
                    records.append({"lat": None, "why": f"task {uid} not done after {timeout:.0f} s"})
                    return
                await asyncio.sleep(poll)
            t_done, wall_done = time.perf_counter(), time.time()
        except errors as exc:
            records.append({"lat": None, "why": f"{type(exc).__name__}: {exc}"})
            return
        rec = _record(wl, task, t0, t_sub, t_done, polls)
        if events or rec["lat"] > SLOW_S:
            _, body = await http.request("GET", f"{base}/api/v1/tasks/{uid}/events")
            history = json.loads(body)
            rec["segments"] = _segments(history, wall0, wall_done)
            if rec["lat"] > SLOW_S:
                rec["history"] = [{k: e.get(k) for k in ("type", "occurred_at", "attempt", "worker", "status")} for e in history]
        records.append(rec)

    async def client() -> None:
        http = _AiohttpClient(session) if session is not None else _RawClient(base)
        try:
            while next(counter) < n:
                await one(http)
        finally:
            await http.close()

    try:
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    finally:
        if session is not None:
            await session.close()
    return records, wall


# --- threads + requests -----------------------------------------------------------------------


def _run_threads(base: str, wl: Workload, n: int, concurrency: int, poll: float, events: bool,
                 timeout: float) -> tuple[list[dict[str, Any]], float]:
    import requests

    form, content_type = multipart_body(wl.inputs(), wl.form_fields())
    counter = itertools.count()
    lock = threading.Lock()
    records: list[dict[str, Any]] = []

    def one(http: requests.Session) -> None:
        wall0, t0 = time.time(), time.perf_counter()
        try:
            r = http.post(base + wl.endpoint, data=form, headers={"Content-Type": content_type}, timeout=timeout)
            t_sub = time.perf_counter()
            if r.status_code != 201:
                rec = {"lat": None, "why": f"POST answered {r.status_code}: {r.text[:200]}"}
            else:
                uid = r.json()["uid"]
                polls = 0
                while True:
                    task = http.get(f"{base}/api/v1/tasks/{uid}", timeout=timeout).json()
                    polls += 1
                    if task.get("status") in TERMINAL or time.perf_counter() - t0 > timeout:
                        break
                    time.sleep(poll)
                t_done, wall_done = time.perf_counter(), time.time()
                if task.get("status") not in TERMINAL:
                    rec = {"lat": None, "why": f"task {uid} not done after {timeout:.0f} s"}
                else:
                    rec = _record(wl, task, t0, t_sub, t_done, polls)
                    if events or rec["lat"] > SLOW_S:
                        history = http.get(f"{base}/api/v1/tasks/{uid}/events").json()
                        rec["segments"] = _segments(history, wall0, wall_done)
                        if rec["lat"] > SLOW_S:
                            rec["history"] = [{k: e.get(k) for k in ("type", "occurred_at", "attempt", "worker", "status")}
                                              for e in history]
        except (requests.RequestException, ValueError) as exc:
            rec = {"lat": None, "why": f"{type(exc).__name__}: {exc}"}
        with lock:
            records.append(rec)

    def client() -> None:
        with requests.Session() as http:
            while True:
                with lock:
                    i = next(counter)
                if i >= n:
                    return
                one(http)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records, time.perf_counter() - start


def run(base: str, workload: str, n: int, concurrency: int, kind: str = "aiohttp", poll: float = 0.01,
        events: bool = False, timeout: float = 300.0) -> dict[str, Any]:
    wl = get(workload)
    cpu0 = _cpu_s()
    if kind in ASYNC_KINDS:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        records, wall = asyncio.run(_run_async(kind, base, wl, n, concurrency, poll, events, timeout))
    elif kind == "threads":
        records, wall = _run_threads(base, wl, n, concurrency, poll, events, timeout)
    else:
        raise SystemExit(f"unknown client kind {kind!r}")
    cpu = _cpu_s() - cpu0
    failures = [r["why"] for r in records if r.get("why")]
    return {
        "workload": workload, "kind": kind, "n": n, "concurrency": concurrency, "poll_s": poll,
        "wall_s": wall, "tasks_per_s": n / wall if wall > 0 else 0.0, "client_cpu_s": cpu,
        "ok": sum(1 for r in records if not r.get("why")), "failures": len(failures),
        "failure_examples": failures[:5],
        "lat_s": [r["lat"] for r in records if r.get("lat") is not None and not r.get("why")],
        "submit_s": [r["submit"] for r in records if r.get("submit") is not None],
        "polls": [r["polls"] for r in records if r.get("polls") is not None],
        "segments": [r["segments"] for r in records if events and r.get("segments")],
        "redelivered": sum(1 for r in records if (r.get("attempts") or 1) > 1),
        "slow": [{k: r.get(k) for k in ("uid", "lat", "attempts", "segments", "history")} for r in records
                 if (r.get("lat") or 0) > SLOW_S][:10],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--workload", default="small")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--kind", choices=KINDS, default="raw")
    p.add_argument("--poll", type=float, default=0.01)
    p.add_argument("--events", action="store_true", help="fetch each task's events for a latency breakdown")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--handshake", action="store_true", help="print 'ready', wait for a line on stdin")
    args = p.parse_args(argv)
    get(args.workload).inputs()  # build the images before the clock starts
    if args.handshake:
        print("ready", flush=True)
        sys.stdin.readline()
    result = run(args.base, args.workload, args.n, args.concurrency, args.kind, args.poll, args.events, args.timeout)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
