"""Starting and stopping as a user (or a fault) does it: ``aerovision up`` takes its data folder and
port or refuses in one line, binds loopback, dies whole; services say which NATS they cannot
reach and stop on SIGTERM; a closed NATS connection or a wedged gateway ends in a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from aerovision import claims, natsserver
from tests.harness import ROOT, Api, Service, free_port, holds_for, service_env, start_up, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def events(log: Path) -> list[dict]:
    """The JSON log lines of a service (tracebacks and other text skipped)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def listening_on(port: int) -> set[str]:
    """The local addresses (hex, as /proc shows them) with a TCP socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


LOOPBACK_V4 = "0100007F"  # 127.0.0.1 in /proc/net/tcp


def run_aerovision(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerovision", *args], env=env or service_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_up_takes_folder_and_port_binds_loopback_and_dies_whole(tmp_path):
    data, port = tmp_path / "data", free_port()
    up = start_up(data, port, tmp_path / "up.log")
    try:
        started = events(tmp_path / "up.log")
        nats_pid = next(e["pid"] for e in started if e["event"] == "nats_server_started")
        services = [e["pid"] for e in started if e["event"] == "service_started"]
        assert listening_on(port) == {LOOPBACK_V4}, "the gateway listens on loopback only by default"

        same_folder = run_aerovision("up", "--port", str(free_port()), "--data", str(data))
        assert same_folder.returncode != 0
        [line] = same_folder.stderr.splitlines()
        assert "in use" in line and str(data) in line and "--data" in line

        busy_port = run_aerovision("up", "--port", str(port), "--data", str(tmp_path / "other"))
        assert busy_port.returncode != 0
        [line] = busy_port.stderr.splitlines()
        assert f"port {port}" in line and "--port" in line and "aerovision_ready" not in line
        assert not (tmp_path / "other" / "jetstream").exists(), "nothing started"
        assert Api(f"http://127.0.0.1:{port}").healthy(), "the first instance is unharmed"
    finally:
        os.kill(up.proc.pid, signal.SIGKILL)  # no goodbye: the kernel tells the children
        up.proc.wait(timeout=10)
    wait_for(lambda: not alive(nats_pid), timeout=15, what="the embedded nats-server to die with up")
    wait_for(lambda: not any(alive(pid) for pid in services), timeout=25, what="the services to die with up")
    # The data folder's lock went with its last holder: the folder is free again.
    os.close(claims.claim_data_folder(data))


def test_services_without_nats_say_where_and_stop_on_sigterm(tmp_path):
    nats_port = free_port()  # nobody listens here
    env = service_env(NATS_URL=f"nats://someone:secret@127.0.0.1:{nats_port}", AEROVISION_MATCHER_WORKERS="1")
    commands = {"gateway": ["gateway", "--port", str(free_port())], "matcher": ["matcher"],
                "projector": ["projector"], "notifier": ["notifier"]}
    services = {name: Service(args, env, tmp_path / f"{name}.log").start() for name, args in commands.items()}

    def unreachable(name: str) -> list[dict]:
        return [e for e in events(tmp_path / f"{name}.log") if e["event"] == "nats_unreachable"]

    try:
        wait_for(lambda: all(unreachable(name) for name in services), timeout=60, what="every service to log it")
        for name in services:
            [said] = unreachable(name)
            assert said["url"] == f"nats://127.0.0.1:{nats_port}", "the address, without its credentials"
            assert "NATS_URL" in said["hint"]
        # Retries go on every 0.5 s; the log says it again only at a calm interval.
        holds_for(lambda: all(len(unreachable(name)) == 1 for name in services), 2.0, "logged at every retry")
        asked = time.monotonic()
        for service in services.values():
            service.signal(signal.SIGTERM)
        codes = {name: service.proc.wait(timeout=15) for name, service in services.items()}
        assert codes == dict.fromkeys(services, 0)
        assert time.monotonic() - asked < 5, "SIGTERM while connecting stops within seconds"
    finally:
        for service in services.values():
            service.stop()


class ConfiguredNats:
    """A nats-server run from a config file, so that a test can change its settings live."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.conf, self.log = root / "nats.conf", root / "nats.log"
        self.base = f'listen: "127.0.0.1:{self.port}"\njetstream {{ store_dir: "{root / "js"}" }}\n'
        self.conf.write_text(self.base)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([natsserver.find_binary(), "-c", str(self.conf)], stdout=out, stderr=out)
        natsserver.wait_ready(self.port, self.proc, log_file=self.log)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def reload(self, extra: str, expect: str) -> None:
        self.conf.write_text(self.base + extra)
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: expect in self.log.read_text(), timeout=10, what=f"nats-server to log {expect!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def up_on_configured_nats(tmp_path_factory):
    """``aerovision up`` on a nats-server the test can reconfigure, quick to call a gateway unhealthy."""
    root = tmp_path_factory.mktemp("up-restarts")
    nats = ConfiguredNats(root)
    port = free_port()
    up = start_up(root / "data", port, root / "up.log", NATS_URL=nats.url, AEROVISION_MATCHER_WORKERS="1",
                  AEROVISION_UNHEALTHY_RESTART_S="3")
    yield Api(f"http://127.0.0.1:{port}"), root / "up.log", nats
    assert up.stop() == 0
    nats.stop()


