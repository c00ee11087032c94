"""Error answers in the API's shapes: 422 ``{"detail": [...]}``, others ``{"detail": "..."}``."""

from __future__ import annotations

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from infra import nats_layout
from contracts.api import ErrorBody, ErrorItem, ValidationErrorBody

log = structlog.get_logger("gateway")


class InvalidRequest(Exception):
    """The request's fields failed validation; carries every error found, not just the first."""

    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__(errors)
        self.errors = errors


def _json(body: msgspec.Struct, status: int) -> Response:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json")


def on_invalid(_: Request, exc: InvalidRequest) -> Response:
    return _json(ValidationErrorBody(detail=exc.errors), 422)


def on_litestar_validation(_: Request, exc: ValidationException) -> Response:
    items = []
    for extra in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(extra, dict):
            loc = [extra.get("source") or "body", extra.get("key") or ""]
            items.append(ErrorItem("value_error", loc, str(extra.get("message", exc.detail)), None))
    if not items:
        items.append(ErrorItem("value_error", ["body"], str(exc.detail), None))
    return _json(ValidationErrorBody(detail=items), 422)


def on_http(_: Request, exc: HTTPException) -> Response:
    return _json(ErrorBody(detail=str(exc.detail)), exc.status_code)


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
