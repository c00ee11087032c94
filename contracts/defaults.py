"""Tool defaults as the settings bucket holds them: the projection of ``settings.changed`` events.

The projector writes one value per tool (key: the tool's name): the full params and the change
that set them, ``seq`` being that event's stream sequence, so readers order changes by the log.
Buckets written before settings were events hold the bare params; they read with ``seq`` 0.
"""

from __future__ import annotations

import msgspec

from contracts.events import SettingsChanged
from contracts.tools import TOOLS


class StoredDefaults(msgspec.Struct, kw_only=True):
    tool: str
    params: msgspec.Raw  # the tool's params (``contracts.tools.TOOLS[tool].params``)
    seq: int  # stream sequence of the settings.changed event applied
    changed_at: str
    change_id: str


class ToolDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """A tool's current defaults, typed, with where in the log they were set (0: before events)."""

    params: msgspec.Struct
    seq: int = 0
    changed_at: str = ""
    change_id: str = ""


_stored = msgspec.json.Decoder(StoredDefaults)
_encoder = msgspec.json.Encoder()


def encode_defaults(event: SettingsChanged, seq: int) -> bytes:
    """The bucket value for a change stored at stream sequence ``seq``."""
    return _encoder.encode(StoredDefaults(tool=event.tool, params=msgspec.Raw(_encoder.encode(event.params)),
                                          seq=seq, changed_at=event.occurred_at, change_id=event.uid))


def decode_defaults(tool: str, data: bytes) -> ToolDefaults:
    """A bucket value of ``tool``, in either layout (``msgspec.ValidationError`` if neither)."""
    cls = TOOLS[tool].params
    try:
        stored = _stored.decode(data)
    except msgspec.ValidationError:
        # Written before settings were events: the bare params.
        return ToolDefaults(params=msgspec.json.decode(data, type=cls))
    return ToolDefaults(params=msgspec.json.decode(stored.params, type=cls), seq=stored.seq,
                        changed_at=stored.changed_at, change_id=stored.change_id)
