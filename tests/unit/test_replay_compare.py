"""Replay's comparison: every difference is reported, and only real ones."""

from __future__ import annotations

import msgspec

from contracts.view import StatusHead
from services.projector.replay import differences


def test_views_that_differ_name_their_fields():
    live = {"a": b'{"status":"done","seq":5,"error":null}', "b": b'{"status":"queued"}', "gone": b"{}"}
    rebuilt = {"a": b'{"status":"error","seq":5,"error":"x"}', "b": b'{"status":"queued"}', "new": b"{}"}
    found = [(d.key, d.what, d.fields) for d in differences("aerovision-tasks", live, rebuilt)]
    assert found == [("a", "differs", ["error", "status"]), ("gone", "missing_in_rebuilt", []),
                     ("new", "missing_in_live", [])]


def test_cleared_status_pages_are_the_same_as_none():
    """A task submitted and finished in one replayed batch never enters the queued pages; live,
    it entered and left them. Both read as an empty status."""
    cleared = {"all.status.queued.bits.0": bytes(32), "all.status.queued.counts.0": msgspec.json.encode([0] * 256),
               "all.status.queued.head": msgspec.json.encode(StatusHead())}
    done = {"all.status.done.bits.0": b"\x01" + bytes(31)}
    assert differences("aerovision-task-index", {**cleared, **done}, dict(done)) == []
    assert [d.key for d in differences("aerovision-task-index", {**cleared}, dict(done))] == ["all.status.done.bits.0"]
