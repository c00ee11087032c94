"""``aerovision events``: print the event log as JSON lines (one event per line, as stored).

    aerovision events                           # everything so far, then exit
    aerovision events --follow --type finished  # every finished task, as it happens
    aerovision events --task <uid>              # one task's history
    aerovision events --since 2h --type settings.changed   # when defaults changed today

Finds the running embedded system by itself (``<data>/runtime.json``); ``--nats`` or ``NATS_URL``
name another server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
from typing import IO

from aerovision import logs, runtime
from aerovision.since import BadTime, parse_since

# nats-py and the event contracts are imported where they are used: every `aerovision <service>`
# start reads this module, and needs none of them.


def add_parser(sub) -> None:
    parser = sub.add_parser("events", help="print events as JSON lines (finds the running system by itself)",
                            description="Print the event log as JSON lines, one event per line, as stored.")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    parser.add_argument("--task", metavar="UID", help="only this task's events")
    parser.add_argument("--type", metavar="T", help="only events of this type (task.finished, or its kind: finished)")
    parser.add_argument("--since", metavar="TIME", help="from this time on (2025-06-01T12:00:00Z, or 15m, 2h, 1d ago)")
    runtime.add_location_arguments(parser)


async def print_events(url: str, subject: str, *, follow: bool, since: dt.datetime | None, out: IO[bytes],
                       stop: asyncio.Event | None = None) -> int:
    """Write each matching event as a line to ``out`` (until ``stop`` when following); how many."""
    from infra import nats_layout
    from infra.tail import EventTail

    stop = stop or asyncio.Event()
    nc = await nats_layout.connect(url, "aerovision-events", deadline=10.0)
    written = 0
    try:
        async with EventTail(nc.jetstream(), subject, start_time=since) as tail:
            done = not follow and tail.pending_at_open == 0
            while not done and not stop.is_set():
                for msg in await tail.batch(timeout=1.0):
                    out.write(msg.data + b"\n")
                    written += 1
                    done = not follow and msg.metadata.num_pending == 0
                out.flush()
    finally:
        await nc.close()
    return written


def run(args: argparse.Namespace) -> int:
    from contracts.filters import BadFilter, subject_filter

    logs.configure("events")  # logs go to stderr: stdout is the events'
    try:
        subject = subject_filter(args.task, args.type)
        since = parse_since(args.since, dt.datetime.now(dt.timezone.utc)) if args.since else None
    except (BadFilter, BadTime) as exc:
        print(f"aerovision events: {exc}", file=sys.stderr)
        return 2
    url = runtime.located_nats_url(args, "aerovision events")
    if url is None:
        return 2

    async def main() -> None:
        # Ctrl-C ends the loop, so the tail deletes its consumer on the way out.
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await print_events(url, subject, follow=args.follow, since=since, out=sys.stdout.buffer, stop=stop)

    try:
        asyncio.run(main())
    except BrokenPipeError:  # piped into head: the reader has had enough
        sys.stderr.close()
    return 0
