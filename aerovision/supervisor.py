"""``aerovision up``: one process tree running NATS and every service, restarted if they die."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import structlog

from aerovision import logs, natsserver, runtime
from infra.process import die_with_parent  # SIGTERM: a killed supervisor leaves no stray services

log = structlog.get_logger("supervisor")


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0

    def start(self) -> None:
        # Own session: Ctrl-C reaches the supervisor only, which stops everyone in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True, preexec_fn=die_with_parent)
        log.info("service_started", child=self.name, pid=self.proc.pid)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(children: list[Child], timeout: float) -> None:
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("service_killed", child=child.name)
            child.proc.kill()
            child.proc.wait()


def run_all(port: int, data: Path, matchers: int = 1) -> int:
    logs.configure("supervisor")
    data = data.resolve()
    stop_requested: list[int] = []

    def on_signal(signum, _frame) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    nats_proc = None
    url = os.environ.get("NATS_URL")
    nats_port = 0
    if not url:
        nats_port = int(os.environ.get("AEROVISION_NATS_PORT", 0)) or natsserver.free_port()
        try:
            nats_proc = natsserver.start(data / "jetstream", nats_port)
        except (natsserver.NatsServerMissing, RuntimeError, TimeoutError) as exc:
            log.error("nats_server_failed", error=str(exc))
            return 1
        url = f"nats://127.0.0.1:{nats_port}"
        log.info("nats_server_started", url=url, store=str(data / "jetstream"))
    # Subscribers use this URL; tools on this machine find it in the runtime file.
    print(f"NATS (for event subscribers): {url}", flush=True)
    log.info("nats_url", url=url, subjects="aerovision.events.>")
    runtime_file = runtime.announce(data, url, f"http://127.0.0.1:{port}")
    env = {**os.environ, "NATS_URL": url, "AEROVISION_PORT": str(port)}
    # Every service on this machine shares one local copy of stored files (infra/spool.py).
    env.setdefault("AEROVISION_SPOOL_DIR", str(data / "spool"))
    python = [sys.executable, "-m", "aerovision"]
    children = [Child("projector", [*python, "projector"], env), Child("notifier", [*python, "notifier"], env)]
    children += [Child(f"matcher-{i + 1}", [*python, "matcher"], env) for i in range(matchers)]
    gateway = Child("gateway", [*python, "gateway", "--port", str(port)], env)
    children.append(gateway)
    for child in children:
        child.start()

    ready = False
    while not stop_requested:
        time.sleep(0.2)
        now = time.monotonic()
        if nats_proc is not None and nats_proc.poll() is not None:
            log.error("nats_server_exited", code=nats_proc.returncode)
            try:
                nats_proc = natsserver.start(data / "jetstream", nats_port)
                log.info("nats_server_restarted")
            except (RuntimeError, TimeoutError) as exc:
                log.error("nats_server_failed", error=str(exc))
        for child in children:
            code = child.exited()
            if code is None or stop_requested:
                continue
            if child.next_start == 0.0:
                child.restarts += 1
                child.next_start = now + min(10.0, 0.5 * 2 ** min(child.restarts, 5))
                log.error("service_exited", child=child.name, code=code, restart_in=round(child.next_start - now, 1))
            elif now >= child.next_start:
                child.next_start = 0.0
                child.start()
        if not ready and _healthy(port):
            ready = True
            log.info("aerovision_ready", url=f"http://127.0.0.1:{port}", data=str(data))

    log.info("stopping", signal=signal.Signals(stop_requested[0]).name)
    _stop([gateway], timeout=15)
    _stop([c for c in children if c is not gateway], timeout=20)
    if nats_proc is not None:
        nats_proc.send_signal(signal.SIGTERM)
        try:
            nats_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            nats_proc.kill()
    runtime.withdraw(runtime_file)
    log.info("stopped")
    return 0
