"""Follow AeroVision's finished tasks with nothing but nats-py (no AeroVision code needed).

    pip install nats-py
    python subscriber.py                       # finished tasks from now on
    python subscriber.py --from-start          # every finished task in the log, then new ones
    python subscriber.py --nats nats://host:4222 --name my-app

Prints one JSON line per finished task. It reads the NATS URL from --nats, else NATS_URL, else
the runtime file of a running `aerovision up` (./.aerovision/runtime.json), else localhost.

Its consumer is durable (named by --name): stop it and start it again, and it goes on after the
last task it acknowledged, missing none. Remove it when you are done with it:
`nats consumer rm AEROVISION_EVENTS <name>` (or `js.delete_consumer` from Python).
"""

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "AEROVISION_EVENTS"
FINISHED = "aerovision.events.finished.>"  # aerovision.events.<kind>.<tool>.<uid>
KNOWN_VERSION = 1  # the task.finished schema_version this program understands


def nats_url(given):
    if given:
        return given
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"]
    runtime = Path(os.environ.get("AEROVISION_DATA", ".aerovision")) / "runtime.json"
    if runtime.exists():
        return json.loads(runtime.read_text())["nats_url"]
    return "nats://127.0.0.1:4222"


async def follow(url, name, from_start, count, stop):
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=name,
        filter_subject=FINISHED,
        deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        max_deliver=5,
    )
    try:
        await js.add_consumer(STREAM, config=config)
    except nats.js.errors.BadRequestError:
        pass  # it exists (started with other options before): it goes on where it stopped
    sub = await js.pull_subscribe_bind(durable=name, stream=STREAM)
    printed = 0
    try:
        while not stop.is_set() and (count is None or printed < count):
            try:
                msgs = await sub.fetch(10, timeout=2)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                event = json.loads(msg.data)
                # Skip what this program does not know (a newer type or version); never stop on it.
                if event.get("type") == "task.finished" and event.get("schema_version") == KNOWN_VERSION:
                    print(json.dumps({
                        "uid": event["uid"],
                        "tool": event["tool"],
                        "status": event["status"],
                        "error": event.get("error"),
                        "result_files": event.get("result_files", []),
                        "finished_at": event["occurred_at"],
                        "cloudevent_type": (msg.headers or {}).get("ce-type"),
                    }), flush=True)
                    printed += 1
                await msg.ack()
    finally:
        await sub.unsubscribe()
        await nc.close()


def main():
    parser = argparse.ArgumentParser(description="Print AeroVision's finished tasks as JSON lines.")
    parser.add_argument("--nats", help="NATS URL (default: NATS_URL, then the running aerovision up's)")
    parser.add_argument("--name", default="finished-tasks-printer", help="durable consumer name")
    parser.add_argument("--from-start", action="store_true", help="begin with the oldest finished task")
    parser.add_argument("--count", type=int, help="stop after this many tasks")
    args = parser.parse_args()

    async def run():
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await follow(nats_url(args.nats), args.name, args.from_start, args.count, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
