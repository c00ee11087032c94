"""The readable table printed at the end of a run (from the same dict that is written as JSON)."""

from __future__ import annotations

import math
from typing import Any

GOALS = {
    "ratio": ("small-task service throughput ≥ 0.75 × limit", 0.75),
    "overhead": ("latency overhead p50 ≤ 10 ms (c=1)", 10.0),
    "status": ("status reads ≥ 3,000 req/s on one core", 3000.0),
    "list": ("list p95 ≤ 20 ms at 100k tasks", 20.0),
    "rss": ("RSS flat (gateway and matcher grow ≤ 10 % start→end)", 10.0),
}


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)]
        out.append(indent + "  ".join(cells).rstrip())
    return out


def render(res: dict[str, Any]) -> str:
    m = res.get("machine", {})
    lines = [
        "=" * 100,
        f"AeroVision benchmark — {res.get('mode')} mode — {res.get('started')} — {m.get('cores')} cores "
        f"(load avg {_f(m.get('loadavg_start', [None])[0], 2)} → {_f(m.get('loadavg_end', [None])[0], 2)}), "
        f"took {_f(res.get('elapsed_s'), 0)} s",
        "Medians over interleaved repetitions; ratio = median of per-repetition service/limit. "
        f"Client: {res.get('client_used')}, poll {_f(1000 * res.get('config', {}).get('poll_s', 0.01), 0)} ms.",
        "=" * 100,
    ]
    if m.get("free_page_reporting"):
        lines[-1:-1] = [
            "This VM hands freed memory back to its host (virtio-balloon free page reporting): a page the store",
            "takes anew may have to be faulted in by the host, a cost the limit (which stores nothing) does not pay.",
        ]
    goals: list[tuple[str, str, str]] = []

    wls = res.get("workloads") or {}
    if wls:
        names = list(wls)
        rows: list[list[str]] = [["THROUGHPUT & LATENCY", *names]]
        rows.append(["  workload", *[wls[n]["description"].split(",")[0] for n in names]])
        rows.append(["  tasks per run (c=16) / (c=1) × reps", *[f"{wls[n]['n']} / {wls[n]['n_c1']} × {wls[n]['reps']}" for n in names]])
        rows.append(["limit tasks/s (pool of cores, in-process)", *[_f(wls[n]["limit"]["tasks_per_s"]) for n in names]])
        rows.append(["service tasks/s (c=16)", *[_f(wls[n]["service"]["tasks_per_s"]) for n in names]])
        rows.append(["ratio service/limit", *[_f(wls[n]["ratio"], 2) for n in names]])
        rows.append(["  per rep", *[" ".join(_f(p["ratio"], 2) for p in wls[n]["pairs"]) for n in names]])
        for c in ("c16", "c1"):
            rows.append([f"latency submit→done {c.replace('c', 'c=')} p50/p95/p99 ms",
                         *["/".join(_f(wls[n]["service"][c][k], 0) for k in ("p50_ms", "p95_ms", "p99_ms")) for n in names]])
        rows.append(["  POST /match p50 ms (c=16 / c=1)", *[f"{_f(wls[n]['service']['c16']['submit_p50_ms'])} / "
                                                         f"{_f(wls[n]['service']['c1']['submit_p50_ms'])}" for n in names]])
        rows.append(["  GET polls per task (c=16 / c=1)", *[f"{_f(wls[n]['service']['c16']['polls_per_task'])} / "
                                                         f"{_f(wls[n]['service']['c1']['polls_per_task'])}" for n in names]])
        rows.append(["  stored per task MB (the store's growth, c=16)",
                     *[_f(wls[n]["service"]["c16"].get("stored_mb_per_task"), 2) for n in names]])
        rows.append(["in-process compute p50 ms (one task alone)", *[_f(wls[n]["serial_p50_ms"]) for n in names]])
        rows.append(["  in-process compute p50 ms (in the 2-proc pool)", *[_f(wls[n]["limit"]["compute_p50_ms"]) for n in names]])
        rows.append(["latency overhead c=1 p50 ms", *[_f(wls[n]["overhead_p50_ms"]) for n in names]])
        rows.append(["  c=1 breakdown p50 ms accept/queue/run/visible",
                     *["/".join(_f(wls[n]["c1_breakdown_p50_ms"].get(k)) for k in ("accept", "queue", "run", "visible"))
                       for n in names]])
        rows.append(["  matcher overhead in run (run − compute alone)",
                     *[_f(wls[n]["c1_breakdown_p50_ms"].get("run", float("nan")) - wls[n]["serial_p50_ms"]) for n in names]])
        rows.append(["CPU ms per task (c=16 runs)", *["" for _ in names]])
        roles = ["gateway", "matcher", "matcher (main)", "matcher workers", "projector", "notifier", "nats-server",
                 "services total", "client"]
        for role in roles:
            rows.append([f"  {role}", *[_f(wls[n]["service"]["cpu_ms_per_task"].get(role)) for n in names]])
        rows.append(["  limit: worker CPU per task", *[_f(wls[n]["limit"]["cpu_ms_per_task"]) for n in names]])
        rows.append(["ground-truth failures (service / limit)",
                     *[f"{wls[n]['service']['failures']} / {wls[n]['limit']['failures']}" for n in names]])
        rows.append(["tasks run twice (attempts > 1) / slower than 5 s",
                     *[f"{wls[n]['service'].get('redelivered', 0)} / {len(wls[n]['service'].get('slow', []))}"
                       f" of {wls[n]['service'].get('tasks', 0)}" for n in names]])
        restarted = sorted({r for n in names for r in wls[n]["service"].get("restarted", [])})
        lines += _table(rows, "")
        if restarted:
            lines.append(f"  !! services restarted during runs: {', '.join(restarted)} (their CPU figures are n/a)")
        for n in names:
            for e in wls[n]["service"].get("failure_examples", []):
                lines.append(f"  !! {n}: {e}")
            for slow in wls[n]["service"].get("slow", [])[:3]:
                seg = slow.get("segments") or {}
                lines.append(f"  !! {n}: task {slow['uid']} took {_f(slow['lat'])} s, attempts {slow.get('attempts')}, "
                             + ", ".join(f"{k} {_f(v / 1000)} s" for k, v in seg.items()))
        if "small" in wls:
            r = wls["small"]["ratio"]
            goals.append((GOALS["ratio"][0], _f(r, 2), _mark(r >= GOALS["ratio"][1])))
            o = wls["small"]["overhead_p50_ms"]
            goals.append((GOALS["overhead"][0], f"{_f(o)} ms", _mark(o <= GOALS["overhead"][1])))
        lines.append("")

    cl = res.get("clients")
    if cl:
        rows = [["LOAD CLIENT (small, c=16)", "client CPU ms/task", "tasks/s", "gateway CPU ms/task"]]
        for k, v in cl["summary"].items():
            rows.append([f"  {k}", _f(v["client_cpu_ms_per_task"]), _f(v["tasks_per_s"]), _f(v["gateway_cpu_ms_per_task"])])
        lines += _table(rows, "")
        lines.append(f"  cheaper in CPU: {cl['cheaper']} (used for the runs above)")
        lines.append("")

    st = res.get("status")
    if st:
        rows = [["STATUS READS GET /api/v1/tasks/{uid}", ""]]
        rows.append([f"  loader: {st['tool']}, {st['connections']} keep-alive connections, {st['uids']} uids",
                     f"{_f(st['duration_s'], 0)} s × {len(st['runs'])}"])
        rows.append(["req/s sustained (whole machine)", _f(st["req_per_s"], 0)])
        rows.append(["gateway CPU ms per request", _f(st["gateway_cpu_ms_per_req"], 3)])
        rows.append(["req/s per gateway core (1000 / CPU ms per req)", _f(st["per_gateway_core_req_per_s"], 0)])
        rows.append(["gateway core share during the run", _f(st["gateway_core_share"], 2)])
        rows.append(["loader CPU ms per request", _f(st["loader_cpu_ms_per_req"], 3)])
        rows.append(["latency p50 / p99 ms", f"{_f(st['p50_ms'], 2)} / {_f(st['p99_ms'], 2)}"])
        rows.append(["errors", _f(st["errors"])])
        lines += _table(rows, "")
        v = st["per_gateway_core_req_per_s"]
        goals.append((GOALS["status"][0], f"{_f(v, 0)} req/s per core ({_f(st['req_per_s'], 0)} measured)",
                      _mark(v >= GOALS["status"][1]) if not math.isnan(v or float("nan")) else "n/a"))
        lines.append("")

    lanes = res.get("lanes")
    if lanes:
        rows = [["LANES template c=1 (ms)", "p50", "p95"],
                ["  idle", _f(lanes["idle_p50_ms"]), _f(lanes["idle_p95_ms"])],
                ["  while surface jobs fill the slow lane", _f(lanes["busy_p50_ms"]), _f(lanes["busy_p95_ms"])],
                ["  surface tasks run meanwhile / failed", str(lanes["surface_tasks"]), str(lanes["surface_failures"])]]
        lines += _table(rows, "")
        if lanes["failures"]:
            lines.append(f"  !! {lanes['failures']} template tasks failed their ground truth")
        goals.append(("template p95 < 1 s while surface jobs run", f"{_f(lanes['busy_p95_ms'])} ms",
                      _mark(lanes["busy_p95_ms"] < 1000)))
        lines.append("")

    ls = res.get("list")
    if ls:
        rows = [[f"TASK LIST GET /api/v1/tasks?limit=50 ({ls['tasks']:,} tasks)", "cold p50/p95 ms", "warm p50/p95 ms"]]
        for query, by_offset in ls["by_query"].items():
            rows.append([f"  {query}", "", ""])
            for t in by_offset["cold"]:
                c, w = by_offset["cold"][t], by_offset["warm"][t]
                rows.append([f"    offset {int(t):,} (+{c['n']} pages near it)", f"{_f(c['p50_ms'])} / {_f(c['p95_ms'])}",
                             f"{_f(w['p50_ms'])} / {_f(w['p95_ms'])}"])
        rows.append(["gateway / nats-server CPU ms per request", f"{_f(ls['gateway_cpu_ms_per_req'], 2)} / {_f(ls['nats_cpu_ms_per_req'], 2)}", ""])
        s = ls["seed"]
        rows.append(["seeding: published / projected after s", f"{_f(s['publish_s'])} / {_f(s['projected_s'])}", ""])
        rows.append(["  projector rate tasks/s", _f(ls["tasks"] / s["projected_s"], 0) if s.get("projected_s") else "n/a", ""])
        lines += _table(rows, "")
        if ls.get("errors"):
            lines.append(f"  !! {ls['errors']} wrong list answers, e.g. {ls['error_examples'][:2]}")
        if ls.get("restarted"):
            lines.append(f"  !! services exited during the list run: {ls['restarted']}")
        worst = ls["worst_p95_ms"]
        note = "" if ls["tasks"] >= 100_000 else f" (at {ls['tasks']:,} tasks, not 100k)"
        goals.append((GOALS["list"][0], f"worst p95 {_f(worst)} ms{note}", _mark(worst <= GOALS["list"][1])))
        lines.append("")

    mem = res.get("memory")
    if mem:
        rows = [[f"MEMORY RSS MB over {mem['tasks']:,} small tasks (c=16, {_f(mem['tasks_per_s'])} tasks/s)",
                 "start", "mid", "end", "max", "growth %"]]
        for role in ("gateway", "matcher", "projector", "nats-server"):
            d = mem.get(role, {})
            rows.append([f"  {role}{' (incl. workers)' if role == 'matcher' else ''}", _f(d.get("start_mb")), _f(d.get("mid_mb")),
                         _f(d.get("end_mb")), _f(d.get("max_mb")), _f(d.get("growth_pct"))])
        lines += _table(rows, "")
        if mem.get("disturbed"):
            lines.append(f"  !! this run was disturbed: {mem['disturbed']}")
        g = [mem[r]["growth_pct"] for r in ("gateway", "matcher")]
        ok = all(x is not None and not math.isnan(x) and x <= GOALS["rss"][1] for x in g)
        goals.append((GOALS["rss"][0], f"gateway {_f(g[0])} %, matcher {_f(g[1])} % over {mem['tasks']:,} tasks", _mark(ok)))
        lines.append("")

    prof = res.get("profile")
    blocks = []
    if prof:
        blocks.append((f"service run, small c=16, {prof['seconds']:.0f} s", prof.get("processes", {})))
    if st and st.get("profile"):
        blocks.append(("status reads", st["profile"]))
    for title, procs in blocks:
        lines.append(f"PROFILE (py-spy, {title}): % of that process's active samples")
        for role, p in procs.items():
            if "error" in p:
                lines.append(f"  {role}: py-spy failed: {p['error'][:200]}")
                continue
            total = max(1, p["samples"])
            proc_share = p.get("proc_cpu_share")
            lines.append(f"  {role}: active in {_f(100 * p['cpu_share'], 0)} % of samples"
                         + (f"; CPU {_f(100 * proc_share, 0)} % of a core (/proc)" if proc_share is not None else ""))
            for fn, n in p["self"][:5]:
                lines.append(f"      {100 * n / total:5.1f} % self       {fn}")
            for fn, n in p.get("project", [])[:6]:
                lines.append(f"      {100 * n / total:5.1f} % incl. own  {fn}")
            for fn, n in p["inclusive"][:4]:
                lines.append(f"      {100 * n / total:5.1f} % incl. lib  {fn}")
        lines.append("")

    dis = res.get("disturbed_runs") or []
    if dis:
        lines.append(f"!! {len(dis)} run(s) disturbed and measured again (not in the figures above):")
        for d in dis[:6]:
            lines.append(f"     {d['workload']} c={d['concurrency']} n={d['n']}: {d['why']}, {_f(d['tasks_per_s'])} tasks/s")
    exits = res.get("service_exits") or []
    if exits:
        lines.append(f"!! {len(exits)} service exit(s) during the run (the supervisor restarted them):")
        for e in exits[:5]:
            lines.append(f"     {e.get('at')}  {e.get('service')} exited {e.get('code')}: {e.get('last_error')}")
        lines.append("")
    if res.get("up_stop_s") is not None:
        lines.append(f"aerovision up took {_f(res['up_stop_s'])} s to stop (exit code {res.get('up_exit_code')})")
        lines.append("")
    if res.get("error"):
        lines.append("!! THE RUN FAILED (figures above are partial): " + res["error"].strip().splitlines()[-1])
        lines.append("")

    if goals:
        rows = [["GOALS", "measured", "verdict"]]
        rows += [[f"  {g}", v, mk] for g, v, mk in goals]
        lines += _table(rows, "")
    return "\n".join(lines)
