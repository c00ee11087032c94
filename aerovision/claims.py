"""What ``aerovision up`` takes before it starts anything: its data folder and its gateway port.

**The data folder** is locked (``flock`` on ``<data>/aerovision.lock``). The embedded nats-server
inherits the lock, so the folder stays taken until it too has stopped: a second ``up`` can never
start a second nats-server on the same store, even while the first one is still shutting down.
The kernel drops the lock with the last process holding it, however it ends: no stale locks.

**The port** is bound by the supervisor and handed to each gateway it starts (``--fd``). A busy
port is found before anything starts; the health check can only reach our own gateway (nobody
else can answer on our socket); and a restarting gateway loses no connection: they wait in the
socket's backlog.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "aerovision.lock"
BACKLOG = 2048  # uvicorn's default


class Unavailable(Exception):
    """Something ``up`` needs is taken (or unusable); the message says what, and by whom."""


def claim_data_folder(data: Path) -> int:
    """Lock ``data`` for this process (and the children it passes the returned fd to)."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise Unavailable(f"the data folder {data} is in use by another aerovision up (pid {owner}) or the "
                   f"nats-server it started; stop it first, or choose another folder with --data") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def claim_port(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, inheritable by the gateway."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except OSError as exc:
        raise Unavailable(f"cannot listen on {host}:{port}: {exc}; check --host") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT: a busy port must fail
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        holder = listener_of(port)
        by = f" by pid {holder[0]} ({holder[1]})" if holder else ""
        raise Unavailable(f"port {port} on {host} is in use{by}; stop it, or choose another port with --port") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def health_url(sock: socket.socket) -> str:
    """Where the supervisor asks the gateway listening on ``sock`` whether it is healthy."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def listener_of(port: int) -> tuple[int, str] | None:
    """The pid and command line of the process listening on TCP ``port``, if Linux's /proc says
    (best effort: another user's processes are not visible)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return int(proc.name), cmdline[:120]
        except OSError:
            continue
    return None
