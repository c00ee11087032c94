"""The REST API's OpenAPI 3.1 document, generated from the handlers and the contract types.

Litestar knows the routes. Each handler's return annotation (``Response[T]``) says what it answers,
and the ``RouteDoc`` it carries in ``opt`` says what it reads that Litestar does not parse for it:
a query string struct, a JSON body struct, a submission's multipart form (from the tool registry)
and the errors it can answer. Every schema comes from msgspec, the library that encodes and
decodes these types, so the document describes exactly what is on the wire; a base class that
stands for several shapes (``TaskView``, ``Event``) is documented as ``oneOf`` its concrete classes.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, Iterable

import msgspec
from litestar import Response
from litestar.handlers import HTTPRouteHandler

from contracts.api import ErrorBody, ValidationErrorBody
from contracts.events import CONCRETE_EVENTS, Event
from contracts.tools import IMAGE_FORMATS, STEP_SPECS, ChainParams, Tool
from contracts.view import CONCRETE_VIEWS, TaskView

REF = "#/components/schemas/{name}"
_ERRORS: dict[int, tuple[type, str]] = {
    404: (ErrorBody, "Not found: the task, tool, webhook or file does not exist"),
    409: (ErrorBody, "Conflict: the task has not finished yet"),
    410: (ErrorBody, "Gone: the file has expired (AEROVISION_FILES_TTL); its task still answers"),
    413: (ErrorBody, "The request body is larger than the limit"),
    422: (ValidationErrorBody, "Invalid parameters or files: every problem found, each with where it is"),
    429: (ErrorBody, "Too many uploads at once: retry after the Retry-After seconds"),
    503: (ErrorBody, "The message broker is unreachable: retry after the Retry-After seconds"),
}
# Base classes that stand for several wire shapes: documented as one of their concrete classes.
_VARIANTS: dict[type, tuple[type, ...]] = {TaskView: CONCRETE_VIEWS, Event: CONCRETE_EVENTS}
FILE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "application/octet-stream")
_IMAGE_TYPES = "image/png, image/jpeg, image/bmp, image/tiff"
# One Server-Sent Event of the stream (what a client's EventSource hands over).
_SSE_EVENT = {"type": "object", "properties": {
    "id": {"type": "string", "description": "the event's stream sequence: Last-Event-ID resumes after it"},
    "event": {"type": "string", "description": "the event's type, e.g. task.finished"},
    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"$ref": REF.format(name="Event")}},
    "retry": {"type": "integer"},
}}
_SSE = ("Server-Sent Events, until the client goes: each `id` is the event's stream sequence (send it back as "
        "Last-Event-ID to resume after it), `event` its type, `data` the event as stored (an Event).")


@dataclass(frozen=True)
class RouteDoc:
    """What a handler reads beyond its path, and which errors it answers."""

    errors: tuple[int, ...] = ()
    query: type | None = None  # a struct the handler parses from the query string
    json_body: type | None = None  # a struct the handler decodes from a JSON body
    closed_body: bool = False  # the JSON body's unknown fields are refused (not ignored)
    form: Tool | None = None  # a submission: the tool's multipart form
    files: bool = False  # it answers a stored file (binary), not JSON
    events: bool = False  # it answers a stream of Server-Sent Events
    description: str | None = None
    answer: Any = None  # the answer's type, for handlers made per tool (else their ``-> Response[T]``)


def _answer_type(handler: HTTPRouteHandler) -> Any:
    """The RouteDoc's ``answer``, or T of the handler's ``-> Response[T]`` (None for a bare Response or None)."""
    doc = handler.opt.get("doc")
    if doc is not None and doc.answer is not None:
        return doc.answer
    hint = typing.get_type_hints(handler.fn, include_extras=True).get("return")
    if typing.get_origin(hint) is Response:
        (inner,) = typing.get_args(hint)
        return inner
    return None if hint in (None, type(None), Response) else hint


def _path(handler_path: str) -> tuple[str, list[str]]:
    """The OpenAPI path of a Litestar path, and its parameters (``{uid:str}`` -> ``{uid}``)."""
    names = re.findall(r"{(\w+):\w+}", handler_path)
    return re.sub(r"{(\w+):\w+}", r"{\1}", handler_path), names


def _form_schema(tool: Tool, params_schema: dict[str, Any]) -> dict[str, Any]:
    """A submission's multipart form: the two files, then the params as form fields (sent as
    text, typed and bounded as the tool's params)."""
    properties: dict[str, Any] = {}
    for slot in tool.files:
        kind = IMAGE_FORMATS + " image" if slot.kind == "image" else "PLY point cloud (ascii or binary)"
        properties[slot.field] = {"type": "string", "format": "binary", "description": f"{slot.description}: {kind}"}
    required = [slot.field for slot in tool.files]
    if tool.params is ChainParams:
        properties["steps"] = {
            "type": "string", "contentMediaType": "application/json",
            "description": "a JSON array of 1 to 10 steps, each {\"tool\": ..., \"params\": {...}}; "
                           "params left out come from the tool's settings",
            "contentSchema": {"type": "array", "minItems": 1, "maxItems": 10,
                              "items": {"oneOf": [{"$ref": REF.format(name=s.__name__)} for s in STEP_SPECS.values()]}},
        }
        required.append("steps")
    else:
        properties.update(params_schema.get("properties", {}))
    return {
        "type": "object", "properties": properties, "required": required,
        "description": f"{tool.summary}. Params left out come from the tool's settings.",
    }


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        # An optional query parameter is absent, never null.
        options = [p for p in prop.pop("anyOf", []) if p.get("type") != "null"]
        if options:
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
        if prop.get("default", 0) is None:
            del prop["default"]
        parameter = {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _types_of(handlers: Iterable[HTTPRouteHandler]) -> list[Any]:
    types: list[Any] = [ErrorBody, ValidationErrorBody, *CONCRETE_VIEWS, *CONCRETE_EVENTS, *STEP_SPECS.values()]
    for handler in handlers:
        doc: RouteDoc = handler.opt.get("doc", RouteDoc())
        answer = _answer_type(handler)
        types += [t for t in (None if doc.files or doc.events else answer, doc.query, doc.json_body,
                              doc.form.params if doc.form else None) if t is not None]
    return list(dict.fromkeys(types))


def _schema(t: Any, by_type: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    return by_type[t]


def _typed_enums(node: Any) -> Any:
    """Say an enum's type where msgspec leaves it implicit (docs UIs show an untyped enum as "any")."""
    if isinstance(node, dict):
        node = {key: _typed_enums(value) for key, value in node.items()}
        values = node.get("enum")
        if values and "type" not in node:
            kinds = {"string" if isinstance(v, str) else "integer" if isinstance(v, int) else "number" for v in values}
            if len(kinds) == 1:
                node["type"] = kinds.pop()
        return node
    if isinstance(node, list):
        return [_typed_enums(item) for item in node]
    return node


def document(routes: list[tuple[str, HTTPRouteHandler]], *, title: str, version: str, description: str) -> dict[str, Any]:
    """The OpenAPI document of these (full path, route handler) pairs (those included in the schema)."""
    routes = [(path, h) for path, h in routes if h.include_in_schema]
    handlers = list(dict.fromkeys(h for _, h in routes))
    types = _types_of(handlers)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas))
    for base, variants in _VARIANTS.items():
        components[base.__name__] = {
            "oneOf": [{"$ref": REF.format(name=v.__name__)} for v in variants],
            "description": (base.__doc__ or "").strip().splitlines()[0],
        }
    paths: dict[str, dict[str, Any]] = {}
    for raw_path, handler in routes:
        doc: RouteDoc = handler.opt.get("doc", RouteDoc())
        answer = _answer_type(handler)
        path, path_params = _path(raw_path)
        for method in sorted(m.lower() for m in handler.http_methods if m not in ("HEAD", "OPTIONS")):
            operation: dict[str, Any] = {
                "operationId": handler.operation_id if isinstance(handler.operation_id, str) else handler.handler_name,
                "summary": handler.summary or handler.handler_name.replace("_", " ").capitalize(),
                "tags": sorted(handler.resolve_tags() or []),
                "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                               for name in path_params],
            }
            if doc.description:
                operation["description"] = doc.description
            if doc.query is not None:
                operation["parameters"] += _query_parameters(components[doc.query.__name__])
            if doc.form is not None:
                params = components.get(doc.form.params.__name__, {})
                encoding = {slot.field: {"contentType": _IMAGE_TYPES if slot.kind == "image" else "application/octet-stream"}
                            for slot in doc.form.files}
                operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {
                    "schema": _form_schema(doc.form, params), "encoding": encoding}}}
            elif doc.json_body is not None:
                body = dict(_schema(doc.json_body, by_type))
                if doc.closed_body:  # the handler refuses fields it does not know
                    body = {**components[doc.json_body.__name__], "additionalProperties": False}
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            status = str(handler.status_code)
            if handler.status_code == 204:
                success: dict[str, Any] = {"description": "Done; no content"}
            elif doc.files:
                success = {"description": "The file", "content": {
                    media: {"schema": {"type": "string", "format": "binary"}} for media in FILE_TYPES}}
            elif doc.events:
                success = {"description": _SSE, "content": {"text/event-stream": {"schema": _SSE_EVENT}}}
            else:
                success = {"description": "Success", "content": {"application/json": {"schema": _schema(answer, by_type)}}}
            responses = {status: success}
            for code in sorted({*doc.errors, 503}):
                shape, text = _ERRORS[code]
                responses[str(code)] = {"description": text, "content": {"application/json": {"schema": _schema(shape, by_type)}}}
            operation["responses"] = responses
            paths.setdefault(path, {})[method] = operation
    return _typed_enums({
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": components},
    })
