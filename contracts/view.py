"""The task view clients read, and the index the task list is served from.

Both are derived from the event stream by the projector (their only writer) and can be rebuilt
from it; the gateway only reads them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from contracts.events import TaskSubmitted
from contracts.tools import TOOLS, Tool, no_result, result_type

TaskStatus = Literal["queued", "processing", "done", "error"]
STATUSES: tuple[str, ...] = ("queued", "processing", "done", "error")


class TaskView(msgspec.Struct, kw_only=True):
    """One task as ``GET /api/v1/tasks/{uid}`` returns it (the concrete classes below type it)."""

    uid: str
    status: TaskStatus
    tool: str
    params: Any
    created_at: str
    updated_at: str
    input_files: list[str]
    thumbnails: list[str] = []
    result_files: list[str] = []
    result_data: Any = msgspec.field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    # Stream sequence of the last event applied: makes re-applying an event a no-op.
    seq: int = 0
    # What a long task is doing (loading, training, matching, refining); None otherwise.
    stage: str | None = None
    # The task's number in submission order, from 0 (its place in the task list; -1 in views
    # written before it was kept).
    position: int = -1


def _view_class(tool: Tool, statuses: tuple[str, ...]) -> type[TaskView]:
    name = "".join(p.capitalize() for p in tool.name.split("_")) + "View" + "".join(s.capitalize() for s in statuses)
    cls = msgspec.defstruct(
        name, [("status", Literal[statuses]), ("tool", Literal[tool.name]), ("params", tool.params),
               ("result_data", result_type(tool, statuses[0]), msgspec.field(default_factory=result_type(tool, statuses[0])))],
        bases=(TaskView,), module=__name__, kw_only=True,
    )
    globals()[name] = cls
    return cls


def _view_classes() -> dict[tuple[str, str], type[TaskView]]:
    # Statuses whose result_data has the same type share a class: queued/processing/error of most
    # tools hold {}; a chain's processing and error views hold its steps so far.
    by_status: dict[tuple[str, str], type[TaskView]] = {}
    for tool in TOOLS.values():
        groups: dict[type, list[str]] = {}
        for status in STATUSES:
            groups.setdefault(result_type(tool, status), []).append(status)
        for statuses in groups.values():
            cls = _view_class(tool, tuple(statuses))
            by_status.update({(tool.name, status): cls for status in statuses})
    return by_status


VIEWS: dict[tuple[str, str], type[TaskView]] = _view_classes()
# Every shape a task object can have, one class each (for documents and tests).
CONCRETE_VIEWS: tuple[type[TaskView], ...] = tuple(dict.fromkeys(VIEWS.values()))


def view_as(tool: str, status: str, **fields: Any) -> TaskView:
    """A task view of ``tool`` in ``status`` (``result_data`` defaults to what it shows then)."""
    cls = VIEWS[(tool, status)]
    fields.setdefault("result_data", no_result(TOOLS[tool], status))
    return cls(tool=tool, status=status, **fields)


def moved(view: TaskView, status: str, **changes: Any) -> TaskView:
    """``view`` in ``status`` with ``changes`` (its class follows the status)."""
    fields = msgspec.structs.asdict(view)
    fields.update(changes, status=status)
    if status != view.status and "result_data" not in changes and VIEWS[(view.tool, status)] is not type(view):
        fields["result_data"] = no_result(TOOLS[view.tool], status)
    return VIEWS[(view.tool, status)](**fields)


def queued_view(event: TaskSubmitted, seq: int = 0) -> TaskView:
    """The view of a task that was just accepted."""
    return view_as(
        event.tool, "queued",
        uid=event.uid,
        params=event.params,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        input_files=list(event.input_files),
        thumbnails=list(event.thumbnails),
        seq=seq,
    )


class ViewEnvelope(msgspec.Struct):
    """What every task view starts with: enough to pick its class, or to ask if it has ended."""

    tool: str
    status: str


view_envelope = msgspec.json.Decoder(ViewEnvelope)
_view_decoders = {key: msgspec.json.Decoder(cls) for key, cls in VIEWS.items()}


def decode_view(data: bytes) -> TaskView:
    """A stored view into its concrete class (``msgspec.ValidationError`` if it is not one)."""
    envelope = view_envelope.decode(data)
    decoder = _view_decoders.get((envelope.tool, envelope.status))
    if decoder is None:
        raise msgspec.ValidationError(f"no task view of tool {envelope.tool!r} in status {envelope.status!r}")
    return decoder.decode(data)


class TaskList(msgspec.Struct):
    """``GET /api/v1/tasks``: the tasks are embedded as the stored JSON, untouched."""

    total: int
    tasks: list[msgspec.Raw]


# The task list index: tasks numbered 0, 1, 2... in submission order, stored in pages of
# INDEX_PAGE_SIZE uids, so a page of the list costs a few gets at any offset. Full pages are
# written once; the last, partly filled one lives in the head, so an append is one write.
INDEX_PAGE_SIZE = 256
INDEX_ALL = "all"


def tool_index(tool: str) -> str:
    """Name of the index of one tool's tasks (for ``?tool=``)."""
    return f"tool-{tool}"


