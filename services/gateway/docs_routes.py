"""The API's documents: ``/schema/openapi.json`` and the interactive docs at ``/schema``.

The docs page's scripts are Swagger UI 5 (it reads OpenAPI 3.1) from the ``swagger-ui-py``
package, served from here: the page works with no internet (Litestar's own pages load their
scripts from CDNs).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgspec
import swagger_ui
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from services.gateway.apidoc import document

TITLE = "AeroVision"
VERSION = "1.0.0"
DESCRIPTION = (
    "Image and 3D surface matching (OpenCV) behind a REST API. Submit two files to a tool, get a "
    "task back at once, read it (or receive a signed webhook) until it is done. Every task's "
    "history is an event stream; see /schema/asyncapi.json where served."
)
_ASSETS = Path(swagger_ui.__file__).parent / "static"
_SERVED = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui-standalone-preset.js": "text/javascript",
           "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png"}
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>AeroVision API</title>
  <link rel="stylesheet" href="/schema/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/schema/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/schema/assets/swagger-ui-bundle.js"></script>
  <script src="/schema/assets/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/schema/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"
    });
  </script>
</body>
</html>
"""


@functools.cache
def _asset(name: str) -> bytes:
    return (_ASSETS / name).read_bytes()


def _openapi(request: Request) -> bytes:
    app = request.app
    cached: Any = app.state.get("openapi_json")
    if cached is None:
        routes = [(route.path, handler) for route in app.routes for handler in getattr(route, "route_handlers", [])]
        cached = msgspec.json.encode(document(routes, title=TITLE, version=VERSION, description=DESCRIPTION))
        app.state["openapi_json"] = cached
    return cached


@get(["/schema/openapi.json"], include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request) -> Response:
    return Response(content=_openapi(request), media_type="application/json")


@get(["/schema", "/schema/swagger"], include_in_schema=False, sync_to_thread=False)
def docs_page() -> Response:
    return Response(content=_PAGE, media_type="text/html")


@get("/schema/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def docs_asset(name: str) -> Response:
    media = _SERVED.get(name)
    if media is None:
        raise NotFoundException(detail="File not found")
    return Response(content=_asset(name), media_type=media, headers={"Cache-Control": "public, max-age=86400"})


DOCS_HANDLERS = [openapi_json, docs_page, docs_asset]
