"""The ``aerovision`` command: the composition root that knows every service.

``aerovision up`` starts an embedded nats-server (unless NATS_URL is set) and every service as
its own process, restarts any that dies, and stops them all in order on Ctrl-C or SIGTERM.
``aerovision gateway|matcher|projector|notifier`` runs one service (e.g. on its own machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Awaitable, Callable

import structlog

from aerovision import events_cmd, logs, replay_cmd, runtime
from infra.process import EXIT_CONNECTION_LOST, tune_allocator

SERVICES = ("projector", "matcher", "notifier", "gateway")


def _prepare(service: str) -> None:
    """What every service process does first: its logs, and the allocator (infra/process.py)."""
    logs.configure(service)
    tune_allocator()


# Past this, a stop abandons whatever the service still waits for: its own graces (the matcher's
# 10 s for running tasks, a 5 s drain) end well before.
SHUTDOWN_GRACE = 20.0


def _run_until_signalled(service: str, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``body(stop)`` until it returns; a signal sets ``stop`` (a second one cuts it short).

    Exits 0 after a stop that was asked for, ``EXIT_CONNECTION_LOST`` when the NATS connection was
    closed for good (to be restarted), non-zero with the traceback after any other failure.
    """
    from infra import nats_layout

    _prepare(service)
    log = structlog.get_logger(service)

    async def main() -> int:
        stop, hurry = asyncio.Event(), asyncio.Event()
        work = asyncio.ensure_future(body(stop))
        signals: list[int] = []

        def on_signal(sig: int) -> None:
            signals.append(sig)
            (hurry if stop.is_set() else stop).set()  # a second one: stop at once

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await _until_first(work, stop)
        if not work.done():
            # The body winds down on ``stop``; the grace or a second signal cuts that short.
            await _until_first(work, hurry, timeout=SHUTDOWN_GRACE)
            if not work.done():
                log.warning("stop_cut_short", grace_s=SHUTDOWN_GRACE, second_signal=hurry.is_set())
                await _cancel(work)
        if work.cancelled():
            # Only a signal or a lost connection sets ``stop``.
            return 0 if signals else EXIT_CONNECTION_LOST
        try:
            work.result()
        except nats_layout.Stopped:
            log.info("stopped_before_connecting")
        except nats_layout.ConnectionLost as exc:
            log.error("exiting", reason="nats connection closed", detail=str(exc), code=EXIT_CONNECTION_LOST)
            return EXIT_CONNECTION_LOST
        return 0

    _install_uvloop()
    sys.exit(asyncio.run(main()))


async def _until_first(work: asyncio.Future, event: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until ``work`` ends or ``event`` is set (or ``timeout`` passes)."""
    setting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({work, setting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        setting.cancel()


async def _cancel(task: asyncio.Future) -> None:
    """Cancel ``task`` and wait for it to end. Again until it sticks: Python 3.11's wait_for
    (used inside nats-py) can drop a cancellation that lands as what it waits for completes."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def run_gateway(host: str | None = None, port: int | None = None, fd: int | None = None) -> None:
    from services.gateway import server
    from services.gateway.settings import GatewaySettings

    _prepare("gateway")
    settings = GatewaySettings.from_env()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        import msgspec

        settings = msgspec.structs.replace(settings, **overrides)
    sys.exit(server.run(settings, fd))


def run_matcher() -> None:
    from services.matcher.settings import MatcherSettings
    from services.matcher.worker import serve

    _run_until_signalled("matcher", lambda stop: serve(MatcherSettings.from_env(), stop))


def run_projector(rebuild: bool = False) -> None:
    from infra import nats_layout
    from services.projector.settings import ProjectorSettings
    from services.projector.worker import rebuild as drop_projection
    from services.projector.worker import serve

    settings = ProjectorSettings.from_env()

    async def body(stop: asyncio.Event) -> None:
        if rebuild:
            async with nats_layout.session(settings.nats_url, "aerovision-projector-rebuild", stop) as nc:
                await drop_projection(nc, settings)
        await serve(settings, stop)

    _run_until_signalled("projector", body)


def run_notifier() -> None:
    from services.notifier.settings import NotifierSettings
    from services.notifier.worker import serve

    _run_until_signalled("notifier", lambda stop: serve(NotifierSettings.from_env(), stop))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aerovision", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start NATS (embedded unless NATS_URL is set) and every service")
    up.add_argument("--host", default=os.environ.get("AEROVISION_HOST", "127.0.0.1"),
                    help="gateway address (default loopback; 0.0.0.0 for every interface)")
    up.add_argument("--port", type=int, default=int(os.environ.get("AEROVISION_PORT", 8888)), help="gateway port")
    up.add_argument("--data", type=Path, default=runtime.data_folder(),
                    help="data folder of the embedded NATS server")
    up.add_argument("--matchers", type=int, default=1, help="matcher replicas (each uses one process per core)")
    gw = sub.add_parser("gateway", help="run the HTTP gateway")
    gw.add_argument("--host", default=None, help="address to listen on (default AEROVISION_HOST, else 127.0.0.1)")
    gw.add_argument("--port", type=int, default=None)
    gw.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # a listening socket from `up`
    sub.add_parser("matcher", help="run one matcher replica")
    pr = sub.add_parser("projector", help="run the projector")
    pr.add_argument("--rebuild", action="store_true", help="drop the task view and replay the whole stream")
    sub.add_parser("notifier", help="run the webhook notifier")
    events_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "up":
        from aerovision.supervisor import run_all

        sys.exit(run_all(host=args.host, port=args.port, data=args.data, matchers=args.matchers))
    elif args.command == "gateway":
        run_gateway(args.host, args.port, args.fd)
    elif args.command == "matcher":
        run_matcher()
    elif args.command == "projector":
        run_projector(args.rebuild)
    elif args.command == "notifier":
        run_notifier()
    elif args.command == "events":
        sys.exit(events_cmd.run(args))
    elif args.command == "replay":
        sys.exit(replay_cmd.run(args))
