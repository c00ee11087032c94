"""Slow clients cannot hold the gateway: unfinished headers and trickled bodies are cut off with
408 while everyone else is served; connections beyond the cap get 503 at once."""

from __future__ import annotations

import select
import selectors
import socket
import time

import pytest
import requests

from tests.harness import Api, Service, free_port, service_env, wait_for

HEADER_TIMEOUT = 2.0
BODY_GRACE = 3.0
MAX_CONNECTIONS = 300
SLOW_CLIENTS = 250


@pytest.fixture(scope="module")
def gateway(nats_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("slow-clients")
    port = free_port()
    env = service_env(NATS_URL=nats_server.url, AEROVISION_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT),
                      AEROVISION_BODY_GRACE_S=str(BODY_GRACE), AEROVISION_MAX_CONNECTIONS=str(MAX_CONNECTIONS))
    service = Service(["gateway", "--port", str(port)], env, root / "gateway.log").start()
    api = Api(f"http://127.0.0.1:{port}")
    wait_for(api.healthy, timeout=60, what="the gateway")
    yield port, api
    assert service.stop() == 0


def _connect(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


def _wait_all_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it; what each received."""
    received = {sock: b"" for sock in socks}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except ConnectionResetError:
                    data = b""
                received[key.fileobj] += data
                if not data:
                    selector.unregister(key.fileobj)
        open_left = len(selector.get_map())
    assert open_left == 0, f"{open_left} connections still open after {timeout} s"
    return received


def test_unfinished_headers_are_cut_off_while_others_are_served(gateway):
    port, api = gateway
    started = time.monotonic()
    slow = [_connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(SLOW_CLIENTS)]
    try:
        # Meanwhile, an ordinary client is served at once, over and over.
        for _ in range(5):
            asked = time.monotonic()
            assert api.http.get(f"{api.base}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - asked < 1.0
        received = _wait_all_closed(slow, timeout=HEADER_TIMEOUT + 5)
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9, "not cut off before their time"
        assert all(data.startswith(b"HTTP/1.1 408 ") for data in received.values())
    finally:
        for sock in slow:
            sock.close()
    assert api.healthy()


def test_a_connection_that_sends_nothing_is_closed(gateway):
    port, _ = gateway
    silent = [_connect(port, b"") for _ in range(20)]
    try:
        received = _wait_all_closed(silent, timeout=HEADER_TIMEOUT + 5)
        assert set(received.values()) == {b""}, "closed without an answer to a request never made"
    finally:
        for sock in silent:
            sock.close()


def test_a_trickled_body_is_cut_off(gateway):
    port, api = gateway
    head = (b"POST /api/v1/match/template HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n")
    sock = _connect(port, head)
    started = time.monotonic()
    received = b""
    try:
        # A byte every 2 s, for as long as the server listens.
        next_byte = started
        while time.monotonic() - started < BODY_GRACE + 10:
            if time.monotonic() >= next_byte:
                try:
                    sock.send(b"-")
                except (BrokenPipeError, ConnectionResetError):
                    break
                next_byte += 2.0
            # Wait for the server's answer until the next byte is due.
            readable, _, _ = select.select([sock], [], [], max(0.0, next_byte - time.monotonic()))
            if not readable:
                continue
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                break
            received += data
            if not data:
                break
        cut_after = time.monotonic() - started
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 408 "), received[:100]
    assert BODY_GRACE * 0.9 <= cut_after < BODY_GRACE + 3
    assert api.healthy()


def test_a_body_at_a_normal_pace_is_not_cut_off(gateway):
    _, api = gateway
    # An ordinary upload arrives whole: it gets an answer about its content, not 408.
    response = api.submit_template(b"not an image", b"not an image either")
    assert response.status_code not in (408, 503), response.text


def test_connections_beyond_the_cap_get_503(gateway):
    port, api = gateway
    idle = [_connect(port, b"") for _ in range(MAX_CONNECTIONS)]
    try:
        # A new client, queued behind them (a pooled connection could be served first).
        response = requests.get(f"{api.base}/healthz", timeout=5)
        assert response.status_code == 503
    finally:
        for sock in idle:
            sock.close()
    wait_for(api.healthy, timeout=HEADER_TIMEOUT + 5, what="the gateway to serve again")
