"""Error answers in the API's shapes: 422 ``{"detail": [...]}``, others ``{"detail": "..."}``."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from contracts.api import ErrorBody, ErrorItem, ValidationErrorBody
from infra import nats_layout

log = structlog.get_logger("gateway")


class InvalidRequest(Exception):
    """The request's fields failed validation; carries every error found, not just the first."""

    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__(errors)
        self.errors = errors


def _json(body: msgspec.Struct, status: int) -> Response:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json")


# A 422 names what was wrong, it does not return it: an echoed 60 MB form field made a 370 MB
# response. Text inputs are cut to this many characters, structures to this many JSON bytes.
MAX_ECHO_CHARS = 200
MAX_ECHO_BYTES = 1024
MAX_ERRORS = 50


def bounded_input(value: Any) -> Any:
    """``value`` if it is small, else a shortened stand-in (never more than ~1 KB of JSON)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"
    if len(encoded) <= MAX_ECHO_BYTES:
        return value
    return encoded[:MAX_ECHO_CHARS].decode("utf-8", "ignore") + "…"


def _bounded(item: ErrorItem) -> ErrorItem:
    loc = [part if isinstance(part, int) else bounded_input(str(part)) for part in item.loc]
    return ErrorItem(item.type, loc, bounded_input(item.msg), bounded_input(item.input))


def on_invalid(_: Request, exc: InvalidRequest) -> Response:
    return _json(ValidationErrorBody(detail=[_bounded(item) for item in exc.errors[:MAX_ERRORS]]), 422)


def on_litestar_validation(_: Request, exc: ValidationException) -> Response:
    items = []
    for extra in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(extra, dict):
            loc = [extra.get("source") or "body", extra.get("key") or ""]
            items.append(ErrorItem("value_error", loc, str(extra.get("message", exc.detail)), None))
    if not items:
        items.append(ErrorItem("value_error", ["body"], str(exc.detail), None))
    return _json(ValidationErrorBody(detail=[_bounded(item) for item in items[:MAX_ERRORS]]), 422)


def on_http(_: Request, exc: HTTPException) -> Response:
    response = _json(ErrorBody(detail=bounded_input(str(exc.detail))), exc.status_code)
    response.headers.update(exc.headers or {})
    return response


def on_unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, nats_layout.BROKER_UNAVAILABLE):
        log.warning("broker_unavailable", path=request.url.path, error=type(exc).__name__)
        response = _json(ErrorBody(detail="The message broker is unreachable; retry in a few seconds"), 503)
        response.headers["Retry-After"] = "2"
        return response
    log.exception("request_failed", path=request.url.path)
    return _json(ErrorBody(detail="Internal server error"), 500)


EXCEPTION_HANDLERS = {
    InvalidRequest: on_invalid,
    ValidationException: on_litestar_validation,
    HTTPException: on_http,
    Exception: on_unexpected,
}
