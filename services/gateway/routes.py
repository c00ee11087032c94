"""HTTP handlers: thin translations between requests and the backend."""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get, post, put
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException

from contracts.api import ErrorItem, ToolSettings
from contracts.params import FILE_FIELDS, PARAMS_BY_TOOL
from contracts.view import TaskList
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.formdata import FormPart, MalformedForm, parse_form
from services.gateway.forms import validate_settings
from services.gateway.settings import GatewaySettings
from services.gateway.submissions import Upload, validate_submission

log = structlog.get_logger("gateway")
JSON = "application/json"
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID = re.compile(f"^{UUID_PATTERN}$")
_SUBMITTABLE = ("template",)
_DOCUMENTED_TOOLS = (*PARAMS_BY_TOOL, "chain")  # every tool the API describes
mimetypes.add_type("application/octet-stream", ".ply")


def _raw(data: bytes, status: int = 200) -> Response:
    return Response(content=data, status_code=status, media_type=JSON)


@get("/healthz", sync_to_thread=False)
def healthz(backend: Backend) -> Response:
    if backend.connected():
        return _raw(b'{"status":"ok"}')
    return _raw(b'{"status":"unavailable","detail":"message broker unreachable"}', 503)


async def _form_parts(request: Request) -> list[FormPart]:
    """The submitted form's parts; a multipart body is read whole and parsed in memory."""
    content_type, options = request.content_type
    boundary = options.get("boundary")
    if content_type == RequestEncodingType.MULTI_PART and boundary:
        try:
            return parse_form(await request.body(), boundary, max_parts=request.app.multipart_form_part_limit)
        except MalformedForm:
            raise ClientException(detail="Invalid multipart/form-data") from None
    # URL-encoded fields (no files), or a multipart type without a boundary (Litestar says so).
    form = await request.form()
    return [FormPart(key, None, str(value)) for key, value in form.multi_items()]


@post("/api/v1/match/{tool:str}")
async def submit(request: Request, tool: str, backend: Backend, settings: GatewaySettings) -> Response:
    if tool not in _SUBMITTABLE:
        # A tool the API documents but no matcher runs yet says so, rather than "unknown".
        raise NotFoundException(detail=f"The '{tool}' tool is not available on this server yet"
                                if tool in _DOCUMENTED_TOOLS else f"Unknown tool '{tool}'")
    fields: dict[str, Any] = {}
    uploads: dict[str, Upload | str | None] = {}
    for part in await _form_parts(request):
        if part.name not in FILE_FIELDS[tool]:
            fields[part.name] = part.value
        elif part.filename is not None and isinstance(part.value, bytes):
            uploads[part.name] = Upload(field=part.name, filename=part.filename, data=part.value)
        else:
            uploads[part.name] = part.value
    defaults = await backend.tool_settings(tool)
    accepted = validate_submission(tool, fields, uploads, defaults, max_pixels=settings.max_image_pixels)
    data = await backend.submit(tool, accepted.params, accepted.files, accepted.images)
    return _raw(data, 201)


def _query_int(request: Request, name: str, default: int, lo: int, hi: int | None) -> tuple[int, ErrorItem | None]:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default, None
    try:
        value = int(raw)
    except ValueError:
        return default, ErrorItem("int_parsing", ["query", name], "Input should be a valid integer, unable to parse string as an integer", raw)
    if value < lo:
        return default, ErrorItem("value_error", ["query", name], f"Input should be greater than or equal to {lo}", value)
    if hi is not None and value > hi:
        return default, ErrorItem("value_error", ["query", name], f"Input should be less than or equal to {hi}", value)
    return value, None


@get("/api/v1/tasks")
async def list_tasks(request: Request, backend: Backend) -> Response:
    offset, e1 = _query_int(request, "offset", 0, 0, None)
    limit, e2 = _query_int(request, "limit", 50, 1, 200)
    errors = [e for e in (e1, e2) if e is not None]
    tool = request.query_params.get("tool") or None
    status = request.query_params.get("status") or None
    if tool is not None and tool not in _DOCUMENTED_TOOLS:
        errors.append(ErrorItem("enum", ["query", "tool"], "Input should be 'template', 'feature', 'surface' or 'chain'", tool))
    if status is not None:
        errors.append(ErrorItem("value_error", ["query", "status"], "Filtering by status is not supported yet", status))
    if errors:
        raise InvalidRequest(errors)
    total, views = await backend.task_page(offset, limit, tool)
    return _raw(msgspec.json.encode(TaskList(total=total, tasks=[msgspec.Raw(v) for v in views])))


async def _task_or_404(backend: Backend, uid: str) -> bytes:
    data = await backend.task(uid) if _UUID.match(uid) else None
    if data is None:
        raise NotFoundException(detail="Task not found")
    return data


@get("/api/v1/tasks/{uid:str}")
async def read_task(uid: str, backend: Backend) -> Response:
    return _raw(await _task_or_404(backend, uid))


@get("/api/v1/tasks/{uid:str}/events")
async def task_events(uid: str, backend: Backend) -> Response:
    await _task_or_404(backend, uid)
    events = await backend.task_events(uid)
    return _raw(b"[" + b",".join(events) + b"]")


def _tool_or_404(tool: str) -> type[msgspec.Struct]:
    cls = PARAMS_BY_TOOL.get(tool)
    if cls is None:
        raise NotFoundException(detail=f"Unknown tool '{tool}'")
    return cls


@get("/api/v1/settings/{tool:str}")
async def read_settings(tool: str, backend: Backend) -> Response:
    _tool_or_404(tool)
    params = await backend.tool_settings(tool)
    return _raw(msgspec.json.encode(ToolSettings(tool=tool, params=msgspec.to_builtins(params))))


@put("/api/v1/settings/{tool:str}")
async def write_settings(tool: str, request: Request, backend: Backend) -> Response:
    cls = _tool_or_404(tool)
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise InvalidRequest([ErrorItem("json_invalid", ["body"], f"Invalid JSON: {exc}", None)]) from None
    params, errors = validate_settings(cls, body)
    if errors or params is None:
        raise InvalidRequest(errors)
    await backend.save_settings(tool, params)
    log.info("settings_changed", tool=tool)
    return _raw(msgspec.json.encode(ToolSettings(tool=tool, params=msgspec.to_builtins(params))))


async def _serve_file(kind: str, path: str, backend: Backend) -> Response:
    # Litestar hands the path with a leading slash; names were sanitised at upload.
    full = f"{kind}/{path.lstrip('/')}"
    if ".." in full.split("/"):
        raise NotFoundException(detail="File not found")
    data = await backend.file(full)
    if data is None:
        raise NotFoundException(detail="File not found")
    media = mimetypes.guess_type(full)[0] or "application/octet-stream"
    return Response(content=data, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable"})


@get("/uploads/{path:path}")
async def upload_file(path: str, backend: Backend) -> Response:
    return await _serve_file("uploads", path, backend)


@get("/thumbnails/{path:path}")
async def thumbnail_file(path: str, backend: Backend) -> Response:
    return await _serve_file("thumbnails", path, backend)


@get("/results/{path:path}")
async def result_file(path: str, backend: Backend) -> Response:
    return await _serve_file("results", path, backend)


HANDLERS = [
    healthz, submit, list_tasks, read_task, task_events, read_settings, write_settings,
    upload_file, thumbnail_file, result_file,
]
