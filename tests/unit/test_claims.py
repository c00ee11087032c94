"""What ``aerovision up`` takes before starting: a data folder (flock) and a port (a bound socket)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from aerovision import claims
from infra.nats_layout import _without_credentials


def test_a_data_folder_is_taken_once_and_free_again_when_let_go(tmp_path):
    fd = claims.claim_data_folder(tmp_path / "data")
    try:
        with pytest.raises(claims.Unavailable, match=rf"in use by another aerovision up \(pid {os.getpid()}\)"):
            claims.claim_data_folder(tmp_path / "data")
    finally:
        os.close(fd)
    os.close(claims.claim_data_folder(tmp_path / "data"))


def test_a_busy_port_is_refused_naming_who_holds_it():
    first = claims.claim_port("127.0.0.1", 0)
    port = first.getsockname()[1]
    try:
        with pytest.raises(claims.Unavailable, match=rf"port {port} on 127.0.0.1 is in use") as refused:
            claims.claim_port("127.0.0.1", port)
        if sys.platform.startswith("linux"):
            assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        first.close()


def test_the_claimed_port_accepts_and_is_inheritable():
    sock = claims.claim_port("127.0.0.1", 0)
    try:
        assert sock.get_inheritable()
        with socket.create_connection(sock.getsockname()[:2], timeout=2):
            pass  # queued in the backlog until a gateway accepts
    finally:
        sock.close()


@pytest.mark.parametrize("bound, url", [
    (("127.0.0.1", 8888), "http://127.0.0.1:8888/healthz"),
    (("0.0.0.0", 8888), "http://127.0.0.1:8888/healthz"),
    (("::", 8888), "http://[::1]:8888/healthz"),
])
def test_the_health_check_asks_the_bound_address(bound, url):
    class Bound:
        def getsockname(self):
            return bound

    assert claims.health_url(Bound()) == url  # type: ignore[arg-type]


def test_nats_addresses_are_logged_without_credentials():
    assert _without_credentials("nats://u:secret@a:4222, nats://b:4223") == "nats://a:4222,nats://b:4223"
    assert _without_credentials("tls://token@c") == "tls://c"
