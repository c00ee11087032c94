"""The stream's documents are the code's: docs/asyncapi.json is a valid AsyncAPI 3.0 document
generated from contracts, and its schemas accept exactly what producers write."""

from __future__ import annotations

import json
import re

import jsonschema
import msgspec
import pytest

from aerovision import eventdocs
from contracts.events import encode_event, message_id_of
from services.gateway.asyncapi import document_json
from tests.harness import DATA
from tests.unit.test_versioning import _every_shape


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(document_json())


def test_the_documents_in_docs_are_what_the_code_generates():
    assert eventdocs.stale() == [], "run: python -m aerovision.eventdocs"


def test_the_document_is_valid_asyncapi_3(doc):
    meta = json.loads((DATA / "asyncapi-3.0.0.schema.json").read_text())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in jsonschema.Draft7Validator(meta).iter_errors(doc)]
    assert errors == []
    assert doc["channels"]["event"]["address"] == "aerovision.events.{kind}.{tool}.{uid}"
    assert {c["address"] for c in doc["channels"].values()} >= {
        "aerovision.events.*.*.{uid}", "aerovision.events.finished.>", "aerovision.events.submitted.{tool}.*",
        "aerovision.events.{kind}.>"}


def _validator(doc: dict, message: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{message}", "components": doc["components"]})


@pytest.mark.parametrize("event", _every_shape(), ids=lambda e: type(e).__name__)
def test_each_message_schema_accepts_what_producers_write(doc, event):
    name = type(event).__name__
    payload = msgspec.json.decode(encode_event(event))
    _validator(doc, name).validate(payload)
    headers = doc["components"]["messages"][name]["headers"]
    assert headers["properties"]["ce-type"]["const"].startswith("io.aerovision." + payload["type"])
    del payload["event_id"]  # the envelope is required, whatever the constructors default
    with pytest.raises(jsonschema.ValidationError, match="event_id"):
        _validator(doc, name).validate(payload)


@pytest.mark.parametrize("event", _every_shape(), ids=lambda e: type(e).__name__)
def test_the_documented_message_ids_are_the_ones_published(event):
    pattern = eventdocs.MESSAGE_IDS[event.__struct_config__.tag]
    regex = re.escape(pattern).replace(re.escape("<uid>"), re.escape(event.uid))
    regex = re.sub(r"<[a-z_]+>", r"[^.]+", regex.replace("\\<", "<").replace("\\>", ">"))
    assert re.fullmatch(regex, message_id_of(event)), (pattern, message_id_of(event))
