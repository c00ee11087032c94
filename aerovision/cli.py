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

from aerovision import events_cmd, logs, replay_cmd
from infra.process import tune_allocator

SERVICES = ("projector", "matcher", "notifier", "gateway")


def _prepare(service: str) -> None:
    """What every service process does first: its logs, and the allocator (infra/process.py)."""
    logs.configure(service)
    tune_allocator()


def _run_until_signalled(service: str, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    _prepare(service)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await body(stop)

    _install_uvloop()
    asyncio.run(main())


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def run_gateway(port: int | None = None) -> None:
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    _prepare("gateway")
    settings = GatewaySettings.from_env()
    if port is not None:
        import msgspec

        settings = msgspec.structs.replace(settings, port=port)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
        loop="uvloop" if _has("uvloop") else "asyncio", http="httptools" if _has("httptools") else "h11",
        timeout_graceful_shutdown=10, lifespan="on",
    )
    uvicorn.Server(config).run()


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


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
            nc = await nats_layout.connect(settings.nats_url, "aerovision-projector-rebuild")
            await drop_projection(nc, settings)
            await nc.drain()
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
    up.add_argument("--port", type=int, default=int(os.environ.get("AEROVISION_PORT", 8888)), help="gateway port")
    up.add_argument("--data", type=Path, default=Path(os.environ.get("AEROVISION_DATA", ".aerovision")),
                    help="data folder of the embedded NATS server")
    up.add_argument("--matchers", type=int, default=1, help="matcher replicas (each uses one process per core)")
    gw = sub.add_parser("gateway", help="run the HTTP gateway")
    gw.add_argument("--port", type=int, default=None)
    sub.add_parser("matcher", help="run one matcher replica")
    pr = sub.add_parser("projector", help="run the projector")
    pr.add_argument("--rebuild", action="store_true", help="drop the task view and replay the whole stream")
    sub.add_parser("notifier", help="run the webhook notifier")
    events_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "up":
        from aerovision.supervisor import run_all

        sys.exit(run_all(port=args.port, data=args.data, matchers=args.matchers))
    elif args.command == "gateway":
        run_gateway(args.port)
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
