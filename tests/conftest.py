"""Fixtures: a real nats-server per session (free port, temporary store) and real services."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Api, NatsServer, free_port, start_up


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    server = NatsServer(tmp_path_factory.mktemp("nats") / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory):
    """The whole system as ``aerovision up`` starts it (embedded NATS), shared by e2e tests."""
    data = tmp_path_factory.mktemp("aerovision")
    port = free_port()
    up = start_up(data / "data", port, data / "up.log", AEROVISION_MAX_UPLOAD_MB="8",
                  AEROVISION_WEBHOOK_SCHEDULE="0.2,0.5,1")
    yield Api(f"http://127.0.0.1:{port}")
    code = up.stop()
    assert code == 0, f"aerovision up exited with {code}; log:\n{(data / 'up.log').read_text()[-3000:]}"


@pytest.fixture
def api(system: Api) -> Api:
    return system


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from tests.harness import DATA

    return DATA
