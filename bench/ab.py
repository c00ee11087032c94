"""Paired A/B: this checkout against another commit, on the same machine, alternately.

This machine's speed drifts by more than most changes are worth, so a change is judged on pairs
of runs made seconds apart: ``aerovision up`` from a git worktree of ``--base`` and from this
checkout, one after the other (the order swapped every pair), each driven by the same load client
(small tasks at c=16), with CPU per service from ``/proc``. Prints the medians and the paired
ratios; writes the raw figures to ``bench/results/<timestamp>-ab.json``.

    .venv/bin/python -m bench.ab --base 90b5024 --pairs 4 --n 250
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.run import HERE, log, service_run, summarise_service, warm_system
from bench.stats import median
from bench.system import ROOT

_ROLES = ("gateway", "matcher (main)", "matcher workers", "projector", "notifier", "nats-server", "client")


def one_run(source: Path | None, workdir: Path, n: int, concurrency: int) -> dict[str, Any]:
    with warm_system(workdir, source) as system:
        s = summarise_service(service_run(system, "small", n, concurrency, kind="raw", poll=0.01))
    return {"tasks_per_s": s["tasks_per_s"], "p50_ms": s["p50_ms"], "failures": s["failures"],
            **{role: s["cpu_ms_per_task"].get(role, float("nan")) for role in _ROLES}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the commit to compare against (any git ref)")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--n", type=int, default=250, help="small tasks per run")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--data-root", type=Path, default=HERE / "work")
    args = p.parse_args(argv)

    args.data_root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ab-", dir=args.data_root))
    base_src = root / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_src), args.base], cwd=ROOT, check=True,
                   capture_output=True)
    sides = {"base": base_src, "now": None}
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "now": []}
    try:
        for pair in range(args.pairs):
            order = ("base", "now") if pair % 2 == 0 else ("now", "base")
            for side in order:
                r = one_run(sides[side], root / f"{side}-{pair}", args.n, args.concurrency)
                runs[side].append(r)
                log(f"  pair {pair + 1} {side}: {r['tasks_per_s']:.1f} tasks/s")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_src)], cwd=ROOT, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    ratios = [now["tasks_per_s"] / base["tasks_per_s"] for base, now in zip(runs["base"], runs["now"])]
    print(f"\nA/B, {args.pairs} pairs of {args.n} small tasks at c={args.concurrency}: base {args.base} vs this checkout")
    print(f"{'median':38s}{'base':>10s}{'now':>10s}")
    for key in ("tasks_per_s", "p50_ms", *_ROLES):
        label = key if key in ("tasks_per_s", "p50_ms") else f"CPU ms/task {key}"
        print(f"{label:38s}{median(r[key] for r in runs['base']):10.2f}{median(r[key] for r in runs['now']):10.2f}")
    print(f"paired ratios now/base (tasks/s): {', '.join(f'{x:.3f}' for x in ratios)}; median {median(ratios):.3f}")
    out = HERE / "results" / f"{dt.datetime.now():%Y%m%d-%H%M%S}-ab.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": args.base, "runs": runs, "ratios": ratios}, indent=1))
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
