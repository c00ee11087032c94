"""Webhook settings from the environment: the target policy reaches both services, bad values fail loudly."""

from __future__ import annotations

import pytest

from services.gateway.settings import GatewaySettings
from services.notifier.settings import DEFAULT_SCHEDULE, NotifierSettings


def test_defaults(monkeypatch):
    for name in ("AEROVISION_WEBHOOK_PRIVATE_TARGETS", "AEROVISION_WEBHOOK_SCHEDULE", "AEROVISION_WEBHOOK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    notifier = NotifierSettings.from_env()
    assert notifier.allow_private_targets and GatewaySettings.from_env().webhook_allow_private_targets
    assert notifier.schedule == DEFAULT_SCHEDULE == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    assert (notifier.timeout, notifier.per_receiver, notifier.concurrency) == (15.0, 4, 256)


def test_deny_private_targets_and_a_schedule(monkeypatch):
    monkeypatch.setenv("AEROVISION_WEBHOOK_PRIVATE_TARGETS", "deny")
    monkeypatch.setenv("AEROVISION_WEBHOOK_SCHEDULE", "1,2")
    notifier = NotifierSettings.from_env()
    assert not notifier.allow_private_targets and notifier.schedule == (1.0, 2.0)
    assert not GatewaySettings.from_env().webhook_allow_private_targets


def test_a_misspelt_policy_stops_the_start(monkeypatch):
    monkeypatch.setenv("AEROVISION_WEBHOOK_PRIVATE_TARGETS", "no")
    with pytest.raises(ValueError, match="AEROVISION_WEBHOOK_PRIVATE_TARGETS"):
        NotifierSettings.from_env()
