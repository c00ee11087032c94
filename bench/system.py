"""The system under test, started as users start it.

``UpSystem``: ``python -m aerovision up --port P --data DIR`` (embedded nats-server and every
service, one process each), on a free port and a temporary data folder, with a clean
environment (no AEROVISION_* or NATS_URL from the caller; the matcher uses one worker per core; the log
level is the shipped default, INFO, unless ``--log-level`` says otherwise).
``ListSystem``: nats-server + projector + gateway only, for the task-list figure, whose seeding
publishes 100k TaskSubmitted events a matcher would otherwise try to run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from aerovision.natsserver import free_port
from bench import procs
from tests.harness import Api, wait_for

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEROVISION_") and k != "NATS_URL"}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def healthy(base: str) -> bool:
    return Api(base).healthy()


def service_exits(log: Path) -> list[dict]:
    out = []
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return out
    last_error = ""
    for line in lines:
        if line.startswith(("  File", "Traceback")) or not line.startswith("{"):
            if line.strip() and not line.startswith(" "):
                last_error = line.strip()[:300]
            continue
        if '"service_exited"' in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            out.append({"service": event.get("child"), "code": event.get("code"), "at": event.get("timestamp"),
                        "last_error": last_error})
    return out


class UpSystem:
    """``aerovision up`` in its own process group; ``services()`` maps role -> pid."""

    def __init__(self, workdir: Path, log_level: str | None = None, source: Path | None = None) -> None:
        self.workdir = workdir
        self.source = source  # another checkout of AeroVision to run (bench/ab.py), else this one
        self.data = workdir / "data"
        self.port = free_port()
        self.nats_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.log = workdir / "up.log"
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None
        self._services: dict[str, int] = {}

    def start(self, timeout: float = 90.0) -> "UpSystem":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = clean_env(AEROVISION_NATS_PORT=str(self.nats_port), AEROVISION_LOG_LEVEL=self.log_level,
                        PYTHONPATH=str(self.source) if self.source else None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aerovision", "up", "--port", str(self.port), "--data", str(self.data)],
                env=env, stdout=out, stderr=out, cwd=self.source or ROOT, start_new_session=True,
            )
        try:
            wait_for(lambda: self.proc.poll() is not None or healthy(self.base), timeout, what="aerovision up")
            if self.proc.poll() is not None:
                raise RuntimeError(f"aerovision up exited with {self.proc.returncode}")
            wait_for(lambda: len(self.services(refresh=True)) == len(procs.ROLES), 30, what="every service process")
            # The matcher's pool workers are spawned at its start: wait until they exist.
            wait_for(lambda: len(procs.descendants(self._services["matcher"])) >= (os.cpu_count() or 1), 30,
                     what="the matcher's workers")
        except Exception:
            self.stop()
            raise RuntimeError(f"aerovision up did not start; log tail:\n{self.log_tail()}")
        return self

    def services(self, refresh: bool = False) -> dict[str, int]:
        if refresh or not self._services:
            assert self.proc is not None
            self._services = procs.find_services(self.proc.pid)
        return dict(self._services)

    def exits(self) -> list[dict]:
        """Services that exited (crashed) while the system ran, from the supervisor's log."""
        return service_exits(self.log)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)  # the supervisor stops everyone in order
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in self._services.values():  # each service has its own session
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            return self.proc.wait(timeout=10)


class ListSystem:
    """nats-server, projector and gateway, each as ``aerovision <service>`` would run it."""

    def __init__(self, workdir: Path, log_level: str | None = None) -> None:
        self.workdir = workdir
        self.log_level = log_level
        self.port = free_port()
        self.nats_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.log = workdir / "services.log"
        self.nats: subprocess.Popen | None = None
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, timeout: float = 60.0) -> "ListSystem":
        from aerovision import natsserver

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nats = natsserver.start(self.workdir / "data" / "jetstream", self.nats_port, new_session=True)
        env = clean_env(NATS_URL=self.nats_url, AEROVISION_PORT=str(self.port), AEROVISION_LOG_LEVEL=self.log_level)
        for role, args in (("projector", ["projector"]), ("gateway", ["gateway", "--port", str(self.port)])):
            with open(self.log, "ab") as out:
                self.children[role] = subprocess.Popen(
                    [sys.executable, "-m", "aerovision", *args], env=env, stdout=out, stderr=out,
                    cwd=ROOT, start_new_session=True,
                )
        try:
            wait_for(lambda: healthy(self.base), timeout, what="gateway")
        except Exception:
            self.stop()
            raise
        return self

    def services(self, refresh: bool = False) -> dict[str, int]:
        out = {role: p.pid for role, p in self.children.items() if p.poll() is None}
        if self.nats is not None:
            out["nats-server"] = self.nats.pid
        return out

    def restarted(self) -> list[str]:
        return [role for role, p in self.children.items() if p.poll() is not None]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (this throwaway system's data is not kept)."""
        for p in self.children.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.children.values():
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.nats is not None and self.nats.poll() is None:
            self.nats.terminate()
            try:
                self.nats.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.nats.kill()
                self.nats.wait()
