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


# Registration limits (docs/limits.md): long enough for any real endpoint or secret, short enough
# that a registration is one small KV record and every event that names the URL stays small.
WEBHOOK_URL_MAX_LENGTH = 2048
WEBHOOK_SECRET_MAX_LENGTH = 512
# A registration body holds two bounded strings: anything longer is refused before it is parsed.
# Large enough that the 2 MiB URL still gets a field-level 422 rather than a bare 413.
WEBHOOK_BODY_MAX_BYTES = 4 * 1024 * 1024
WEBHOOK_ID_PATTERN = r"^wh_[0-9a-f]{16}$"

WebhookUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=WEBHOOK_URL_MAX_LENGTH,
                                         description="http or https URL that receives the notifications")]
WebhookSecret = Annotated[str, msgspec.Meta(max_length=WEBHOOK_SECRET_MAX_LENGTH,
                                            description="HMAC-SHA256 key; signs every delivery when set")]
WebhookId = Annotated[str, msgspec.Meta(pattern=WEBHOOK_ID_PATTERN)]


class WebhookIn(msgspec.Struct, kw_only=True):
    url: WebhookUrl
    secret: WebhookSecret | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    """A registration as clients see it: never the secret, and the URL without ``user:password@``."""

    id: WebhookId
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


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One delivery attempt as ``GET /api/v1/webhooks/{id}/deliveries`` shows it.

    ``error`` names what failed (timeout, connection refused, DNS, TLS, HTTP status) in our own
    words: never the receiver's reply.
    """

    uid: str
    attempt: int
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    at: str = ""


class DeliveryList(msgspec.Struct, kw_only=True):
    total: int
    deliveries: list[DeliveryOut]


class ResendOut(msgspec.Struct, kw_only=True):
    """``202`` of a resend: the attempt is scheduled now; its outcome appears in the deliveries."""

    webhook_id: str
    uid: str
    status: str = "scheduled"


# --- shapes of the other routes, as the OpenAPI document describes them --------------------------

class Health(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


ToolName = Literal[tuple(TOOLS)]  # type: ignore[valid-type]


class PageQuery(msgspec.Struct, kw_only=True):
    """A paged list's query string (newest first)."""

    offset: Annotated[int, Meta(ge=0, description="items to skip, newest first")] = 0
    limit: Annotated[int, Meta(ge=1, le=200, description="items to return")] = 50


class TaskListQuery(PageQuery, kw_only=True):
    """``GET /api/v1/tasks``'s query string."""

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


LastEventId = Annotated[Annotated[int, Meta(ge=0)] | None, Meta(description="resume after this event id (0: from the first)")]


class EventStreamQuery(msgspec.Struct, kw_only=True):
    """``GET /api/v1/events/stream``'s query string (``Last-Event-ID`` may also come as a header)."""

    task: Annotated[str | None, Meta(description="only this task's events (its uid)")] = None
    type: Annotated[str | None, Meta(description="only events of this type, e.g. task.finished")] = None
    last_event_id: LastEventId = None


class ResumeQuery(msgspec.Struct, kw_only=True):
    """Where an event stream resumes (``Last-Event-ID`` may also come as a header)."""

    last_event_id: LastEventId = None
