"""Where a running embedded system can be found: ``<data>/runtime.json``, written by ``aerovision
up`` while it runs, so tools on the same machine (``aerovision events``, ``aerovision replay``, the
docs' subscriber) find its NATS server without flags."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

RUNTIME_FILE = "runtime.json"
DEFAULT_DATA = ".aerovision"


class Runtime(msgspec.Struct, kw_only=True):
    nats_url: str
    gateway_url: str
    pid: int  # the supervisor's: a file whose process is gone is stale


class NotRunning(RuntimeError):
    """No NATS server to use was named or found (the message says where we looked)."""


def data_folder(given: Path | None = None) -> Path:
    """``--data``, else ``AEROVISION_DATA``, else ``.aerovision`` (as ``aerovision up`` chooses)."""
    return given if given is not None else Path(os.environ.get("AEROVISION_DATA", DEFAULT_DATA))


def announce(data: Path, nats_url: str, gateway_url: str) -> Path:
    """Write the runtime file (atomically: a reader never sees half of it)."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / RUNTIME_FILE
    partial = path.with_suffix(".tmp")
    partial.write_bytes(msgspec.json.encode(Runtime(nats_url=nats_url, gateway_url=gateway_url, pid=os.getpid())))
    partial.replace(path)
    return path


def withdraw(path: Path) -> None:
    """Remove the runtime file if it is still ours."""
    found = _read(path)
    if found is not None and found.pid == os.getpid():
        path.unlink(missing_ok=True)


def _read(path: Path) -> Runtime | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Runtime)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_nats_url(explicit: str | None = None, data: Path | None = None) -> str:
    """The NATS URL to use: ``--nats``, else ``NATS_URL``, else the running ``aerovision up``'s."""
    if explicit:
        return explicit
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"]
    folder = data_folder(data)
    found = _read(folder / RUNTIME_FILE)
    if found is None:
        raise NotRunning(f"no running AeroVision found in {folder.resolve()} (start it with `aerovision up`, "
                         f"or give --data, --nats or NATS_URL)")
    if not _alive(found.pid):
        raise NotRunning(f"{folder.resolve() / RUNTIME_FILE} names a system that is no longer running "
                         f"(pid {found.pid}); start it with `aerovision up`")
    return found.nats_url


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """``--nats`` and ``--data``: the options of a tool that finds the running system by itself."""
    parser.add_argument("--nats", metavar="URL", help="NATS server (default: NATS_URL, else the running system's)")
    parser.add_argument("--data", type=Path, default=None, help="data folder of the running system (.aerovision)")


def located_nats_url(args: argparse.Namespace, command: str) -> str | None:
    """``find_nats_url`` for a tool's ``--nats``/``--data``; None (and why, on stderr) when there is none."""
    try:
        return find_nats_url(args.nats, args.data)
    except NotRunning as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None
