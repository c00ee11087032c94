"""Validation of one submission (files and fields), pure: it returns what to store or the errors.

Everything tool-specific comes from the registry (``contracts.tools``): which fields carry the
files and what they must hold, the params and their ranges, and for a chain which tools may be
steps. Every error found is reported at once, in the API's 422 shape.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import msgspec

from contracts.api import ErrorItem
from contracts.tools import (
    IMAGE_FORMATS,
    MAX_CHAIN_STEPS,
    STEP_SPECS,
    TEMPLATE,
    TOOLS,
    ChainParams,
    FileKind,
    Tool,
    file_kind,
    step_tools,
)
from infra.ply import PlyError, read_header
from services.gateway.errors import InvalidRequest
from services.gateway.forms import choices, distinct_names, parse_params, safe_filename
from services.gateway.imageinfo import ImageInfo, sniff_image

Defaults = Callable[[str], msgspec.Struct]  # a tool's current settings


class Upload(msgspec.Struct, frozen=True):
    field: str
    filename: str | None
    data: bytes


class Accepted(msgspec.Struct, frozen=True):
    params: msgspec.Struct  # the tool's params, resolved
    files: list[tuple[str, bytes]]  # (safe name, bytes), in the tool's field order
    images: bool  # both files are images (they get thumbnails)


def _check_image(upload: Upload, max_pixels: int) -> tuple[ImageInfo | None, ErrorItem | None]:
    loc = ["body", upload.field]
    if not upload.data:
        return None, ErrorItem("value_error", loc, "The uploaded file is empty", upload.filename)
    info = sniff_image(upload.data)
    if info is None:
        return None, ErrorItem("value_error", loc, f"The file is not a {IMAGE_FORMATS} image", upload.filename)
    if info.width * info.height > max_pixels:
        return None, ErrorItem(
            "value_error", loc,
            f"The image is {info.width}×{info.height}: more than the limit of {max_pixels} pixels",
            upload.filename,
        )
    return info, None


def _check_point_cloud(upload: Upload) -> ErrorItem | None:
    """What the PLY header shows is checked here (format, counts, properties: infra/ply.py);
    the values themselves are checked by the matcher, which reads the whole file."""
    loc = ["body", upload.field]
    if not upload.data:
        return ErrorItem("value_error", loc, "The uploaded file is empty", upload.filename)
    try:
        read_header(upload.data)
    except PlyError as exc:
        return ErrorItem("value_error", loc, str(exc), upload.filename)
    return None


_EXTENSIONS = {"png": (".png",), "jpeg": (".jpg", ".jpeg", ".jpe"), "bmp": (".bmp", ".dib"), "tiff": (".tif", ".tiff")}


def _name_for(upload: Upload, info: ImageInfo | None, kind: FileKind) -> str:
    """A safe name whose extension tells the file's real format (downloads get the right type)."""
    ext = _EXTENSIONS[info.format][0] if info else ".ply" if kind == "point_cloud" else ".bin"
    name = safe_filename(upload.filename, upload.field + ext)
    if info is not None and not name.lower().endswith(_EXTENSIONS[info.format]):
        name = f"{name}{_EXTENSIONS[info.format][0]}"
    elif kind == "point_cloud" and not name.lower().endswith(".ply"):
        name = f"{name}.ply"
    return name


