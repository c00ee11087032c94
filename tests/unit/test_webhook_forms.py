"""Webhook registration checks: every problem reported at once, bounded, before any NATS call."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from contracts.api import PageQuery, WebhookIn
from services.gateway.errors import bounded_input
from services.gateway.forms import parse_params
from services.gateway.paths import is_task_uid, is_webhook_id
from services.gateway.webhook_forms import validate_registration


def _errors(body: bytes | dict, allow_private: bool = True) -> list[tuple[str, list, object]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    accepted, errors = validate_registration(raw, allow_private)
    assert accepted is None
    return [(e.type, e.loc, e.input) for e in errors]


def test_a_good_registration():
    accepted, errors = validate_registration(b'{"url": "https://your-server.com/callback", "secret": "my-secret-key"}', True)
    assert errors == [] and accepted == WebhookIn(url="https://your-server.com/callback", secret="my-secret-key")
    accepted, _ = validate_registration(b'{"url": "http://localhost:9/x", "secret": "", "extra": 1}', True)
    assert accepted == WebhookIn(url="http://localhost:9/x", secret=None)


@pytest.mark.parametrize("size", [700_000, 2 * 1024 * 1024])
def test_huge_url_and_secret_are_refused_fast_with_a_bounded_echo(size):
    body = json.dumps({"url": "https://example.com/" + "a" * size, "secret": "s" * size}).encode()
    started = time.perf_counter()
    errors = _errors(body)
    assert time.perf_counter() - started < 0.5
    assert [(t, loc) for t, loc, _ in errors] == [("string_too_long", ["body", "url"]), ("string_too_long", ["body", "secret"])]
    # What the 422 shows of them is bounded where every 422 is (errors.py).
    assert all(len(bounded_input(echo)) <= 201 for _, _, echo in errors)


def test_missing_wrong_types_and_bad_json():
    assert _errors({"secret": "x"}) == [("missing", ["body", "url"], None)]
    assert _errors({"url": None}) == [("string_type", ["body", "url"], None)]
    assert _errors({"url": 5, "secret": ["a"]}) == [("string_type", ["body", "url"], 5), ("string_type", ["body", "secret"], ["a"])]
    assert _errors(b"[1, 2]")[0][:2] == ("model_attributes_type", ["body"])
    assert _errors(b"{")[0][:2] == ("json_invalid", ["body"])
    assert _errors(b"")[0][:2] == ("json_invalid", ["body"])
    assert _errors({"url": "ftp://x"}) == [("url_scheme", ["body", "url"], "ftp://x")]


def test_deeply_nested_json_is_a_422_not_a_crash():
    deep = b'{"url": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _errors(deep)[0][0] == "json_invalid"
    assert _errors(b"[" * 100_000 + b"]" * 100_000)[0][0] == "model_attributes_type"  # refused at the first "["


def test_refused_targets():
    assert _errors({"url": "http://169.254.169.254/latest/meta-data/"})[0][:2] == ("value_error", ["body", "url"])
    assert _errors({"url": "http://127.0.0.1:8080/"}, allow_private=False)[0][0] == "value_error"


def test_echoes_are_bounded():
    assert bounded_input("x" * 1000) == "x" * 200 + "…"
    assert len(bounded_input(list(range(1000)))) <= 201 and bounded_input([1, 2]) == [1, 2]
    assert bounded_input(True) is True and bounded_input(1.5) == 1.5 and bounded_input(b"\0" * 10) == "<10 bytes>"


def test_ids_and_queries():
    assert is_webhook_id("wh_0123456789abcdef")
    for bad in ("wh_nope", "wh_0123456789ABCDEF", "x" * 5000, "wh_0123456789abcdef\n", "wh_0123456789abcde.", "*", ">"):
        assert not is_webhook_id(bad)
    assert is_task_uid("d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f") and not is_task_uid("d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f\n")
    def page(**query):
        return parse_params(PageQuery, query, PageQuery(), ("query",))
    assert page() == (PageQuery(offset=0, limit=50), [])
    assert page(limit="200") == (PageQuery(offset=0, limit=200), [])
    assert page(limit="201")[1][0].type == "value_error"
    assert page(limit="٣")[1][0].type == "int_parsing"
    assert page(offset="9" * 5000)[1][0].type == "int_parsing"


def test_the_contract_constraints_match_the_checks():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "h" * 2049}, WebhookIn)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "http://x", "secret": "s" * 513}, WebhookIn)
