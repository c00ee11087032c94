"""Request and response shapes of the REST API that are not the task view."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from contracts.tools import SETTINGS_TOOLS, TOOLS
from contracts.view import TaskStatus, TaskView


class ErrorItem(msgspec.Struct):
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrorBody(msgspec.Struct):
    detail: list[ErrorItem]


class ErrorBody(msgspec.Struct):
    detail: str


class ToolSettings(msgspec.Struct):
    tool: str
    params: dict[str, Any]


class WebhookIn(msgspec.Struct, kw_only=True):
    url: str
    secret: str | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    id: str
    url: str
    created_at: str


class WebhookRecord(msgspec.Struct, kw_only=True):
    """A registration as stored (never on the event stream: it holds the secret)."""

    id: str
    url: str
    created_at: str
    secret: str | None = None


class WebhookPayload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The body POSTed to every webhook when a task ends (``error`` only when it failed)."""

    uid: str
    status: str
    tool: str
    result_files: list[str]
    result_data: Any  # the tool's result (contracts.results), or {} when the task failed
    error: str | None = None


# --- shapes of the other routes, as the OpenAPI document describes them --------------------------

class Health(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


ToolName = Literal[tuple(TOOLS)]  # type: ignore[valid-type]


class TaskListQuery(msgspec.Struct, kw_only=True):
    """``GET /api/v1/tasks``'s query string."""

    offset: Annotated[int, Meta(ge=0, description="tasks to skip, newest first")] = 0
    limit: Annotated[int, Meta(ge=1, le=200, description="tasks to return")] = 50
    tool: Annotated[ToolName | None, Meta(description="only this tool's tasks")] = None  # type: ignore[valid-type]
    status: Annotated[TaskStatus | None, Meta(description="only tasks in this status")] = None


class TaskPage(msgspec.Struct):
    """``GET /api/v1/tasks``: the exact total and one page, newest first (each task one of the
    concrete views of ``contracts.view``)."""

    total: int
    tasks: list[TaskView]


def _settings_shape(tool: str) -> type[msgspec.Struct]:
    name = "".join(part.capitalize() for part in tool.split("_")) + "Settings"
    return msgspec.defstruct(name, [("tool", Literal[tool]), ("params", TOOLS[tool].params)], module=__name__)


# ``GET``/``PUT /api/v1/settings/{tool}``: {"tool", "params"} with the tool's params.
SETTINGS_SHAPES: dict[str, type[msgspec.Struct]] = {tool: _settings_shape(tool) for tool in SETTINGS_TOOLS}
globals().update({cls.__name__: cls for cls in SETTINGS_SHAPES.values()})
