"""How long ``aerovision replay`` takes: a private nats-server and a real projector process, the
log seeded with synthetic finished tasks (``bench.seed``: a TaskSubmitted and a TaskFinished each),
then a replay that rebuilds the view and compares it with the live one, timed.

    .venv/bin/python -m bench.replay --events 100000        # 50,000 tasks
    .venv/bin/python -m bench.replay --events 100000 --reps 3

Prints one JSON line per repetition and the medians. The machine is whatever runs it: report
what else was running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from aerovision import natsserver
from bench.seed import quiet_logs, seed
from bench.system import clean_env
from infra import nats_layout
from services.projector.replay import replay
from services.projector.settings import ProjectorSettings
from services.projector.switch import drop_candidates


async def _replay_once(url: str, batch: int) -> dict:
    """What ``aerovision replay`` does (rebuild, then compare once the live view has caught up)."""
    nc = await nats_layout.connect(url, "bench-replay")
    try:
        report = await replay(nc, ProjectorSettings(nats_url=url, batch=batch))
        await drop_candidates(nc.jetstream())
    finally:
        await nc.close()
    return {"events": report.events, "tasks": report.tasks, "rebuild_s": report.rebuild_s,
            "events_per_s": round(report.events / report.rebuild_s), "compare_s": report.compare_s,
            "differences": len(report.differences)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the log (two per task)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4096, help="events folded per batch")
    args = parser.parse_args(argv)
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as home:
        port = natsserver.free_port()
        server = natsserver.start(Path(home) / "jetstream", port)
        url = f"nats://127.0.0.1:{port}"
        projector = subprocess.Popen([sys.executable, "-m", "aerovision", "projector"],
                                     env=clean_env(NATS_URL=url, AEROVISION_LOG_LEVEL="WARNING"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seeded = asyncio.run(seed(url, args.events // 2, quiet=True))
            print(json.dumps({"seeded": seeded}), flush=True)
            runs = []
            for _ in range(args.reps):
                runs.append(asyncio.run(_replay_once(url, args.batch)))
                print(json.dumps(runs[-1]), flush=True)
        finally:
            projector.terminate()
            projector.wait(timeout=30)
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({"median_rebuild_s": statistics.median(r["rebuild_s"] for r in runs),
                      "median_compare_s": statistics.median(r["compare_s"] for r in runs),
                      "median_events_per_s": statistics.median(r["events_per_s"] for r in runs)}))


if __name__ == "__main__":
    main()
