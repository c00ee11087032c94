"""Webhook bodies that survive ``JSON.stringify(JSON.parse(body))`` byte for byte.

The original's Express receiver signs ``JSON.stringify(req.body)``, not the bytes it received, so
the body must already be what JavaScript would print: numbers and strings follow RFC 8785 (the
ECMAScript rules: ``1.0`` → ``1``, ``1e-7``, shortest round-trip digits, only the escapes JSON
requires), and object keys stay in the order a JavaScript object keeps them — integer-like keys
first in numeric order, then the others as written (RFC 8785's sorted keys would not round-trip
``"10"`` before ``"2"``). Integers beyond 2**53 are written as the double JavaScript reads them
(so ``2**60 + 1`` is sent as ``1152921504606847000``), and non-finite numbers as ``null``, as
``JSON.stringify`` does.
"""

from __future__ import annotations

import math
import re
from typing import Any

import rfc8785

_SAFE_INTEGER = 2**53 - 1
_ARRAY_INDEX_LIMIT = 2**32 - 1  # JavaScript orders keys "0" .. "4294967294" first
_PLAIN = re.compile(r'^[\x20-\x21\x23-\x5b\x5d-\x7e]*$')  # printable ASCII without " and \


def _string(value: str) -> bytes:
    if _PLAIN.match(value):
        return b'"' + value.encode("ascii") + b'"'
    return rfc8785.dumps(value)


def _number(value: float) -> bytes:
    if math.isnan(value) or math.isinf(value):
        return b"null"
    return rfc8785.dumps(value)


def _integer(value: int) -> bytes:
    if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return str(value).encode()
    try:
        return _number(float(value))
    except OverflowError:  # JavaScript reads it as Infinity, and prints that as null
        return b"null"


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < _ARRAY_INDEX_LIMIT


def _ordered_keys(obj: dict[str, Any]) -> list[str]:
    indices = sorted((k for k in obj if _is_array_index(k)), key=int)
    if not indices:
        return list(obj)
    return indices + [k for k in obj if not _is_array_index(k)]


def _write(value: Any, out: list[bytes]) -> None:
    if value is None or value is True or value is False:
        out.append(b"null" if value is None else b"true" if value else b"false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(_integer(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        out.append(b"{")
        for i, key in enumerate(_ordered_keys(value)):
            if i:
                out.append(b",")
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            out.append(_string(key))
            out.append(b":")
            _write(value[key], out)
        out.append(b"}")
    elif isinstance(value, (list, tuple)):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _write(item, out)
        out.append(b"]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """``value`` (JSON builtins) as the bytes ``JSON.stringify(JSON.parse(...))`` gives back."""
    out: list[bytes] = []
    _write(value, out)
    return b"".join(out)
