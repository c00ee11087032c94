"""Pure checks of a webhook registration body, before any NATS call.

A bad value is answered with a 422; its ``input`` is bounded by the 422 handler (errors.py), as
every 422's is.
"""

from __future__ import annotations

import msgspec

from contracts.api import WEBHOOK_SECRET_MAX_LENGTH, ErrorItem, WebhookIn
from contracts.webhook_targets import url_problem


class _Body(msgspec.Struct):
    """The registration's fields as raw JSON, so each is judged (and reported) on its own."""

    url: msgspec.Raw = msgspec.Raw(b"")
    secret: msgspec.Raw = msgspec.Raw(b"null")


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
    return None, ErrorItem("string_type", ["body", name], "Input should be a valid string", value)


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
            errors.append(ErrorItem(problem[0], ["body", "url"], problem[1], url))
    secret, error = _string_field(fields.secret, "secret")
    if error is not None:
        errors.append(error)
    elif secret is not None and len(secret) > WEBHOOK_SECRET_MAX_LENGTH:
        errors.append(ErrorItem("string_too_long", ["body", "secret"],
                                f"String should have at most {WEBHOOK_SECRET_MAX_LENGTH} characters", secret))
    if errors or url is None:
        return None, errors
    # The contract's own constraints, as a last guard (the checks above report them better).
    return msgspec.convert({"url": url, "secret": secret or None}, WebhookIn), []
