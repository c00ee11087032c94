"""``aerovision replay``: rebuild the task view (and the task list, status and settings indexes)
from the first event into fresh buckets, report every difference from the live view, and with
``--switch`` make the live view the rebuilt one.

    aerovision replay            # audit: exit 0 when the live view is exactly the log's
    aerovision replay --switch   # repair: the live view becomes the rebuilt one
    aerovision replay --json     # the report as JSON

Finds the running embedded system by itself (``<data>/runtime.json``); ``--nats`` or ``NATS_URL``
name another server.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

import msgspec

from aerovision import logs, runtime

if TYPE_CHECKING:
    from services.projector.replay import ReplayReport

SHOWN = 50  # differences listed in the human report (all of them with --json)


def add_parser(sub) -> None:
    parser = sub.add_parser("replay", help="rebuild the task view from the log and compare (--switch: adopt it)",
                            description="Rebuild the task view from the first event into fresh buckets, report "
                                        "every difference from the live view; --switch adopts the rebuilt one.")
    parser.add_argument("--switch", action="store_true", help="make the live view the rebuilt one")
    parser.add_argument("--keep", action="store_true", help="keep the rebuilt buckets (<bucket>-replay) to inspect")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--batch", type=int, default=4096, help="events folded per batch")
    runtime.add_location_arguments(parser)


def _human(report: "ReplayReport") -> str:
    lines = [f"replayed {report.events} events (up to #{report.last_seq}) into {report.tasks} tasks "
             f"in {report.rebuild_s:.1f} s; compared in {report.compare_s:.1f} s"]
    if report.live_behind:
        lines.append("the live projector had not reached that event: differences may only be lag")
    if not report.differences:
        lines.append("no differences: the live view is exactly what the log says")
    else:
        lines.append(f"{len(report.differences)} differences:")
        for diff in report.differences[:SHOWN]:
            fields = f" ({', '.join(diff.fields)})" if diff.fields else ""
            lines.append(f"  {diff.bucket} {diff.key}: {diff.what.replace('_', ' ')}{fields}")
        if len(report.differences) > SHOWN:
            lines.append(f"  ... and {len(report.differences) - SHOWN} more (--json lists them all)")
    if report.switch is not None:
        s = report.switch
        lines.append(f"switch failed: {s.error}" if s.error else
                     f"switched by the {s.by}: the live view holds the log up to #{s.at_seq} "
                     f"({s.written} keys written, {s.deleted} deleted, {s.caught_up} events caught up)")
    return "\n".join(lines)


async def _run(url: str, args: argparse.Namespace) -> "ReplayReport":
    # Imported here: every `aerovision <service>` start reads this module, and needs none of it.
    from infra import nats_layout
    from services.projector.replay import replay
    from services.projector.settings import ProjectorSettings
    from services.projector.switch import drop_candidates

    settings = msgspec.structs.replace(ProjectorSettings.from_env(), nats_url=url, batch=args.batch)
    nc = await nats_layout.connect(url, "aerovision-replay", deadline=10.0)
    try:
        report = await replay(nc, settings, do_switch=args.switch)
        if not args.keep:
            await drop_candidates(nc.jetstream())
        return report
    finally:
        await nc.close()


def run(args: argparse.Namespace) -> int:
    logs.configure("replay")
    url = runtime.located_nats_url(args, "aerovision replay")
    if url is None:
        return 2
    report = asyncio.run(_run(url, args))
    print(msgspec.json.encode(report).decode() if args.json else _human(report))
    if report.switch is not None:
        return 0 if report.switch.error is None else 1
    return 0 if not report.differences else 1
