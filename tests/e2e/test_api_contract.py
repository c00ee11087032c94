"""The REST contract as clients meet it: the OpenAPI document describes every route and field,
the docs pages work offline in a real browser, schemathesis finds nothing, and what wraps every
request (ids, OPTIONS) holds on every route, the fast status read included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.tools import TOOLS
from contracts.view import CONCRETE_VIEWS
from tests.harness import Api, free_port, start_up
from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def openapi(system) -> dict:
    response = system.http.get(f"{system.base}/schema/openapi.json", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


def test_every_route_is_documented_with_its_answers(api, openapi):
    paths = openapi["paths"]
    expected = {f"/api/v1/match/{tool}" for tool in TOOLS} | {
        f"/api/v1/settings/{tool}" for tool, spec in TOOLS.items() if spec.has_settings} | {
        "/healthz", "/api/v1/tasks", "/api/v1/tasks/{uid}", "/api/v1/tasks/{uid}/events", "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}", "/api/v1/webhooks/{webhook_id}/deliveries",
        "/api/v1/webhooks/{webhook_id}/deliveries/{uid}/resend", "/uploads/{path}", "/thumbnails/{path}", "/results/{path}"}
    assert expected <= set(paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), (method, path)
            assert "400" not in responses  # the API answers bad input with 422, in its own shape
            if "422" in responses:
                assert responses["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ValidationErrorBody"}
    error_item = openapi["components"]["schemas"]["ErrorItem"]
    assert set(error_item["properties"]) == {"type", "loc", "msg", "input"}
    # A task is one of the concrete views: which one its tool and status say.
    task = paths["/api/v1/tasks/{uid}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert task == {"$ref": "#/components/schemas/TaskView"}
    variants = {ref["$ref"].rsplit("/", 1)[-1] for ref in openapi["components"]["schemas"]["TaskView"]["oneOf"]}
    assert variants == {cls.__name__ for cls in CONCRETE_VIEWS}
    done = openapi["components"]["schemas"]["FeatureViewDone"]["properties"]
    assert done["status"] == {"enum": ["done"], "type": "string"} and done["result_data"] == {"$ref": "#/components/schemas/FeatureResult"}


def test_a_submission_documents_every_field_with_type_range_and_default(openapi):
    form = openapi["paths"]["/api/v1/match/template"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image", "template"]
    fields = form["properties"]
    assert fields["image"]["format"] == "binary" and fields["template"]["format"] == "binary"
    assert fields["threshold"] == {"type": "number", "minimum": 0.1, "maximum": 1.0, "default": 0.8}
    assert fields["max_results"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}
    assert fields["use_grayscale"] == {"type": "boolean", "default": True}
    assert fields["method"]["type"] == "string" and set(fields["method"]["enum"]) >= {"TM_CCOEFF_NORMED", "TM_SQDIFF"}
    feature = openapi["paths"]["/api/v1/match/feature"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert feature["properties"]["ratio_threshold"]["maximum"] == 1.0 and feature["required"] == ["query_image", "train_image"]
    chain = openapi["paths"]["/api/v1/match/chain"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert chain["required"] == ["image", "template", "steps"]
    steps = chain["properties"]["steps"]
    assert steps["contentMediaType"] == "application/json" and steps["contentSchema"]["maxItems"] == 10
    listing = {p["name"]: p for p in openapi["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    assert listing["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert set(listing["status"]["schema"]["enum"]) == {"queued", "processing", "done", "error"}
    assert listing["status"]["schema"]["type"] == "string"
    settings = openapi["paths"]["/api/v1/settings/template"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert settings["additionalProperties"] is False and settings["properties"]["threshold"]["minimum"] == 0.1


def test_the_docs_page_uses_only_its_own_assets(api):
    page = api.http.get(f"{api.base}/schema", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    for asset, media in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        response = api.http.get(f"{api.base}/schema/assets/{asset}", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert len(response.content) > 100_000
    assert api.http.get(f"{api.base}/schema/assets/index.j2", timeout=30).status_code == 404


def test_the_docs_page_renders_in_a_browser_with_no_internet(api, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page()

            def only_local(route) -> None:
                if route.request.url.startswith(api.base):
                    route.continue_()
                else:  # no internet: anything else fails, as it would offline
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(f"{api.base}/schema", wait_until="load")
            page.wait_for_selector("#operations-submissions-submit_template", timeout=30_000)
            operations = page.locator(".opblock").count()
            page.click("#operations-submissions-submit_template .opblock-summary")
            page.wait_for_selector("#operations-submissions-submit_template .opblock-section-request-body",
                                   timeout=10_000)
            form = page.inner_text("#operations-submissions-submit_template")
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()
    assert outside == []
    assert operations >= 20
    for field in ("image", "template", "threshold", "max_results", "use_grayscale"):
        assert field in form


def test_ids_and_options_hold_on_every_route_the_fast_read_included(api):
    template = textured_template()
    uid = api.submit_template(encode(scene_with_pastes(template)), encode(template)).json()["uid"]
    api.wait_done(uid)
    fast = api.http.get(f"{api.base}/api/v1/tasks/{uid}", headers={"X-Request-ID": "client-42"}, timeout=10)
    assert fast.headers["x-request-id"] == "client-42"
    slow = api.http.get(f"{api.base}/api/v1/tasks", timeout=10)
    assert len(slow.headers["x-request-id"]) > 8
    weird = api.http.get(f"{api.base}/healthz", headers={"X-Request-ID": "bad id\twith spaces"}, timeout=10)
    assert weird.headers["x-request-id"] != "bad id\twith spaces"  # replaced, never echoed
    for path, methods in {"/api/v1/settings/feature": "GET, OPTIONS, PUT", "/api/v1/webhooks": "GET, OPTIONS, POST",
                          f"/api/v1/tasks/{uid}": "GET, OPTIONS", "/api/v1/match/template": "OPTIONS, POST"}.items():
        response = api.http.options(f"{api.base}{path}", timeout=10)
        assert (response.status_code, response.headers["allow"]) == (204, methods), path
    # No CORS unless configured: a page on another site cannot read a local gateway's tasks.
    assert "access-control-allow-origin" not in api.http.get(f"{api.base}/healthz", headers={"Origin": "https://evil.example"}).headers


@pytest.fixture(scope="module")
def fuzzed_system(tmp_path_factory):
    """A system of its own: the fuzzer changes settings and registers webhooks."""
    root = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    up = start_up(root / "data", port, root / "up.log", AEROVISION_MAX_UPLOAD_MB="4",
                  AEROVISION_CORS_ORIGINS="https://app.example")
    yield Api(f"http://127.0.0.1:{port}"), root
    assert up.stop() == 0


def test_cors_answers_configured_origins_only(fuzzed_system):
    api, _ = fuzzed_system
    preflight = api.http.options(f"{api.base}/api/v1/match/template", timeout=10, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    read = api.http.get(f"{api.base}/healthz", headers={"Origin": "https://app.example"}, timeout=10)
    assert read.headers["access-control-allow-origin"] == "https://app.example"
    other = api.http.get(f"{api.base}/healthz", headers={"Origin": "https://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in other.headers


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(fuzzed_system):
    api, root = fuzzed_system
    # Every check on what the server answers. Left out: the two that judge which requests it
    # should accept, since an image field's bytes must also be an image (no schema says that),
    # and booleans are also read from 0/1/yes/no (docs/behaviour.md); and the event streams,
    # which never end by design (each case would last the request timeout; tests/e2e/
    # test_event_stream.py drives them, and a run restricted to them passes ST108).
    command = [Path(sys.executable).parent / "schemathesis", "run", f"{api.base}/schema/openapi.json",
               "--checks", "all", "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
               "--exclude-path-regex", "/stream$",
               "--max-examples", "20", "--seed", "7", "--workers", "2", "--request-timeout", "20"]
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    (root / "schemathesis.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failure" not in done.stdout.split("SUMMARY")[-1].lower()
