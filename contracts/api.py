"""Request and response shapes of the REST API that are not the task view."""

from __future__ import annotations

from typing import Any

import msgspec


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
