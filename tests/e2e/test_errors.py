"""Bad input gets a clear 4xx in the API's shape; never a 5xx."""

from __future__ import annotations

import numpy as np
import pytest

from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def pair():
    template = textured_template()
    return encode(scene_with_pastes(template)), encode(template)


def _detail(response, status=422):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}
    return body["detail"]


@pytest.mark.parametrize(
    ("field", "value", "type_", "msg"),
    [
        ("threshold", "1.5", "value_error", "Input should be less than or equal to 1.0"),
        ("threshold", "0.05", "value_error", "Input should be greater than or equal to 0.1"),
        ("threshold", "abc", "float_parsing", "Input should be a valid number, unable to parse string as a number"),
        ("max_results", "0", "value_error", "Input should be greater than or equal to 1"),
        ("max_results", "1001", "value_error", "Input should be less than or equal to 1000"),
        ("max_results", "2.5", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        ("use_grayscale", "maybe", "bool_parsing", "Input should be a valid boolean, unable to interpret input"),
        ("method", "TM_FANCY", "enum", "Input should be 'TM_CCOEFF', 'TM_CCOEFF_NORMED', 'TM_CCORR', 'TM_CCORR_NORMED', 'TM_SQDIFF' or 'TM_SQDIFF_NORMED'"),
    ],
)
def test_bad_fields(api, pair, field, value, type_, msg):
    detail = _detail(api.submit_template(*pair, **{field: value}))
    assert detail == [{"type": type_, "loc": ["body", field], "msg": msg,
                       "input": detail[0]["input"]}]
    if type_ == "value_error":
        assert detail[0]["input"] == (float(value) if "." in value else int(value))


def test_every_bad_field_is_reported_at_once(api, pair):
    detail = _detail(api.submit_template(*pair, threshold="7", max_results="-1", method="nope"))
    assert {tuple(d["loc"]) for d in detail} == {("body", "threshold"), ("body", "max_results"), ("body", "method")}


def test_missing_files(api):
    response = api.http.post(f"{api.base}/api/v1/match/template", data={"threshold": "0.9"})
    detail = _detail(response)
    assert [(d["type"], d["loc"], d["msg"]) for d in detail] == [
        ("missing", ["body", "image"], "Field required"),
        ("missing", ["body", "template"], "Field required"),
    ]


def test_not_an_image(api, pair):
    response = api.submit_template(b"this is not an image at all", pair[1], names=("notes.txt", "t.png"))
    detail = _detail(response)
    assert detail[0]["loc"] == ["body", "image"] and "not a PNG, JPEG, BMP or TIFF" in detail[0]["msg"]
    assert detail[0]["input"] == "notes.txt"


def test_a_file_sent_without_a_file_name_is_not_taken_as_a_file(api, pair):
    body = (b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n' + pair[0] + b"\r\n"
            b'--b\r\nContent-Disposition: form-data; name="template"; filename="t.png"\r\n\r\n' + pair[1]
            + b"\r\n--b--\r\n")
    response = api.http.post(f"{api.base}/api/v1/match/template", data=body,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    detail = _detail(response)
    assert [(d["loc"], d["msg"]) for d in detail] == [(["body", "image"], "Expected an uploaded file")]


def test_empty_file(api, pair):
    detail = _detail(api.submit_template(b"", pair[1]))
    assert detail[0]["loc"] == ["body", "image"]


def test_template_larger_than_image(api):
    small, big = encode(np.zeros((20, 20, 3), np.uint8)), encode(np.zeros((40, 30, 3), np.uint8))
    detail = _detail(api.submit_template(small, big))
    assert detail[0]["loc"] == ["body", "template"]
    assert detail[0]["msg"] == "The template (30×40) is larger than the image (20×20)"


def test_truncated_image_ends_in_task_error(api, pair):
    # The header is fine (it passes the gateway), the pixels are cut off: the matcher says why.
    image = pair[0][: len(pair[0]) // 3]
    response = api.submit_template(image, pair[1])
    assert response.status_code == 201
    task = api.wait_done(response.json()["uid"])
    assert task["status"] == "error" and "image" in task["error"]
    assert task["result_files"] == []


def test_upload_over_the_limit_is_413(api, pair):
    huge = b"\x89PNG" + b"\0" * (9 * 1024 * 1024)  # the test system allows 8 MiB
    response = api.submit_template(huge, pair[1])
    assert response.status_code == 413
    assert isinstance(response.json()["detail"], str)


def test_unknown_task_file_tool_webhook(api):
    assert _detail(api.http.get(f"{api.base}/api/v1/tasks/d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"), 404) == "Task not found"
    assert _detail(api.http.get(f"{api.base}/api/v1/tasks/not-a-uid"), 404) == "Task not found"
    assert _detail(api.http.get(f"{api.base}/results/nope/matches.png"), 404) == "File not found"
    assert _detail(api.http.get(f"{api.base}/uploads/../../etc/passwd"), 404)
    assert _detail(api.http.get(f"{api.base}/api/v1/settings/teleport"), 404) == "Unknown tool 'teleport'"
    assert _detail(api.http.delete(f"{api.base}/api/v1/webhooks/wh_nope"), 404) == "Webhook not found"
    assert _detail(api.http.post(f"{api.base}/api/v1/match/teleport", files={"image": b"x"}), 404) == "Unknown tool 'teleport'"
    for tool in ("template", "feature", "surface", "chain"):  # every documented tool is served
        assert api.http.post(f"{api.base}/api/v1/match/{tool}", files={"x": b"x"}).status_code == 422


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "ten"}, {"tool": "paint"},
                                   {"status": "finished"}, {"limit": "٣"}, {"offset": "1_0"}])
def test_bad_list_queries(api, query):
    detail = _detail(api.http.get(f"{api.base}/api/v1/tasks", params=query))
    assert detail[0]["loc"][0] == "query"


def test_bad_settings_bodies(api):
    for body in (b"{not json", b"[1, 2]", b'{"method": "TM_X"}', b'{"colour": true}'):
        response = api.http.put(f"{api.base}/api/v1/settings/template", data=body,
                                 headers={"Content-Type": "application/json"})
        _detail(response)


def test_file_names_are_sanitised(api, pair):
    task = api.submit_template(*pair, names=("../../etc/pass wd.png", "..\\..\\évil$.png")).json()
    image_path, template_path = task["input_files"]
    assert image_path == f"uploads/{task['uid']}/pass_wd.png"
    assert template_path.startswith(f"uploads/{task['uid']}/") and "/" not in template_path.split("/", 2)[2]
    assert api.http.get(f"{api.base}/{template_path}").status_code == 200


def test_same_names_do_not_overwrite(api, pair):
    task = api.submit_template(*pair, names=("a.png", "a.png")).json()
    assert len(set(task["input_files"])) == 2
    contents = [api.http.get(f"{api.base}/{p}").content for p in task["input_files"]]
    assert contents == list(pair)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"image": "x"}', "application/json"),
        (b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG", "multipart/form-data"),
        (b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG", "multipart/form-data; boundary=x"),
        (b"\x00\xff" * 100, "multipart/form-data; boundary=zz"),
        (b"", "text/plain"),
    ],
)
def test_garbage_submissions_get_4xx(api, body, content_type):
    response = api.http.post(f"{api.base}/api/v1/match/template", data=body, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()
