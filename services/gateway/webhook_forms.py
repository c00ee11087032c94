"""Pure checks of webhook requests: the registration body, path ids, paging queries.

Everything here runs before any NATS call: a bad value is answered with a 422 (or 404 for an id
that cannot exist) whose ``input`` is bounded, never echoed whole.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from contracts.api import WEBHOOK_ID_PATTERN, WEBHOOK_SECRET_MAX_LENGTH, ErrorItem, WebhookIn
from contracts.webhook_targets import url_problem

# fullmatch: a pattern's "$" also matches before a final newline ("wh_...\n" would pass).
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN.lstrip("^").rstrip("$"))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
INPUT_ECHO_CHARS = 100  # how much of a bad value a 422 shows


class _Body(msgspec.Struct):
    """The registration's fields as raw JSON, so each is judged (and reported) on its own."""

    url: msgspec.Raw = msgspec.Raw(b"")
    secret: msgspec.Raw = msgspec.Raw(b"null")


def bounded(value: Any) -> Any:
    """A bad value as a 422 may echo it: long strings cut, containers only when small."""
    if isinstance(value, str):
        return value if len(value) <= INPUT_ECHO_CHARS else value[:INPUT_ECHO_CHARS] + "..."
    if isinstance(value, (dict, list)):
        return value if len(msgspec.json.encode(value)) <= INPUT_ECHO_CHARS else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**INPUT_ECHO_CHARS:
        return None
    return value


def _decode_body(body: bytes) -> tuple[_Body | None, list[ErrorItem]]:
    try:
        return msgspec.json.decode(body, type=_Body), []
    except msgspec.ValidationError:
        return None, [ErrorItem("model_attributes_type", ["body"],
                                "Input should be a valid dictionary or object to extract fields from", None)]
    except (msgspec.DecodeError, RecursionError):
        return None, [ErrorItem("json_invalid", ["body"], "Invalid JSON (malformed, or nested too deeply)", None)]


def _string_field(raw: msgspec.Raw, name: str) -> tuple[str | None, ErrorItem | None]:
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None, ErrorItem("json_invalid", ["body", name], "Invalid JSON (nested too deeply)", None)
    if value is None or isinstance(value, str):
        return value, None
    return None, ErrorItem("string_type", ["body", name], "Input should be a valid string", bounded(value))


def validate_registration(body: bytes, allow_private: bool) -> tuple[WebhookIn | None, list[ErrorItem]]:
    """The registration, or every error found in it (pydantic's types and wording)."""
    fields, errors = _decode_body(body)
    if fields is None:
        return None, errors
    url, secret = None, None
    if not bytes(fields.url):
        errors.append(ErrorItem("missing", ["body", "url"], "Field required", None))
    else:
        url, error = _string_field(fields.url, "url")
        if error is not None:
            errors.append(error)
        elif url is None:
            errors.append(ErrorItem("string_type", ["body", "url"], "Input should be a valid string", None))
        elif (problem := url_problem(url, allow_private)) is not None:
            errors.append(ErrorItem(problem[0], ["body", "url"], problem[1], bounded(url)))
    secret, error = _string_field(fields.secret, "secret")
    if error is not None:
        errors.append(error)
    elif secret is not None and len(secret) > WEBHOOK_SECRET_MAX_LENGTH:
        errors.append(ErrorItem("string_too_long", ["body", "secret"],
                                f"String should have at most {WEBHOOK_SECRET_MAX_LENGTH} characters", bounded(secret)))
    if errors or url is None:
        return None, errors
    # The contract's own constraints, as a last guard (the checks above report them better).
    return msgspec.convert({"url": url, "secret": secret or None}, WebhookIn), []


def is_webhook_id(value: str) -> bool:
    return _WEBHOOK_ID.fullmatch(value) is not None


def is_task_uid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def query_int(raw: str | None, name: str, default: int, lo: int, hi: int | None) -> tuple[int, ErrorItem | None]:
    """An integer query parameter within [lo, hi], or the error to report."""
    if raw is None or raw == "":
        return default, None
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 12:
        return default, ErrorItem("int_parsing", ["query", name],
                                  "Input should be a valid integer, unable to parse string as an integer", bounded(raw))
    value = int(raw)
    if value < lo:
        return default, ErrorItem("value_error", ["query", name], f"Input should be greater than or equal to {lo}", value)
    if hi is not None and value > hi:
        return default, ErrorItem("value_error", ["query", name], f"Input should be less than or equal to {hi}", value)
    return value, None
