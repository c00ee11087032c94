"""``aerovision up``: one process tree running NATS and every service, restarted if they die.

Before starting anything it takes the data folder and the gateway's port (aerovision/claims.py):
if either is taken it says so in one line and exits non-zero. Every child dies with it, however
it ends (kill -9 included). A service that exits is started again after a backoff that resets
once it has run a while; a gateway that answered /healthz and then stops answering for
``AEROVISION_UNHEALTHY_RESTART_S`` is restarted (aerovision/policy.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import structlog

from aerovision import claims, logs, natsserver, policy, runtime
from infra.process import tied_to_this_process

log = structlog.get_logger("supervisor")

HEALTH_PROBE_INTERVAL = 1.0
# How long a stop waits for each kind of child before SIGKILL: the gateway's own shutdown grace
# (10 s) plus its drain; the workers' SHUTDOWN_GRACE (20 s, aerovision/cli.py) plus margin.
GATEWAY_STOP_GRACE = 15.0
WORKER_STOP_GRACE = 25.0
# An unhealthy gateway asked to stop is killed if it has not exited after this long.
UNHEALTHY_KILL_GRACE = 10.0
# No proxy for the health check: it asks our own gateway on this machine.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SupervisorSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = ""  # empty: start an embedded nats-server
    nats_port: int = 0  # the embedded server's port; 0: a free one
    unhealthy_restart: float = policy.UNHEALTHY_RESTART

    @classmethod
    def from_env(cls) -> "SupervisorSettings":
        env, d = os.environ, cls()
        return cls(
            nats_url=env.get("NATS_URL", d.nats_url),
            nats_port=int(env.get("AEROVISION_NATS_PORT", d.nats_port)),
            unhealthy_restart=float(env.get("AEROVISION_UNHEALTHY_RESTART_S", d.unhealthy_restart)),
        )


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], keep_fds: tuple[int, ...] = ()) -> None:
        self.name, self.argv, self.env, self.keep_fds = name, argv, env, keep_fds
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0
        self.started_at = 0.0
        self.last_healthy: float | None = None
        self.kill_at: float | None = None

    def start(self) -> None:
        # Own session: Ctrl-C reaches the supervisor only, which stops everyone in order.
        # Tied to the supervisor: a killed supervisor leaves no stray services.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True, pass_fds=self.keep_fds,
                                     preexec_fn=tied_to_this_process())
        self.started_at, self.last_healthy, self.kill_at = time.monotonic(), None, None
        log.info("service_started", child=self.name, pid=self.proc.pid)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self, grace: float) -> None:
        """SIGTERM, and SIGCONT as systemd sends: a stopped process could not act on it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)
            self.kill_at = time.monotonic() + grace

    def kill_if_overdue(self, now: float) -> None:
        if self.kill_at is not None and now >= self.kill_at and self.proc is not None and self.proc.poll() is None:
            log.warning("service_killed", child=self.name, pid=self.proc.pid)
            self.proc.kill()


