"""CPU per task per service over consecutive batches on one system, while its store grows.

A quick benchmark stores a few hundred tasks; a system in service stores thousands. This runs
``--batches`` batches of ``--n`` small tasks at c=16 against one ``aerovision up`` and prints each
batch's tasks/s and CPU ms per task, with the kernel's dirty and writeback page counts, so a cost
that grows with the stored data shows as a trend (on this machine: nats-server's, see README.md).

    .venv/bin/python -m bench.growth --batches 8 --n 400
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.run import HERE, service_run, summarise_service, warm_system

_ROLES = ("nats-server", "gateway", "matcher (main)", "matcher workers", "projector")


def _meminfo_mb(*keys: str) -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            values[name] = int(rest.split()[0]) // 1024
    return values


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--n", type=int, default=400, help="small tasks per batch")
    p.add_argument("--data-root", type=Path, default=HERE / "work")
    args = p.parse_args(argv)

    args.data_root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="growth-", dir=args.data_root))
    with warm_system(root) as system:
        print(f"{'batch':>5s} {'stored':>7s} {'tasks/s':>8s} " + " ".join(f"{r:>16s}" for r in _ROLES)
              + f" {'dirty MB':>9s} {'writeback MB':>13s}")
        for batch in range(args.batches):
            s = summarise_service(service_run(system, "small", args.n, 16, kind="raw", poll=0.01))
            cpu, mem = s["cpu_ms_per_task"], _meminfo_mb("Dirty", "Writeback")
            print(f"{batch:5d} {(batch + 1) * args.n:7d} {s['tasks_per_s']:8.1f} "
                  + " ".join(f"{cpu.get(r, float('nan')):16.2f}" for r in _ROLES)
                  + f" {mem.get('Dirty', 0):9d} {mem.get('Writeback', 0):13d}", flush=True)


if __name__ == "__main__":
    main()