def _steps(raw: Any, defaults: Defaults) -> tuple[ChainParams | None, list[ErrorItem]]:
    """A chain's ``steps`` field (a JSON array of {"tool", "params"}), each step validated like
    its tool's own form fields, with the step's index in ``loc``."""
    loc = ("body", "steps")
    if raw is None or raw == "":
        return None, [ErrorItem("missing", list(loc), "Field required", None)]
    if not isinstance(raw, str):
        return None, [ErrorItem("value_error", list(loc), "Expected a JSON array of steps", raw)]
    try:
        # Typed to one level: a step's params are flat, so nesting is refused, not recursed into.
        steps = msgspec.json.decode(raw, type=list[dict[str, str | dict[str, str | int | float | bool | None]]])
    except msgspec.ValidationError:
        return None, [ErrorItem("value_error", list(loc),
                                'Expected a JSON array of {"tool": ..., "params": {...}} objects', raw)]
    except msgspec.DecodeError:
        return None, [ErrorItem("json_invalid", list(loc), "Invalid JSON", raw)]
    if not 1 <= len(steps) <= MAX_CHAIN_STEPS:
        kind, msg = ("too_short", "should have at least 1 item") if not steps else ("too_long", f"should have at most {MAX_CHAIN_STEPS} items")
        return None, [ErrorItem(kind, list(loc), f"List {msg} after validation, not {len(steps)}", len(steps))]
    errors: list[ErrorItem] = []
    specs = []
    for index, step in enumerate(steps):
        at = (*loc, index)
        for key in step:
            if key not in ("tool", "params"):
                errors.append(ErrorItem("extra_forbidden", [*at, key], "Extra inputs are not permitted", step[key]))
        name = step.get("tool")
        if name is None:
            errors.append(ErrorItem("missing", [*at, "tool"], "Field required", None))
            continue
        if not isinstance(name, str) or name not in STEP_SPECS:
            errors.append(ErrorItem("enum", [*at, "tool"], f"Input should be {choices(list(STEP_SPECS))}", name))
            continue
        given = step.get("params", {})
        if not isinstance(given, dict):
            errors.append(ErrorItem("dict_type", [*at, "params"], "Input should be a valid dictionary", given))
            continue
        params, step_errors = parse_params(TOOLS[name].params, given, defaults(name), (*at, "params"), forbid_unknown=True)
        errors.extend(step_errors)
        if params is not None:
            specs.append(STEP_SPECS[name](params=params))
    if errors:
        return None, errors
    return ChainParams(steps=specs), []


def _params(tool: Tool, fields: Mapping[str, Any], defaults: Defaults) -> tuple[msgspec.Struct | None, list[ErrorItem]]:
    if tool.params is ChainParams:
        chain, errors = _steps(fields.get("steps"), defaults)
        if chain is not None and file_kind(tool, chain) is None:
            kinds = ", ".join(f"step {i} ({t.name}) takes {t.files[0].kind.replace('_', ' ')}s"
                              for i, t in enumerate(step_tools(chain), start=1))
            return None, [ErrorItem("value_error", ["body", "steps"],
                                    f"A chain's steps must all take the same kind of file: {kinds}", None)]
        return chain, errors
    return parse_params(tool.params, fields, defaults(tool.name))


def validate_submission(
    tool: Tool,
    fields: Mapping[str, Any],
    uploads: Mapping[str, Upload | str | None],
    defaults: Defaults,
    *,
    max_pixels: int,
) -> Accepted:
    """The resolved params and safe file names, or ``InvalidRequest`` with every error found."""
    params, errors = _params(tool, fields, defaults)
    kind: FileKind = (file_kind(tool, params) if params is not None else None) or tool.files[0].kind
    checked: list[Upload] = []
    infos: dict[str, ImageInfo] = {}
    for slot in tool.files:
        upload = uploads.get(slot.field)
        if upload is None:
            errors.append(ErrorItem("missing", ["body", slot.field], "Field required", None))
            continue
        if not isinstance(upload, Upload):
            errors.append(ErrorItem("value_error", ["body", slot.field], "Expected an uploaded file", upload))
            continue
        checked.append(upload)
        if kind == "image":
            info, error = _check_image(upload, max_pixels)
            if info is not None:
                infos[slot.field] = info
        else:
            error = _check_point_cloud(upload)
        if error is not None:
            errors.append(error)
    if tool is TEMPLATE and len(infos) == 2:
        image, template = infos["image"], infos["template"]
        if template.width > image.width or template.height > image.height:
            errors.append(ErrorItem(
                "value_error", ["body", "template"],
                f"The template ({template.width}×{template.height}) is larger than the image "
                f"({image.width}×{image.height})",
                uploads["template"].filename,  # type: ignore[union-attr]
            ))
    # The order a client reads them in: files first, as the form lists them, then the fields.
    errors.sort(key=lambda e: 0 if e.loc[1:2] and e.loc[1] in {s.field for s in tool.files} else 1)
    if errors or params is None:
        raise InvalidRequest(errors)
    first, second = checked
    names = distinct_names(_name_for(first, infos.get(first.field), kind), _name_for(second, infos.get(second.field), kind))
    return Accepted(params=params, files=[(names[0], first.data), (names[1], second.data)], images=kind == "image")