def _healthy(url: str) -> bool:
    try:
        with _direct.open(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(children: list[Child], timeout: float) -> None:
    for child in children:
        child.terminate(timeout)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("service_killed", child=child.name, pid=child.proc.pid)
            child.proc.kill()
            child.proc.wait()


def _start_nats(data: Path, port: int, lock: int) -> subprocess.Popen:
    # The server holds the data folder's lock too: the folder is free only once it has stopped.
    return natsserver.start(data / "jetstream", port, tied=True, keep_fds=(lock,))


def run_all(host: str, port: int, data: Path, matchers: int = 1) -> int:
    logs.configure("supervisor")
    settings = SupervisorSettings.from_env()
    data = data.resolve()
    try:
        lock = claims.claim_data_folder(data)
        listener = claims.claim_port(host, port)
    except claims.Unavailable as exc:
        log.error("cannot_start", reason=str(exc))
        return 1
    stop_requested: list[int] = []

    def on_signal(signum, _frame) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    nats_proc = None
    url = settings.nats_url
    nats_port = 0
    if not url:
        nats_port = settings.nats_port or natsserver.free_port()
        try:
            nats_proc = _start_nats(data, nats_port, lock)
        except (natsserver.NatsServerMissing, RuntimeError, TimeoutError) as exc:
            log.error("nats_server_failed", error=str(exc))
            return 1
        url = f"nats://127.0.0.1:{nats_port}"
        log.info("nats_server_started", url=url, store=str(data / "jetstream"), pid=nats_proc.pid)
    bound_port = listener.getsockname()[1]
    # Subscribers use this URL; tools on this machine find it in the runtime file.
    print(f"NATS (for event subscribers): {url}", flush=True)
    log.info("nats_url", url=url, subjects="aerovision.events.>")
    health = claims.health_url(listener)
    # Where tools on this machine reach the gateway: where the supervisor asks it whether it is healthy.
    runtime_file = runtime.announce(data, url, health.removesuffix("/healthz"))
    env = {**os.environ, "NATS_URL": url, "AEROVISION_HOST": host, "AEROVISION_PORT": str(bound_port)}
    # Every service on this machine shares one local copy of stored files (infra/spool.py).
    env.setdefault("AEROVISION_SPOOL_DIR", str(data / "spool"))
    python = [sys.executable, "-m", "aerovision"]
    children = [Child("projector", [*python, "projector"], env), Child("notifier", [*python, "notifier"], env)]
    children += [Child(f"matcher-{i + 1}", [*python, "matcher"], env) for i in range(matchers)]
    gateway = Child("gateway", [*python, "gateway", "--fd", str(listener.fileno())], env,
                    keep_fds=(listener.fileno(),))
    children.append(gateway)
    for child in children:
        child.start()

    ready = False
    next_probe = 0.0
    while not stop_requested:
        time.sleep(0.2)
        now = time.monotonic()
        if nats_proc is not None and nats_proc.poll() is not None:
            log.error("nats_server_exited", code=nats_proc.returncode)
            try:
                nats_proc = _start_nats(data, nats_port, lock)
                log.info("nats_server_restarted", pid=nats_proc.pid)
            except (RuntimeError, TimeoutError) as exc:
                log.error("nats_server_failed", error=str(exc))
        for child in children:
            child.kill_if_overdue(now)
            code = child.exited()
            if code is None or stop_requested:
                continue
            if child.next_start == 0.0:
                ran_for = now - child.started_at
                child.restarts, delay = policy.restart_plan(child.restarts, ran_for)
                child.next_start = now + delay
                log.error("service_exited", child=child.name, code=code, ran_s=round(ran_for, 1),
                          restart_in=round(delay, 1))
            elif now >= child.next_start:
                child.next_start = 0.0
                child.start()
        if gateway.exited() is None and now >= next_probe and not stop_requested:
            next_probe = now + HEALTH_PROBE_INTERVAL
            if _healthy(health):
                if gateway.last_healthy is None:  # from here on, it is watched (policy.unhealthy_too_long)
                    log.info("service_healthy", child="gateway", pid=gateway.proc.pid)
                gateway.last_healthy = time.monotonic()
                if not ready:
                    ready = True
                    log.info("aerovision_ready", url=health.removesuffix("/healthz"), data=str(data))
            elif gateway.kill_at is None and policy.unhealthy_too_long(gateway.last_healthy, now,
                                                                         settings.unhealthy_restart):
                log.error("service_unhealthy", child="gateway", pid=gateway.proc.pid,
                          unhealthy_s=round(now - gateway.last_healthy, 1), action="restart")
                gateway.terminate(UNHEALTHY_KILL_GRACE)

    log.info("stopping", signal=signal.Signals(stop_requested[0]).name)
    _stop([gateway], timeout=GATEWAY_STOP_GRACE)
    _stop([c for c in children if c is not gateway], timeout=WORKER_STOP_GRACE)
    listener.close()
    if nats_proc is not None:
        nats_proc.send_signal(signal.SIGTERM)
        try:
            nats_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            nats_proc.kill()
    runtime.withdraw(runtime_file)
    os.close(lock)
    log.info("stopped")
    return 0
