"""Hostile but fair requests: each gets a quick 4xx with a bounded body, and the service stays healthy.

Regression tests for issue 9's reproductions (user text in NATS subjects, echoed bodies,
decompression bombs, nested JSON, odd numerals, EXIF-rotated sizes) and the classes around them.
"""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
import requests

from tests.images import encode, scene_with_pastes, textured_template

MAX_BODY = 8 * 1024  # no error answer may be larger than this
QUICK = 3.0  # seconds: a hostile request is answered at once, not after a broker timeout

LONG = "x" * 5000
# What must never reach a subject or key: separators, wildcards, whitespace, control characters.
NASTY = [LONG, "a..b", "a.b", "*", ">", "a b", "a%0a", "%0a", "a%00b", "a%09b", "..", "x" * 300 + ".png"]


@pytest.fixture(scope="module")
def pair():
    template = textured_template()
    return encode(scene_with_pastes(template)), encode(template)


def _quick(call, *args, **kwargs) -> requests.Response:
    started = time.monotonic()
    response = call(*args, timeout=30, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK, f"{args[0][:120]} took {elapsed:.1f} s"
    assert len(response.content) <= MAX_BODY, f"{len(response.content)} bytes for {args[0][:120]}"
    return response


def _still_serving(api, pair) -> None:
    assert api.healthy()
    response = api.submit_template(*pair)
    assert response.status_code == 201, response.text
    assert api.wait_done(response.json()["uid"])["status"] == "done"


@pytest.mark.parametrize("text", NASTY)
def test_path_text_never_reaches_nats(api, pair, text):
    uid = "d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"
    paths = [
        f"/api/v1/tasks/{text}", f"/api/v1/tasks/{text}/events", f"/api/v1/tasks/{uid}{text}",
        f"/uploads/{text}", f"/uploads/{uid}/{text}", f"/thumbnails/{text}", f"/thumbnails/{uid}/{text}",
        f"/results/{text}", f"/results/{uid}/{text}", f"/results/{uid}/step1/{text}",
        f"/api/v1/settings/{text}",
    ]
    for path in paths:
        response = _quick(api.http.get, api.base + path)
        assert 400 <= response.status_code < 500, (path[:120], response.status_code)
        assert isinstance(response.json()["detail"], str)
    response = _quick(api.http.post, f"{api.base}/api/v1/match/{text}", files={"image": b"x"})
    assert response.status_code == 404
    response = _quick(api.http.put, f"{api.base}/api/v1/settings/{text}", json={})
    assert response.status_code == 404


def test_the_service_serves_after_every_hostile_path(api, pair):
    for text in NASTY:
        _quick(api.http.get, f"{api.base}/uploads/{text}")
        _quick(api.http.get, f"{api.base}/api/v1/tasks/{text}")
    _still_serving(api, pair)


def test_a_field_sent_without_a_file_name_is_not_echoed(api, pair):
    big = b"A" * (5 * 1024 * 1024)
    body = (b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n' + big + b"\r\n"
            b'--b\r\nContent-Disposition: form-data; name="template"; filename="t.png"\r\n\r\n' + pair[1]
            + b"\r\n--b--\r\n")
    response = _quick(api.http.post, f"{api.base}/api/v1/match/template", data=body,
                      headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 422
    [item] = response.json()["detail"]
    assert item["loc"] == ["body", "image"] and item["msg"] == "Expected an uploaded file"
    assert item["input"].startswith("AAAA") and len(item["input"]) <= 201


def test_long_field_values_are_not_echoed_whole(api, pair):
    response = _quick(api.submit_template, *pair, method="M" * 100_000, threshold="9" * 100_000)
    assert response.status_code == 422
    assert {tuple(d["loc"]) for d in response.json()["detail"]} == {("body", "method"), ("body", "threshold")}


def _png_of(width: int, height: int) -> bytes:
    """A valid, highly compressible all-black gray PNG of any size (a decompression bomb)."""
    row = b"\x00" + b"\x00" * width
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_at_the_door(api, pair):
    bomb = _png_of(10_000, 10_000)
    assert len(bomb) < 200_000
    response = _quick(api.submit_template, bomb, pair[1])
    assert response.status_code == 422
    [item] = response.json()["detail"]
    assert item["loc"] == ["body", "image"] and "10000×10000" in item["msg"] and "pixels" in item["msg"]


@pytest.mark.parametrize("body", [
    b'{"threshold": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # under the 64 KiB cap
    b"[" * 30_000 + b"]" * 30_000,
    b'{"a": {"b": {"c": 1}}}',
    b'{"threshold": {"$gt": 0}}',
])
def test_nested_json_settings_are_refused(api, body):
    response = _quick(api.http.put, f"{api.base}/api/v1/settings/template", data=body,
                      headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


def test_a_huge_settings_body_is_refused(api):
    body = b'{"method": "' + b"M" * (2 * 1024 * 1024) + b'"}'
    response = _quick(api.http.put, f"{api.base}/api/v1/settings/template", data=body,
                      headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("value", ["٣", "0.8_5", "١.٥", "0x1", "1e999", "nan", "0.9\x00"])
def test_numbers_are_written_in_ascii(api, pair, value):
    response = _quick(api.submit_template, *pair, threshold=value)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "threshold"]


def test_settings_numbers_are_written_in_ascii(api):
    for value in ("٣", "0.8_5"):
        response = _quick(api.http.put, f"{api.base}/api/v1/settings/template", json={"max_results": value})
        assert response.status_code == 422


def _rotated_jpeg(image: np.ndarray, orientation: int) -> bytes:
    jpeg = encode(image, ".jpg")
    exif = (b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 274, 3, 1, orientation, 0) + struct.pack(">I", 0))
    segment = b"Exif\x00\x00" + exif
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def test_an_exif_rotated_image_is_checked_as_it_will_be_decoded(api):
    # 400×100 stored, shown (and decoded by OpenCV) as 100×400: a 150×80 template does not fit.
    image = _rotated_jpeg(np.full((100, 400, 3), 128, np.uint8), 6)
    template = encode(np.full((80, 150, 3), 128, np.uint8))
    response = _quick(api.submit_template, image, template, names=("photo.jpg", "t.png"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "The template (150×80) is larger than the image (100×400)"


def test_a_thumbnail_of_an_undecodable_image_still_answers(api, pair):
    damaged = pair[0][:100]  # a PNG header and nothing else: accepted, then undecodable
    task = api.submit_template(damaged, pair[1], names=("broken.png", "t.png")).json()
    response = _quick(api.http.get, f"{api.base}/{task['thumbnails'][0]}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR) is not None
    assert api.wait_done(task["uid"])["status"] == "error"


def test_thumbnails_are_small_and_keep_the_orientation(api):
    image = _rotated_jpeg(np.full((300, 1200, 3), 90, np.uint8), 6)
    template = encode(np.full((20, 20, 3), 90, np.uint8))
    task = api.submit_template(image, template, names=("photo.jpg", "t.png")).json()
    response = _quick(api.http.get, f"{api.base}/{task['thumbnails'][0]}")
    assert response.headers["content-type"] == "image/jpeg"
    thumb = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[:2] == (256, 64)
