"""Pure validation of submitted parameters against the tools' param structs.

Errors come out in the API's 422 shape (pydantic's wording, which the original clients parse).
Constraints are read from the struct types (``contracts.params``), never restated here.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Mapping

import msgspec
from msgspec import inspect as mi

from contracts.api import ErrorItem

Loc = tuple[str | int, ...]
_TRUE = {"true", "1", "yes", "on", "y", "t"}
# Numbers as JSON and HTML forms write them: ASCII digits only. Python's float() and int() also
# take "٣" (Arabic-Indic three), "0.8_5" and "١e٢"; a client sending those made a mistake.
_FLOAT_SYNTAX = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_MAX_NUMBER_CHARS = 64
_FALSE = {"false", "0", "no", "off", "n", "f"}


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _check_bounds(value: float, t: Any, loc: Loc, raw: Any) -> ErrorItem | None:
    if t.ge is not None and value < t.ge:
        return ErrorItem("value_error", list(loc), f"Input should be greater than or equal to {float(t.ge) if isinstance(t, mi.FloatType) else t.ge}", raw)
    if t.gt is not None and value <= t.gt:
        return ErrorItem("value_error", list(loc), f"Input should be greater than {float(t.gt) if isinstance(t, mi.FloatType) else t.gt}", raw)
    if t.le is not None and value > t.le:
        return ErrorItem("value_error", list(loc), f"Input should be less than or equal to {float(t.le) if isinstance(t, mi.FloatType) else t.le}", raw)
    if t.lt is not None and value >= t.lt:
        return ErrorItem("value_error", list(loc), f"Input should be less than {float(t.lt) if isinstance(t, mi.FloatType) else t.lt}", raw)
    return None


def choices(values: Any) -> str:
    """pydantic's wording of a choice: 'a', 'b' or 'c'."""
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _number_syntax(text: str) -> bool:
    return len(text) <= _MAX_NUMBER_CHARS and _FLOAT_SYNTAX.fullmatch(text) is not None


def coerce(raw: Any, t: Any, loc: Loc) -> tuple[Any, ErrorItem | None]:
    """Convert a form string (or a JSON value, in chain steps) to the field's type."""
    if isinstance(t, mi.Metadata):  # a described field: the description changes nothing here
        t = t.type
    if isinstance(t, mi.UnionType):  # an optional field: a given value is of its other type
        others = [member for member in t.types if not isinstance(member, mi.NoneType)]
        if len(others) == 1:
            t = others[0]
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(t, mi.BoolType):
        if isinstance(text, bool):
            return text, None
        if isinstance(text, str) and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE, None
        if isinstance(text, int) and text in (0, 1):
            return bool(text), None
        return None, ErrorItem("bool_parsing", list(loc), "Input should be a valid boolean, unable to interpret input", raw)
    if isinstance(t, mi.FloatType):
        try:
            if isinstance(text, bool) or (isinstance(text, str) and not _number_syntax(text)):
                raise ValueError
            value = float(text)
        except (TypeError, ValueError):
            return None, ErrorItem("float_parsing", list(loc), "Input should be a valid number, unable to parse string as a number", raw)
        if not math.isfinite(value):
            return None, ErrorItem("finite_number", list(loc), "Input should be a finite number", raw)
        return value, _check_bounds(value, t, loc, _num(value))
    if isinstance(t, mi.IntType):
        try:
            if isinstance(text, bool) or (isinstance(text, str) and not _number_syntax(text)):
                raise ValueError
            number = float(text) if isinstance(text, (str, int, float)) else math.nan
            if not number.is_integer():
                raise ValueError
            value = int(number)
        except (TypeError, ValueError, OverflowError):
            return None, ErrorItem("int_parsing", list(loc), "Input should be a valid integer, unable to parse string as an integer", raw)
        return value, _check_bounds(value, t, loc, value)
    if isinstance(t, mi.LiteralType):
        if text in t.values:
            return text, None
        return None, ErrorItem("enum", list(loc), f"Input should be {choices(t.values)}", raw)
    raise TypeError(f"unsupported parameter type {t!r}")


@functools.lru_cache(maxsize=None)
def _struct_info(cls: type[msgspec.Struct]) -> mi.StructType:
    # Resolving a struct's annotations costs ~0.1 ms: once per class, not once per request.
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info


def parse_params(
    cls: type[msgspec.Struct],
    given: Mapping[str, Any],
    defaults: msgspec.Struct,
    loc: Loc = ("body",),
    *,
    forbid_unknown: bool = False,
) -> tuple[msgspec.Struct | None, list[ErrorItem]]:
    """Resolve params: the given values, validated, over ``defaults`` (the tool's settings)."""
    info = _struct_info(cls)
    values: dict[str, Any] = {}
    errors: list[ErrorItem] = []
    known = set()
    for field in info.fields:
        known.add(field.name)
        if field.name not in given or given[field.name] in (None, ""):
            continue
        value, error = coerce(given[field.name], field.type, (*loc, field.name))
        if error is not None:
            errors.append(error)
        else:
            values[field.name] = value
    if forbid_unknown:
        for name in given:
            if name not in known:
                errors.append(ErrorItem("extra_forbidden", [*loc, name], "Extra inputs are not permitted", given[name]))
    if errors:
        return None, errors
    return msgspec.structs.replace(defaults, **values), []


def validate_settings(cls: type[msgspec.Struct], body: Any) -> tuple[msgspec.Struct | None, list[ErrorItem]]:
    """A full settings document (PUT /settings/{tool}): missing fields keep their defaults."""
    if not isinstance(body, dict):
        return None, [ErrorItem("dict_type", ["body"], "Input should be a valid dictionary", body)]
    return parse_params(cls, body, cls(), ("body",), forbid_unknown=True)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None, fallback: str) -> str:
    """A file name with no directory parts, no '..', only safe characters, at most 100 long."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._")
    base = re.sub(r"\.{2,}", ".", base)
    if not base:
        return fallback
    if len(base) > 100:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 100 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else base[:100]
    return base


def distinct_names(first: str, second: str) -> tuple[str, str]:
    """Two uploads with the same name must not overwrite each other."""
    if first != second:
        return first, second
    stem, dot, ext = second.rpartition(".")
    return first, (f"{stem}_2.{ext}" if dot and stem else f"{second}_2")
