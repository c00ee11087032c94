"""``POST /api/v1/match/<tool>``: one route per tool of the registry, each documented with its
own multipart form; any other tool name gets a 404 that says so."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import HTTPRouteHandler

from contracts.api import ErrorItem
from contracts.tools import TOOLS, Tool
from contracts.view import VIEWS
from services.gateway.apidoc import RouteDoc
from services.gateway.backend import Backend
from services.gateway.budget import BudgetExhausted
from services.gateway.errors import InvalidRequest
from services.gateway.formdata import FormPart, MalformedForm, parse_form
from services.gateway.responses import raw
from services.gateway.settings import GatewaySettings
from services.gateway.submissions import Upload, validate_submission


async def _form_parts(request: Request) -> list[FormPart]:
    """The submitted form's parts; a multipart body is read whole and parsed in memory."""
    content_type, options = request.content_type
    boundary = options.get("boundary")
    if content_type == RequestEncodingType.MULTI_PART and boundary:
        try:
            return parse_form(await request.body(), boundary, max_parts=request.app.multipart_form_part_limit)
        except MalformedForm as exc:
            raise InvalidRequest([ErrorItem("multipart_invalid", ["body"], f"Invalid multipart/form-data: {exc}", None)]) from None
    # URL-encoded fields (no files), or a multipart type without a boundary (Litestar says so).
    form = await request.form()
    return [FormPart(key, None, str(value)) for key, value in form.multi_items()]


def _declared_size(request: Request, limit: int) -> int:
    try:
        return min(int(request.headers.get("content-length", "")), limit)
    except ValueError:
        return limit  # chunked: it may be as large as the limit allows


async def submit(tool: Tool, request: Request, backend: Backend, settings: GatewaySettings) -> Response:
    """Validate the form, store the files, record TaskSubmitted: the queued task."""
    try:
        async with backend.body_budget.reserve(_declared_size(request, settings.max_upload_bytes), wait=10.0):
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
                                           max_pixels=settings.max_image_pixels)
            data = await backend.submit(tool.name, accepted.params, accepted.files, accepted.images)
    except BudgetExhausted:
        raise HTTPException(status_code=429, detail="The server is busy with other uploads; retry in a few seconds",
                            headers={"Retry-After": "5"}) from None
    return raw(data, 201)


def _route(tool: Tool) -> HTTPRouteHandler:
    queued = VIEWS[(tool.name, "queued")]

    async def handler(request: Request, backend: Backend, settings: GatewaySettings) -> Response:
        return await submit(tool, request, backend, settings)

    handler.__name__ = f"submit_{tool.name}"
    return post(f"/api/v1/match/{tool.name}", tags=["submissions"], summary=tool.summary,
                operation_id=f"submit_{tool.name}", opt={"doc": RouteDoc(form=tool, errors=(413, 422, 429), answer=queued)})(handler)


@post("/api/v1/match/{tool:str}", include_in_schema=False)
async def submit_other(tool: str) -> Response:
    raise NotFoundException(detail=f"Unknown tool '{tool}'")


SUBMISSION_HANDLERS = [*(_route(tool) for tool in TOOLS.values()), submit_other]