def _started(log: Path, child: str) -> list[int]:
    return [e["pid"] for e in events(log) if e["event"] == "service_started" and e["child"] == child]


async def test_services_whose_connection_is_closed_exit_and_are_restarted(up_on_configured_nats):
    import nats as nats_client

    api, log, nats = up_on_configured_nats
    first_gateway = _started(log, "gateway")[-1]
    witness = await nats_client.connect(nats.url)  # connected before: its short commands stay allowed
    try:
        # From now on, any command longer than 64 bytes makes the server close that connection
        # for good, as a subject over 4096 bytes does by default ("maximum control line exceeded").
        nats.reload("max_control_line: 64\n", expect="max_control_line = 64")
        api.http.get(f"{api.base}/api/v1/tasks/{uuid.uuid4()}", timeout=30)  # the gateway reads NATS
        await witness.publish("aerovision.events.x", b"{}")  # the projector acks what it gets
        await witness.flush()
        # The matcher and the notifier fetch every second anyway.

        def exits() -> dict[str, int]:
            return {e["child"]: e["code"] for e in events(log) if e["event"] == "service_exited"}

        everyone = {"gateway", "matcher-1", "projector", "notifier"}
        wait_for(lambda: everyone <= exits().keys(), timeout=30, what="every service to exit")
        assert {child: exits()[child] for child in everyone} == dict.fromkeys(everyone, 75)
    finally:
        nats.reload("", expect="max_control_line = 4096")
        await witness.close()
    wait_for(api.healthy, timeout=60, what="the restarted gateway to serve")
    assert _started(log, "gateway")[-1] != first_gateway


def test_a_gateway_that_stops_answering_is_restarted(up_on_configured_nats):
    api, log, _ = up_on_configured_nats
    wedged = _started(log, "gateway")[-1]
    # Watched once the supervisor has seen it healthy (one still starting is left alone).
    wait_for(lambda: any(e["event"] == "service_healthy" and e["pid"] == wedged for e in events(log)),
             timeout=60, what="the supervisor to see the gateway healthy")
    os.kill(wedged, signal.SIGSTOP)  # alive, holding its socket, answering nothing
    try:
        wait_for(lambda: _started(log, "gateway")[-1] != wedged, timeout=30, what="a new gateway")
        unhealthy = [e for e in events(log) if e["event"] == "service_unhealthy"]
        assert unhealthy and unhealthy[-1]["pid"] == wedged
        wait_for(api.healthy, timeout=60, what="the new gateway to serve")
        wait_for(lambda: not alive(wedged), timeout=15, what="the wedged gateway to be gone")
    finally:
        if alive(wedged):
            os.kill(wedged, signal.SIGKILL)
