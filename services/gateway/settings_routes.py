"""``GET``/``PUT /api/v1/settings/<tool>``: each tool's defaults, one pair of routes per tool."""

from __future__ import annotations

import msgspec
import structlog
from litestar import Request, Response, get, put
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from contracts.api import SETTINGS_SHAPES, ErrorItem
from contracts.tools import TOOLS
from services.gateway.apidoc import RouteDoc
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.forms import validate_settings
from services.gateway.responses import raw

log = structlog.get_logger("gateway")
# A settings document is one flat object of scalars: decoding it as such refuses nesting at the
# first level (an untyped decode of 100,000 nested arrays raised RecursionError: a 500).
_settings_body = msgspec.json.Decoder(dict[str, str | int | float | bool | None])
MAX_JSON_BODY = 64 * 1024


def _answer(tool: str, params: msgspec.Struct) -> Response:
    return raw(msgspec.json.encode(SETTINGS_SHAPES[tool](tool=tool, params=params)))


def _routes(tool: str) -> list[HTTPRouteHandler]:
    shape, params_type = SETTINGS_SHAPES[tool], TOOLS[tool].params

    async def read(backend: Backend) -> Response:
        return _answer(tool, backend.tool_settings(tool))

    async def write(request: Request, backend: Backend) -> Response:
        raw_body = await request.body()
        try:
            body = _settings_body.decode(raw_body)
        except msgspec.ValidationError:
            if raw_body.lstrip()[:1] != b"{":
                raise InvalidRequest([ErrorItem("dict_type", ["body"], "Input should be a valid dictionary", None)]) from None
            raise InvalidRequest([ErrorItem("value_error", ["body"], "Each parameter should be a number, a string or a boolean", None)]) from None
        except msgspec.DecodeError as exc:
            raise InvalidRequest([ErrorItem("json_invalid", ["body"], f"Invalid JSON: {exc}", None)]) from None
        params, errors = validate_settings(params_type, body)
        if errors or params is None:
            raise InvalidRequest(errors)
        await backend.save_settings(tool, params)
        log.info("settings_changed", tool=tool)
        return _answer(tool, params)

    read.__name__, write.__name__ = f"read_{tool}_settings", f"write_{tool}_settings"
    path = f"/api/v1/settings/{tool}"
    return [
        get(path, tags=["settings"], summary=f"The {tool} tool's defaults", operation_id=read.__name__,
            opt={"doc": RouteDoc(answer=shape)})(read),
        put(path, tags=["settings"], summary=f"Change the {tool} tool's defaults (missing fields: their defaults)",
            operation_id=write.__name__, request_max_body_size=MAX_JSON_BODY,
            opt={"doc": RouteDoc(json_body=params_type, closed_body=True, errors=(413, 422), answer=shape)})(write),
    ]


@get("/api/v1/settings/{tool:str}", include_in_schema=False)
async def read_other_settings(tool: str) -> Response:
    raise NotFoundException(detail=f"Unknown tool '{tool}'")


@put("/api/v1/settings/{tool:str}", include_in_schema=False, request_max_body_size=MAX_JSON_BODY)
async def write_other_settings(tool: str) -> Response:
    raise NotFoundException(detail=f"Unknown tool '{tool}'")


SETTINGS_HANDLERS = [*(h for tool in SETTINGS_SHAPES for h in _routes(tool)), read_other_settings, write_other_settings]
