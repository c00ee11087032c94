"""CPU time and memory of processes, read from /proc (Linux).

CPU of a process = utime + stime of /proc/<pid>/stat, plus cutime + cstime (children it has
already reaped, e.g. a replaced pool worker). A service "group" is its process and every
descendant still alive (the matcher's pool workers), found through the ppid field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    cpu_s: float  # own utime + stime
    reaped_s: float  # cutime + cstime
    start_ticks: int  # identifies the process (a reused pid has another start time)


def stat(pid: int) -> Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    start = int(rest[19])
    return Stat(pid, ppid, (utime + stime) / TICK, (cutime + cstime) / TICK, start)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        s = stat(int(name))
        if s is not None:
            kids.setdefault(s.ppid, []).append(s.pid)
    return kids


def descendants(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    kids = children_map() if kids is None else kids
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


ROLES = ("gateway", "matcher", "projector", "notifier", "nats-server")


def role_of(argv: list[str]) -> str | None:
    if not argv:
        return None
    if os.path.basename(argv[0]).startswith("nats-server"):
        return "nats-server"
    if "aerovision" in argv and len(argv) > argv.index("aerovision") + 1:
        sub = argv[argv.index("aerovision") + 1]
        if sub in ("gateway", "matcher", "projector", "notifier"):
            return sub
    return None


def find_services(supervisor_pid: int | None = None, pids: dict[str, int] | None = None) -> dict[str, int]:
    """Role -> pid of each service under ``supervisor_pid`` (or the given pids)."""
    if pids is not None:
        return dict(pids)
    found: dict[str, int] = {}
    kids = children_map()
    for pid in kids.get(supervisor_pid, []):
        role = role_of(cmdline(pid))
        if role:
            found[role] = pid
    return found


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds and RSS per role, with the identity of every process counted."""

    cpu: dict[str, float]  # role -> s (root own + reaped + live descendants)
    cpu_children: dict[str, float]  # role -> s of its live descendants (+ reaped) only
    rss: dict[str, float]  # role -> MB (root + live descendants)
    identity: dict[str, tuple[int, int]]  # role -> (root pid, start ticks)
    members: dict[str, dict[int, tuple[int, float]]]  # role -> pid -> (start, cpu)


def snapshot(services: dict[str, int]) -> Snapshot:
    kids = children_map()
    cpu, cpu_children, rss, identity, members = {}, {}, {}, {}, {}
    for role, pid in services.items():
        root = stat(pid)
        if root is None:
            continue
        group = {pid: (root.start_ticks, root.cpu_s)}
        child_cpu = root.reaped_s
        mem = rss_mb(pid) or 0.0
        for d in descendants(pid, kids):
            s = stat(d)
            if s is None:
                continue
            group[d] = (s.start_ticks, s.cpu_s)
            child_cpu += s.cpu_s
            mem += rss_mb(d) or 0.0
        cpu[role] = root.cpu_s + child_cpu
        cpu_children[role] = child_cpu
        rss[role] = mem
        identity[role] = (pid, root.start_ticks)
        members[role] = group
    return Snapshot(cpu, cpu_children, rss, identity, members)


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, dict[str, float]]:
    """Per role: CPU seconds spent between the snapshots (total, of the children), or None
    values when the service restarted in between (then the figure would be meaningless).

    A member that existed before and after contributes its difference; one that appeared in
    between contributes all its CPU; one that vanished is covered by the parent's reaped time
    only if the parent waited for it (pool workers are joined)."""
    out: dict[str, dict[str, float]] = {}
    for role in set(before.identity) - set(after.identity):  # down at the end (restarting)
        out[role] = {"total": float("nan"), "children": float("nan"), "restarted": 1.0}
    for role, ident in after.identity.items():
        if before.identity.get(role) != ident:
            out[role] = {"total": float("nan"), "children": float("nan"), "restarted": 1.0}
            continue
        out[role] = {
            "total": after.cpu[role] - before.cpu[role],
            "children": after.cpu_children[role] - before.cpu_children[role],
            "restarted": 0.0,
        }
    return out
