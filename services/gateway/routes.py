"""HTTP handlers: thin translations between requests and the backend."""

from __future__ import annotations

import mimetypes

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import HTTPException, NotFoundException

from contracts.api import Health, TaskListQuery, TaskPage
from contracts.events import Event
from contracts.view import TaskList, TaskView
from services.gateway.apidoc import RouteDoc
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.forms import parse_params
from services.gateway.paths import is_task_uid, stored_file
from services.gateway.responses import raw as _raw
from services.gateway.settings_routes import SETTINGS_HANDLERS
from services.gateway.submission_routes import SUBMISSION_HANDLERS

mimetypes.add_type("application/octet-stream", ".ply")




@get("/healthz", sync_to_thread=False, tags=["service"], summary="Whether the gateway can serve (its broker is reachable)")
def healthz(backend: Backend) -> Response[Health]:
    if backend.connected():
        return _raw(b'{"status":"ok"}')
    return _raw(b'{"status":"unavailable","detail":"message broker unreachable"}', 503)


@get("/api/v1/tasks", tags=["tasks"], summary="List tasks, newest first, with exact totals",
     opt={"doc": RouteDoc(query=TaskListQuery, errors=(422,))})
async def list_tasks(request: Request, backend: Backend) -> Response[TaskPage]:
    query, errors = parse_params(TaskListQuery, request.query_params, TaskListQuery(), ("query",))
    if errors or query is None:
        raise InvalidRequest(errors)
    total, views = await backend.task_page(query.offset, query.limit, query.tool, query.status)
    return _raw(msgspec.json.encode(TaskList(total=total, tasks=[msgspec.Raw(v) for v in views])))


async def _task_or_404(backend: Backend, uid: str) -> bytes:
    data = await backend.task(uid) if is_task_uid(uid) else None
    if data is None:
        raise NotFoundException(detail="Task not found")
    return data


@get("/api/v1/tasks/{uid:str}", tags=["tasks"], summary="A task: its status, params, files and result",
     opt={"doc": RouteDoc(errors=(404,))})
async def read_task(uid: str, backend: Backend) -> Response[TaskView]:
    return _raw(await _task_or_404(backend, uid))


@get("/api/v1/tasks/{uid:str}/events", tags=["tasks"], summary="A task's events, oldest first (its audit trail)",
     opt={"doc": RouteDoc(errors=(404,))})
async def task_events(uid: str, backend: Backend) -> Response[list[Event]]:
    await _task_or_404(backend, uid)
    events = await backend.task_events(uid)
    return _raw(b"[" + b",".join(events) + b"]")




async def _serve_file(kind: str, path: str, backend: Backend) -> Response:
    full = stored_file(kind, path)
    if full is None:
        raise NotFoundException(detail="File not found")
    data = await backend.file(full)
    if data is None:
        expired = await backend.file_expired(full)  # listed by its task, past AEROVISION_FILES_TTL
        if expired:
            raise HTTPException(status_code=410, detail=expired)
        raise NotFoundException(detail="File not found")
    media = mimetypes.guess_type(full)[0] or "application/octet-stream"
    return Response(content=data, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable"})


_FILE_DOC = {"doc": RouteDoc(files=True, errors=(404, 410))}


@get("/uploads/{path:path}", tags=["files"], summary="An uploaded file", opt=_FILE_DOC)
async def upload_file(path: str, backend: Backend) -> Response:
    return await _serve_file("uploads", path, backend)


@get("/thumbnails/{path:path}", tags=["files"], summary="A small preview of an uploaded image (made on first request)",
     opt=_FILE_DOC)
async def thumbnail_file(path: str, backend: Backend) -> Response:
    return await _serve_file("thumbnails", path, backend)


@get("/results/{path:path}", tags=["files"], summary="A result file (matches.png, heatmap.png, ...)", opt=_FILE_DOC)
async def result_file(path: str, backend: Backend) -> Response:
    return await _serve_file("results", path, backend)


HANDLERS = [
    healthz, list_tasks, read_task, task_events, upload_file, thumbnail_file, result_file,
    *SUBMISSION_HANDLERS, *SETTINGS_HANDLERS,
]
