"""The task view clients read, and the index the task list is served from.

Both are derived from the event stream by the projector (their only writer) and can be rebuilt
from it; the gateway only reads them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from contracts.events import TaskSubmitted

TaskStatus = Literal["queued", "processing", "done", "error"]


class TaskView(msgspec.Struct, kw_only=True):
    """One task as ``GET /api/v1/tasks/{uid}`` returns it."""

    uid: str
    status: TaskStatus
    tool: str
    params: dict[str, Any]
    created_at: str
    updated_at: str
    input_files: list[str]
    thumbnails: list[str] = []
    result_files: list[str] = []
    result_data: dict[str, Any] = {}
    error: str | None = None
    attempts: int = 0
    # Stream sequence of the last event applied: makes re-applying an event a no-op.
    seq: int = 0


def queued_view(event: TaskSubmitted, seq: int = 0) -> TaskView:
    """The view of a task that was just accepted."""
    return TaskView(
        uid=event.uid,
        status="queued",
        tool=event.tool,
        params=event.params,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        input_files=list(event.input_files),
        thumbnails=list(event.thumbnails),
        seq=seq,
    )


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
view_decoder = msgspec.json.Decoder(TaskView)
head_decoder = msgspec.json.Decoder(IndexHead)
page_decoder = msgspec.json.Decoder(list[str])
