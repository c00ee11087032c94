"""What ``aerovision events`` asks the stream for, and how it finds the running system."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from aerovision import runtime
from aerovision.since import BadTime, parse_since
from contracts.filters import BadFilter, subject_filter

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
UID = "d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"


@pytest.mark.parametrize("task, kind, subject", [
    (None, None, "aerovision.events.>"),
    (None, "task.finished", "aerovision.events.finished.>"),
    (None, "finished", "aerovision.events.finished.>"),
    (UID, None, f"aerovision.events.*.*.{UID}"),
    (UID, "settings.changed", f"aerovision.events.settings_changed.*.{UID}"),
])
def test_subject_filters(task, kind, subject):
    assert subject_filter(task, kind) == subject


@pytest.mark.parametrize("task, kind", [(None, "task.teleported"), ("a.b", None), ("*", None), ("x>", None)])
def test_filters_that_are_refused(task, kind):
    with pytest.raises(BadFilter):
        subject_filter(task, kind)


@pytest.mark.parametrize("text, expected", [
    ("15m", NOW - dt.timedelta(minutes=15)),
    ("1d12h", NOW - dt.timedelta(hours=36)),
    ("90s", NOW - dt.timedelta(seconds=90)),
    ("2025-05-31T08:00:00Z", dt.datetime(2025, 5, 31, 8, tzinfo=dt.timezone.utc)),
    ("2025-05-31", dt.datetime(2025, 5, 31, tzinfo=dt.timezone.utc)),
    ("2025-05-31T10:00:00+02:00", dt.datetime(2025, 5, 31, 8, tzinfo=dt.timezone.utc)),
])
def test_since(text, expected):
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "", "5 parsecs", "15"])
def test_since_refuses_what_it_cannot_read(text):
    with pytest.raises(BadTime):
        parse_since(text, NOW)


def test_the_runtime_file_names_the_running_system(tmp_path, monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    with pytest.raises(runtime.NotRunning, match="no running AeroVision"):
        runtime.find_nats_url(None, tmp_path)
    path = runtime.announce(tmp_path, "nats://127.0.0.1:5555", "http://127.0.0.1:8888")
    assert runtime.find_nats_url(None, tmp_path) == "nats://127.0.0.1:5555"
    assert runtime.find_nats_url("nats://elsewhere:4222", tmp_path) == "nats://elsewhere:4222"
    monkeypatch.setenv("NATS_URL", "nats://from-env:4222")
    assert runtime.find_nats_url(None, tmp_path) == "nats://from-env:4222"
    monkeypatch.delenv("NATS_URL")
    runtime.withdraw(path)
    assert not path.exists()


def test_a_runtime_file_of_a_dead_system_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    (tmp_path / runtime.RUNTIME_FILE).write_text(
        '{"nats_url": "nats://127.0.0.1:5555", "gateway_url": "http://x", "pid": %d}' % _dead_pid())
    with pytest.raises(runtime.NotRunning, match="no longer running"):
        runtime.find_nats_url(None, tmp_path)


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              check=True).stdout)
