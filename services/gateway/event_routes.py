"""HTTP routes of the event stream: its AsyncAPI document, and (for browsers and HTTP-only
clients) its events as Server-Sent Events. Kept apart from the task routes (routes.py)."""

from __future__ import annotations

from litestar import Response, get

from services.gateway.asyncapi import document_json


@get("/schema/asyncapi.json", include_in_schema=False, sync_to_thread=False)
def asyncapi_document() -> Response:
    """The AsyncAPI 3.0 document of the event stream (docs/asyncapi.json)."""
    return Response(content=_DOCUMENT, media_type="application/json")


_DOCUMENT = document_json()  # pure and fixed for a build: made once, at import

EVENT_HANDLERS = [asyncapi_document]
