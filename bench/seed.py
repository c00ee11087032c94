"""Seed the task view with many finished tasks, fast: publish TaskSubmitted + TaskFinished events
straight to the event stream (as the gateway and the matcher would) and let the real projector
build the view and the task-list indexes. One task in ten ends in error, so ``?status=error``
pages are sparse and ``?status=done`` dense.

    .venv/bin/python -m bench.seed --nats nats://127.0.0.1:4222 --count 100000

Waits (unless --no-wait) until the projector's "all" index counts every seeded task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

from contracts import events, names
from contracts.events import TaskFinished, TaskSubmitted
from contracts.params import TemplateParams
from contracts.results import TemplateMatch, TemplateResult
from contracts.view import INDEX_ALL, head_decoder, index_head_key
from infra import nats_layout

RESULT = TemplateResult(
    method="TM_CCOEFF_NORMED", matches_found=3, filtered_matches=3, best_score=1.0,
    matches=[TemplateMatch(x, y, 32, 32, 1.0) for x, y in ((120, 45), (340, 180), (560, 310))],
)
ERROR_EVERY = 10


def _events(uid: str, number: int) -> tuple[TaskSubmitted, TaskFinished]:
    submitted = events.submitted(
        "template", uid=uid, params=TemplateParams(),
        input_files=[f"uploads/{uid}/image.png", f"uploads/{uid}/template.png"],
        thumbnails=[f"thumbnails/{uid}/image.png", f"thumbnails/{uid}/template.png"],
    )
    if number % ERROR_EVERY == ERROR_EVERY - 1:
        return submitted, events.finished("template", "error", uid=uid, error="could not decode 'image'")
    finished = events.finished(
        "template", "done", uid=uid, result_data=RESULT,
        result_files=[f"results/{uid}/matches.png", f"results/{uid}/heatmap.png"],
    )
    return submitted, finished


async def index_count(kv) -> int:
    try:
        return head_decoder.decode((await kv.get(index_head_key(INDEX_ALL))).value).count
    except Exception:
        return 0


async def seed(url: str, count: int, *, window: int = 2000, wait: bool = True, timeout: float = 900.0,
               quiet: bool = False) -> dict:
    nc = await nats_layout.connect(url, "aerovision-bench-seed")
    js = nc.jetstream()
    await nats_layout.declare_event_stream(js)
    index_kv = await nats_layout.open_kv(js, names.TASK_INDEX_BUCKET)
    before = await index_count(index_kv)
    t0 = time.monotonic()
    pending: list[asyncio.Future] = []
    for i in range(count):
        for event in _events(str(uuid.uuid4()), before + i):
            pending.append(asyncio.ensure_future(nats_layout.publish_event(js, event)))
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    published_s = time.monotonic() - t0
    if not quiet:
        print(f"published {2 * count} events in {published_s:.1f} s", file=sys.stderr)
    projected_s = None
    total = before
    if wait:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            total = await index_count(index_kv)
            if total >= before + count:
                break
            await asyncio.sleep(0.25)
        projected_s = time.monotonic() - t0
        if not quiet:
            print(f"index counts {total} tasks after {projected_s:.1f} s", file=sys.stderr)
    await nc.drain()
    return {"seeded": count, "publish_s": round(published_s, 2),
            "projected_s": None if projected_s is None else round(projected_s, 2),
            "index_total": total, "complete": total >= before + count}


def quiet_logs() -> None:
    """infra.nats_layout logs a warning when a connection drains; a seeding script needs none."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--nats", required=True, help="NATS URL of the running system")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=2000, help="publishes in flight")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the projector")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    quiet_logs()
    result = asyncio.run(seed(args.nats, args.count, window=args.window, wait=not args.no_wait, timeout=args.timeout))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
