"""HTTP handlers: thin translations between requests and the backend."""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, delete, get, post, put
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException, NotFoundException

from contracts.api import ErrorItem, ToolSettings, WebhookIn, WebhookOut
from contracts.tools import SETTINGS_TOOLS, TOOLS, Tool
from contracts.view import STATUSES, TaskList
from services.gateway.backend import Backend
from services.gateway.budget import BudgetExhausted
from services.gateway.errors import InvalidRequest
from services.gateway.formdata import FormPart, MalformedForm, parse_form
from services.gateway.paths import is_task_uid, stored_file
from services.gateway.forms import choices, validate_settings
from services.gateway.settings import GatewaySettings
from services.gateway.submissions import Upload, validate_submission

log = structlog.get_logger("gateway")
JSON = "application/json"
# Tools the registry describes whose runner has not landed in the matcher yet.
NOT_YET = frozenset({"feature", "surface"})
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


def _declared_size(request: Request, limit: int) -> int:
    try:
        return min(int(request.headers.get("content-length", "")), limit)
    except ValueError:
        return limit  # chunked: it may be as large as the limit allows


@post("/api/v1/match/{tool:str}")
async def submit(request: Request, tool: str, backend: Backend, settings: GatewaySettings) -> Response:
    if tool in NOT_YET:
        raise NotFoundException(detail=f"The '{tool}' tool is not available on this server yet")
    spec = TOOLS.get(tool)
    if spec is None:
        raise NotFoundException(detail=f"Unknown tool '{tool}'")
    try:
        async with backend.body_budget.reserve(_declared_size(request, settings.max_upload_bytes), wait=10.0):
            return await _submit(request, spec, backend, settings)
    except BudgetExhausted:
        raise HTTPException(status_code=429, detail="The server is busy with other uploads; retry in a few seconds",
                            headers={"Retry-After": "5"}) from None


async def _submit(request: Request, tool: Tool, backend: Backend, settings: GatewaySettings) -> Response:
    fields: dict[str, Any] = {}
    uploads: dict[str, Upload | str | None] = {}
    file_fields = {slot.field for slot in tool.files}
    for part in await _form_parts(request):
        if part.name not in file_fields:
            fields[part.name] = part.value
        elif part.filename is not None and isinstance(part.value, bytes):
            uploads[part.name] = Upload(field=part.name, filename=part.filename, data=part.value)
        else:
            uploads[part.name] = part.value
    accepted = validate_submission(tool, fields, uploads, backend.tool_settings,
                                   max_pixels=settings.max_image_pixels, unavailable=NOT_YET)
    data = await backend.submit(tool.name, accepted.params, accepted.files, accepted.images)
    return _raw(data, 201)


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits: int() also takes "٣" and "1_0"


def _query_int(request: Request, name: str, default: int, lo: int, hi: int | None) -> tuple[int, ErrorItem | None]:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default, None
    try:
        if not _INTEGER.fullmatch(raw):
            raise ValueError
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
    if tool is not None and tool not in TOOLS:
        errors.append(ErrorItem("enum", ["query", "tool"], f"Input should be {choices(TOOLS)}", tool))
    if status is not None and status not in STATUSES:
        errors.append(ErrorItem("enum", ["query", "status"], f"Input should be {choices(STATUSES)}", status))
    if errors:
        raise InvalidRequest(errors)
    total, views = await backend.task_page(offset, limit, tool, status)
    return _raw(msgspec.json.encode(TaskList(total=total, tasks=[msgspec.Raw(v) for v in views])))


async def _task_or_404(backend: Backend, uid: str) -> bytes:
    data = await backend.task(uid) if is_task_uid(uid) else None
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
    if tool not in SETTINGS_TOOLS:
        raise NotFoundException(detail=f"Unknown tool '{tool}'")
    return TOOLS[tool].params


@get("/api/v1/settings/{tool:str}")
async def read_settings(tool: str, backend: Backend) -> Response:
    _tool_or_404(tool)
    params = backend.tool_settings(tool)
    return _raw(msgspec.json.encode(ToolSettings(tool=tool, params=msgspec.to_builtins(params))))


# A settings document is one flat object of scalars: decoding it as such refuses nesting at the
# first level (an untyped decode of 100,000 nested arrays raised RecursionError: a 500).
_settings_body = msgspec.json.Decoder(dict[str, str | int | float | bool | None])
MAX_JSON_BODY = 64 * 1024


@put("/api/v1/settings/{tool:str}", request_max_body_size=MAX_JSON_BODY)
async def write_settings(tool: str, request: Request, backend: Backend) -> Response:
    cls = _tool_or_404(tool)
    raw = await request.body()
    try:
        body = _settings_body.decode(raw)
    except msgspec.ValidationError:
        if raw.lstrip()[:1] != b"{":
            raise InvalidRequest([ErrorItem("dict_type", ["body"], "Input should be a valid dictionary", None)]) from None
        raise InvalidRequest([ErrorItem("value_error", ["body"], "Each parameter should be a number, a string or a boolean", None)]) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest([ErrorItem("json_invalid", ["body"], f"Invalid JSON: {exc}", None)]) from None
    params, errors = validate_settings(cls, body)
    if errors or params is None:
        raise InvalidRequest(errors)
    await backend.save_settings(tool, params)
    log.info("settings_changed", tool=tool)
    return _raw(msgspec.json.encode(ToolSettings(tool=tool, params=msgspec.to_builtins(params))))


@post("/api/v1/webhooks")
async def add_webhook(request: Request, backend: Backend) -> Response:
    try:
        body = msgspec.json.decode(await request.body(), type=WebhookIn)
    except msgspec.ValidationError as exc:
        raise InvalidRequest([ErrorItem("value_error", ["body"], str(exc), None)]) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest([ErrorItem("json_invalid", ["body"], f"Invalid JSON: {exc}", None)]) from None
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", body.url, re.IGNORECASE):
        raise InvalidRequest([ErrorItem("url_parsing", ["body", "url"], "Input should be a valid http or https URL", body.url)])
    record = await backend.add_webhook(body.url, body.secret or None)
    log.info("webhook_registered", webhook_id=record.id)
    return _raw(msgspec.json.encode(WebhookOut(id=record.id, url=record.url, created_at=record.created_at)), 201)


@get("/api/v1/webhooks")
async def list_webhooks(backend: Backend) -> Response:
    records = await backend.webhooks()
    return _raw(msgspec.json.encode([WebhookOut(id=r.id, url=r.url, created_at=r.created_at) for r in records]))


@delete("/api/v1/webhooks/{webhook_id:str}", status_code=204)
async def remove_webhook(webhook_id: str, backend: Backend) -> None:
    if not await backend.delete_webhook(webhook_id):
        raise NotFoundException(detail="Webhook not found")


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
    add_webhook, list_webhooks, remove_webhook, upload_file, thumbnail_file, result_file,
]
