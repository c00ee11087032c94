"""Validation of one submission (files and fields), pure: it returns what to store or the errors."""

from __future__ import annotations

from typing import Any, Mapping

import msgspec

from contracts.api import ErrorItem
from contracts.params import FILE_FIELDS, PARAMS_BY_TOOL
from services.gateway.errors import InvalidRequest
from services.gateway.forms import distinct_names, parse_params, safe_filename
from services.gateway.imageinfo import ImageInfo, sniff_image

IMAGE_FORMATS = "PNG, JPEG, BMP or TIFF"


class Upload(msgspec.Struct, frozen=True):
    field: str
    filename: str | None
    data: bytes


class Accepted(msgspec.Struct, frozen=True):
    params: dict[str, Any]
    files: list[tuple[str, bytes]]  # (safe name, bytes), in the tool's field order
    images: bool


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


_EXTENSIONS = {"png": (".png",), "jpeg": (".jpg", ".jpeg", ".jpe"), "bmp": (".bmp", ".dib"), "tiff": (".tif", ".tiff")}


def _name_for(upload: Upload, info: ImageInfo | None) -> str:
    """A safe name whose extension tells the file's real format (downloads get the right type)."""
    fallback = upload.field + (_EXTENSIONS[info.format][0] if info else ".ply")
    name = safe_filename(upload.filename, fallback)
    if info is not None and not name.lower().endswith(_EXTENSIONS[info.format]):
        name = f"{name}{_EXTENSIONS[info.format][0]}"
    return name


def validate_submission(
    tool: str,
    fields: Mapping[str, Any],
    uploads: Mapping[str, Upload | str | None],
    defaults: msgspec.Struct,
    *,
    max_pixels: int,
) -> Accepted:
    """The resolved params and safe file names, or ``InvalidRequest`` with every error found."""
    errors: list[ErrorItem] = []
    checked: list[Upload] = []
    infos: dict[str, ImageInfo] = {}
    for field in FILE_FIELDS[tool]:
        upload = uploads.get(field)
        if upload is None:
            errors.append(ErrorItem("missing", ["body", field], "Field required", None))
            continue
        if not isinstance(upload, Upload):
            errors.append(ErrorItem("value_error", ["body", field], "Expected an uploaded file", upload))
            continue
        checked.append(upload)
        if tool != "surface":
            info, error = _check_image(upload, max_pixels)
            if error is not None:
                errors.append(error)
            elif info is not None:
                infos[field] = info
    params, param_errors = parse_params(PARAMS_BY_TOOL[tool], fields, defaults)
    errors.extend(param_errors)
    if tool == "template" and len(infos) == 2:
        image, template = infos["image"], infos["template"]
        if template.width > image.width or template.height > image.height:
            errors.append(ErrorItem(
                "value_error", ["body", "template"],
                f"The template ({template.width}×{template.height}) is larger than the image "
                f"({image.width}×{image.height})",
                uploads["template"].filename,  # type: ignore[union-attr]
            ))
    if errors:
        raise InvalidRequest(errors)
    first, second = checked
    names = distinct_names(_name_for(first, infos.get(first.field)), _name_for(second, infos.get(second.field)))
    return Accepted(
        params=msgspec.to_builtins(params),
        files=[(names[0], first.data), (names[1], second.data)],
        images=tool != "surface",
    )
