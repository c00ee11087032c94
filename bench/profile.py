"""Sampling profiles of service processes during a run (py-spy, non-blocking), summarised as text.

``py-spy record --format raw`` writes collapsed stacks ("frame;frame;frame count"); idle threads
are left out by py-spy, so samples / (rate × duration) is the share of time the process was seen
active — an upper bound of its CPU: a thread blocked in a pipe read or a socket write can count as
active (the orchestrator prints the /proc CPU share beside it). The summary lists the functions with the most samples on top of the stack ("self"; for a uvloop
service, ``Runner.run`` self time is the C event loop: socket I/O and callbacks), and, leaving
out the entry points every sample passes through, AeroVision's own functions ("incl. own") and
library functions ("incl. lib") with the most samples anywhere in the stack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pids: dict[str, int], duration: float, outdir: Path, rate: int = 100) -> dict[str, Any]:
    """Start one py-spy per process; returns handles for ``finish``."""
    exe = py_spy()
    if exe is None:
        return {}
    outdir.mkdir(parents=True, exist_ok=True)
    handles = {}
    for role, pid in pids.items():
        out = outdir / f"{role}.txt"
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(duration))), "--rate", str(rate),
               "--format", "raw", "--nonblocking", "--output", str(out)]
        handles[role] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out)
    return {"handles": handles, "duration": duration, "rate": rate}


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = path.replace("\\", "/").split("/")
    for anchor in ("site-packages", "services", "contracts", "aerovision", "lib"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            parts = parts[i + 1:] if anchor in ("site-packages", "lib") else parts[i:]
            break
    return f"{m.group('fn')} ({'/'.join(parts[-3:])})"


_WRAPPERS = re.compile(
    r"^(<module>|_run_module_as_main|_run_code|main|asyncio_run|run_until_complete|_run_until_signalled|run_\w+|"
    r"Runner\.run|Server\.run|Server\.serve|serve|_main|spawn_main|_worker_main|BaseProcess\.\w+|Thread\.\w+|"
    r"ProxyHeadersMiddleware\.__call__|Litestar\.__call__|RequestResponseCycle\.run_asgi|"
    r"ExceptionHandlerMiddleware\.__call__|Matcher\.run|Projector\.run|Notifier\.run|body) \("
)
_PROJECT = ("(services/", "(contracts/", "(aerovision/")


def summarise(path: Path, top: int = 8) -> dict[str, Any]:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    useful = [(f, n) for f, n in incl.most_common() if not _WRAPPERS.match(f) and n < 0.995 * total]
    return {
        "samples": total,
        "self": [(f, n) for f, n in self_c.most_common(top)],
        "project": [(f, n) for f, n in useful if any(p in f for p in _PROJECT)][:top],
        "inclusive": [(f, n) for f, n in useful if not any(p in f for p in _PROJECT)][:top],
    }


def finish(state: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for role, (proc, out) in state.get("handles", {}).items():
        try:
            log, _ = proc.communicate(timeout=state["duration"] + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        if proc.returncode != 0 or not out.exists():
            results[role] = {"error": (log or "").strip()[-500:] or f"py-spy exited {proc.returncode}"}
            continue
        summary = summarise(out)
        summary["cpu_share"] = summary["samples"] / (state["rate"] * state["duration"])
        summary["file"] = str(out)
        results[role] = summary
    return results
