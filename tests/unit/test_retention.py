"""Retention settings: durations and sizes as operators write them, and the stream they make."""

from __future__ import annotations

import pytest

from infra.nats_layout import event_stream_config
from infra.retention import Retention, human, parse_duration


@pytest.mark.parametrize("text, seconds", [("", 0), ("0", 0), ("3600", 3600), ("90m", 5400), ("12h", 43200),
                                           ("30d", 2592000), ("1d12h", 129600), ("2w", 1209600), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["forever", "12 parsecs", "-5d", "1y"])
def test_durations_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_keep_everything_for_ever(monkeypatch):
    for name in ("AEROVISION_EVENTS_MAX_AGE", "AEROVISION_EVENTS_MAX_GB", "AEROVISION_FILES_TTL"):
        monkeypatch.delenv(name, raising=False)
    assert Retention.from_env() == Retention(events_max_age=0.0, events_max_bytes=-1, files_ttl=0.0)
    config = event_stream_config()
    assert (config.max_age, config.max_bytes, config.retention.value) == (0.0, -1, "limits")


def test_configured_limits(monkeypatch):
    monkeypatch.setenv("AEROVISION_EVENTS_MAX_AGE", "365d")
    monkeypatch.setenv("AEROVISION_EVENTS_MAX_GB", "50")
    monkeypatch.setenv("AEROVISION_FILES_TTL", "7d")
    retention = Retention.from_env()
    assert retention == Retention(events_max_age=365 * 86400, events_max_bytes=50 * 2**30, files_ttl=7 * 86400)
    assert event_stream_config(1, retention).max_age == 365 * 86400
    assert event_stream_config(1, Retention(events_max_age=60)).duplicate_window == 60
    assert human(7 * 86400) == "1 week" and human(2 * 86400) == "2 days" and human(5) == "5 seconds"
