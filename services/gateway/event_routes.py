"""HTTP routes of the event stream: its AsyncAPI document, and (for browsers and HTTP-only
clients) its events as Server-Sent Events. Kept apart from the task routes (routes.py)."""

from __future__ import annotations

import functools
import re

import structlog
from litestar import Request, Response, get
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import ServerSentEvent

from contracts.api import ErrorItem, EventStreamQuery, ResumeQuery
from contracts.filters import BadFilter, subject_filter
from services.gateway.apidoc import RouteDoc
from services.gateway.asyncapi import document_json
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.event_streams import sse_messages
from services.gateway.paths import is_task_uid
from services.gateway.settings import GatewaySettings

log = structlog.get_logger("gateway")
_SEQUENCE = re.compile(r"[0-9]{1,19}")


@get("/schema/asyncapi.json", include_in_schema=False, sync_to_thread=False)
def asyncapi_document() -> Response:
    """The AsyncAPI 3.0 document of the event stream (docs/asyncapi.json)."""
    return Response(content=_document(), media_type="application/json")


@functools.cache
def _document() -> bytes:
    """Pure and fixed for a build: made once, when first asked for (not in every import)."""
    return document_json()


def _last_event_id(request: Request) -> int | None:
    """Where a stream resumes: after ``Last-Event-ID`` (what browsers send on reconnecting) or
    ``?last_event_id=`` (0: from the first event); None: not resuming."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not _SEQUENCE.fullmatch(raw):
        raise InvalidRequest([ErrorItem("int_parsing", ["header", "Last-Event-ID"],
                                        "Input should be an event id (a stream sequence) from this stream", raw[:64])])
    return int(raw)


async def _stream(backend: Backend, settings: GatewaySettings, subject: str, after: int | None,
                  new_only: bool) -> ServerSentEvent:
    if not backend.event_streams.take():
        raise HTTPException(status_code=429, headers={"Retry-After": "5"},
                            detail=f"Too many event streams are open ({backend.event_streams.limit}); retry later")
    try:
        tail = await backend.open_tail(subject, after_seq=after, new_only=new_only)
    except BaseException:
        backend.event_streams.give_back()
        raise
    log.info("event_stream_opened", subject=subject, after=after, open=backend.event_streams.open)
    return ServerSentEvent(sse_messages(tail, backend.event_streams, settings.sse_keepalive),
                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@get("/api/v1/events/stream", tags=["events"], summary="Every event, live (or resumed), as Server-Sent Events",
     opt={"doc": RouteDoc(events=True, query=EventStreamQuery, errors=(422, 429))})
async def stream_events(request: Request, backend: Backend, settings: GatewaySettings) -> ServerSentEvent:
    """Every event as it is stored (``?task=<uid>``, ``?type=task.finished`` narrow it): new ones
    only, or, resuming, those after ``Last-Event-ID``. A task's stream starts at its first event."""
    task = request.query_params.get("task") or None
    event_type = request.query_params.get("type") or None
    errors = []
    for name, value, check in (("task", task, lambda: subject_filter(task)),
                               ("type", event_type, lambda: subject_filter(None, event_type))):
        try:
            if value is not None:
                check()
        except BadFilter as exc:
            errors.append(ErrorItem("value_error", ["query", name], str(exc), value[:64]))
    if errors:
        raise InvalidRequest(errors)
    subject = subject_filter(task, event_type)
    after = _last_event_id(request)
    return await _stream(backend, settings, subject, after, new_only=after is None and task is None)


@get("/api/v1/tasks/{uid:str}/events/stream", tags=["events"], summary="A task's events from its first, then live",
     opt={"doc": RouteDoc(events=True, query=ResumeQuery, errors=(404, 422, 429))})
async def stream_task_events(uid: str, request: Request, backend: Backend,
                             settings: GatewaySettings) -> ServerSentEvent:
    """One task's events from its first (or after ``Last-Event-ID``), then live until the client goes."""
    if not is_task_uid(uid) or await backend.task(uid) is None:
        raise NotFoundException(detail="Task not found")
    return await _stream(backend, settings, subject_filter(uid), _last_event_id(request), new_only=False)


EVENT_HANDLERS = [asyncapi_document, stream_events, stream_task_events]
