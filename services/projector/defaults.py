"""The tool-defaults projection: each tool's latest ``settings.changed``, one bucket key per tool.

The projector is its only writer. A change applies only if it is newer in the log than the one
stored (``seq``), so replays and redeliveries change nothing. Values written before settings were
events (bare params, no change behind them) are recorded once as a change, so the log alone
rebuilds the bucket (see ``record_legacy``).
"""

from __future__ import annotations

import uuid

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.defaults import decode_defaults, encode_defaults
from contracts.events import SETTINGS_CHANGED, SettingsChanged
from contracts.tools import SETTINGS_TOOLS
from infra import nats_layout

log = structlog.get_logger("projector")
# Legacy values become changes with ids derived from the value's revision: every projector that
# meets the same value publishes the same change, which the stream stores once.
_LEGACY = uuid.UUID("6f1d8a52-2f1c-4b59-9d0e-5a9e3c1f7b20")


def latest_changes(changes: list[tuple[SettingsChanged, int]]) -> dict[str, tuple[SettingsChanged, int]]:
    """The newest change of each tool among (event, stream sequence) pairs."""
    newest: dict[str, tuple[SettingsChanged, int]] = {}
    for event, seq in changes:
        if event.tool not in newest or seq > newest[event.tool][1]:
            newest[event.tool] = (event, seq)
    return newest


class DefaultsProjection:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._seqs: dict[str, int] = {}  # tool -> seq of the change stored

    async def _stored_seq(self, tool: str) -> int:
        if tool not in self._seqs:
            try:
                self._seqs[tool] = decode_defaults(tool, (await self._kv.get(tool)).value).seq
            except (KeyNotFoundError, msgspec.ValidationError):
                self._seqs[tool] = 0
        return self._seqs[tool]

    async def apply(self, changes: list[tuple[SettingsChanged, int]]) -> None:
        for tool, (event, seq) in latest_changes(changes).items():
            if tool not in SETTINGS_TOOLS or seq <= await self._stored_seq(tool):
                continue
            await self._kv.put(tool, encode_defaults(event, seq))
            self._seqs[tool] = seq
            log.info("defaults_projected", tool=tool, seq=seq, change_id=event.uid)


async def record_legacy(js: JetStreamContext, kv: KeyValue) -> int:
    """Publish a ``settings.changed`` for each tool whose defaults predate settings events; how many."""
    recorded = 0
    for tool in SETTINGS_TOOLS:
        try:
            entry = await kv.get(tool)
        except KeyNotFoundError:
            continue
        try:
            current = decode_defaults(tool, entry.value)
        except msgspec.ValidationError:
            log.warning("defaults_unreadable", tool=tool)
            continue
        if current.seq:
            continue
        change = SETTINGS_CHANGED[tool](uid=str(uuid.uuid5(_LEGACY, f"{tool}:{entry.revision}")), tool=tool,
                                        params=current.params)
        await nats_layout.publish_event(js, change)
        recorded += 1
        log.info("legacy_defaults_recorded", tool=tool, change_id=change.uid)
    return recorded