class IndexHead(msgspec.Struct, kw_only=True, omit_defaults=True):
    count: int = 0
    last_seq: int = 0
    # The uids of the last page (``count % INDEX_PAGE_SIZE`` of them). None in heads written
    # before it was kept here: that page is then its own key.
    tail: list[str] | None = None


def index_head_key(index: str) -> str:
    return f"{index}.head"


def index_page_key(index: str, page: int) -> str:
    return f"{index}.page.{page}"


view_encoder = msgspec.json.Encoder()
head_decoder = msgspec.json.Decoder(IndexHead)
page_decoder = msgspec.json.Decoder(list[str])


# Which tasks are in which status, for ``?status=`` (with or without ``?tool=``): per index and
# status, one bit per task position (the "all" index's numbering), in pages of STATUS_PAGE_BITS.
# Each page's member count lives in a counts list of a group of STATUS_GROUP_PAGES pages, and
# each group's total in the head, so a page of the list is a handful of gets at any offset. Counts
# are the popcounts of the pages as written (not increments): replaying a batch rewrites them
# to the same values, so totals stay exact through crashes and replays.
STATUS_PAGE_BITS = 256
STATUS_GROUP_PAGES = 256
# Bumped when the projection's layout changes: a projector finding an older one rebuilds it.
PROJECTION_FORMAT = 2
PROJECTION_FORMAT_KEY = "format"


class StatusHead(msgspec.Struct, kw_only=True, omit_defaults=True):
    count: int = 0
    groups: dict[int, int] = {}  # group -> members in it


def status_head_key(index: str, status: str) -> str:
    return f"{index}.status.{status}.head"


def status_counts_key(index: str, status: str, group: int) -> str:
    return f"{index}.status.{status}.counts.{group}"


def status_bits_key(index: str, status: str, page: int) -> str:
    return f"{index}.status.{status}.bits.{page}"


def members(bits: bytes, page: int) -> list[int]:
    """The positions set in one page of bits, newest (highest) first."""
    number = int.from_bytes(bits, "little")
    out = []
    while number:
        top = number.bit_length() - 1
        out.append(page * STATUS_PAGE_BITS + top)
        number ^= 1 << top
    return out


status_head_decoder = msgspec.json.Decoder(StatusHead)
counts_decoder = msgspec.json.Decoder(list[int])


def is_empty_status_entry(key: str, value: bytes) -> bool:
    """A status page, counts list or head that says nothing: readers take an absent one for it,
    so a projection that cleared every bit of a page and one that never set any are the same."""
    parts = key.split(".")  # <index>.status.<status>.head | .bits.<page> | .counts.<group>
    if len(parts) < 4 or parts[1] != "status":
        return False
    try:
        if parts[3] == "bits":
            return not any(value)
        if parts[3] == "counts":
            return not any(counts_decoder.decode(value))
        if parts[3] == "head":
            return status_head_decoder.decode(value).count == 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return False
