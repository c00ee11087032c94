"""Template matching end to end: real HTTP, real NATS, real OpenCV, ground truth checked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.harness import wait_for
from tests.images import POSITIONS, encode, scene_with_pastes, textured_template

METHODS = ["TM_CCOEFF_NORMED", "TM_CCORR_NORMED", "TM_SQDIFF_NORMED", "TM_CCOEFF", "TM_CCORR", "TM_SQDIFF"]


@pytest.fixture(scope="module")
def pasted():
    template = textured_template()
    return encode(scene_with_pastes(template)), encode(template)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_finds_the_three_pastes(api, pasted, method):
    image, template = pasted
    response = api.submit_template(image, template, method=method, threshold=0.9, max_results=10)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["status"] == "queued" and task["tool"] == "template"
    assert task["params"] == {"method": method, "threshold": 0.9, "max_results": 10, "use_grayscale": True}
    done = api.wait_done(task["uid"])
    assert done["status"] == "done", done["error"]
    data = done["result_data"]
    assert data["method"] == method
    top = data["matches"][:3]
    assert sorted((m["x"], m["y"]) for m in top) == sorted(POSITIONS)
    assert all(m["w"] == 32 and m["h"] == 32 for m in top)
    scores = [m["score"] for m in data["matches"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert data["best_score"] == pytest.approx(scores[0]) and scores[0] >= 0.99
    assert data["filtered_matches"] == len(data["matches"]) >= 3
    if method == "TM_CCOEFF_NORMED":
        assert len(data["matches"]) == 3  # nothing else in the photo correlates with the template


def test_result_files_are_images_of_the_right_size(api, pasted):
    image, template = pasted
    task = api.wait_done(api.submit_template(image, template).json()["uid"])
    uid = task["uid"]
    assert task["result_files"] == [f"results/{uid}/matches.png", f"results/{uid}/heatmap.png"]
    for path in task["result_files"]:
        response = api.http.get(f"{api.base}/{path}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        picture = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (480, 640, 3)
    for path in task["input_files"] + task["thumbnails"]:
        response = api.http.get(f"{api.base}/{path}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert api.http.get(f"{api.base}/{task['input_files'][0]}").content == image
    thumb = cv2.imdecode(np.frombuffer(api.http.get(f"{api.base}/{task['thumbnails'][0]}").content, np.uint8), 1)
    assert max(thumb.shape[:2]) <= 256


def test_colour_tells_apart_what_grayscale_cannot(api):
    # Pure red and a green of the same luminance look identical in grayscale.
    red = np.zeros((24, 24, 3), np.uint8)
    red[:, :] = (0, 0, 255)
    red[8:16, 8:16] = (255, 255, 255)
    gray_of_red = cv2.cvtColor(red[:1, :1], cv2.COLOR_BGR2GRAY)[0, 0]
    green_value = int(round(gray_of_red / 0.587))
    green = red.copy()
    mask = np.all(red == (0, 0, 255), axis=2)
    green[mask] = (0, green_value, 0)
    scene = np.full((200, 300, 3), 40, np.uint8)
    scene[20:44, 30:54] = red
    scene[120:144, 200:224] = green
    image, template = encode(scene), encode(red)
    gray = api.wait_done(api.submit_template(image, template, threshold=0.95).json()["uid"])
    colour = api.wait_done(api.submit_template(image, template, threshold=0.95, use_grayscale="false").json()["uid"])
    assert sorted((m["x"], m["y"]) for m in gray["result_data"]["matches"]) == [(30, 20), (200, 120)]
    assert [(m["x"], m["y"]) for m in colour["result_data"]["matches"]] == [(30, 20)]
    assert colour["params"]["use_grayscale"] is False


def test_max_results_and_threshold(api, pasted):
    image, template = pasted
    capped = api.wait_done(api.submit_template(image, template, max_results=2).json()["uid"])
    assert len(capped["result_data"]["matches"]) == 2 and capped["result_data"]["filtered_matches"] == 2
    strict = api.wait_done(api.submit_template(image, template, threshold=1.0).json()["uid"])
    assert strict["status"] == "done"


def test_real_photo_crop_is_found(api, data_dir):
    photo = cv2.imread(str(data_dir / "messi5.jpg"))
    crop = photo[100:150, 200:260]
    task = api.wait_done(api.submit_template(encode(photo, ".jpg"), encode(crop), names=("messi5.jpg", "crop.png")).json()["uid"])
    assert task["status"] == "done"
    best = task["result_data"]["matches"][0]
    assert (best["x"], best["y"], best["w"], best["h"]) == (200, 100, 60, 50)
    assert task["input_files"][0].endswith("/messi5.jpg")
    response = api.http.get(f"{api.base}/{task['input_files'][0]}")
    assert response.headers["content-type"] == "image/jpeg"


def test_chessboard_gives_many_separate_matches(api, data_dir):
    board = cv2.imread(str(data_dir / "left01.jpg"), cv2.IMREAD_GRAYSCALE)
    # One inner corner of the chessboard: it repeats across the board.
    corner = board[230:262, 250:282]
    task = api.wait_done(api.submit_template(encode(board), encode(corner), threshold=0.6, max_results=50).json()["uid"])
    matches = task["result_data"]["matches"]
    assert len(matches) >= 5
    for i, a in enumerate(matches):
        for b in matches[i + 1:]:
            dx = max(0, 32 - abs(a["x"] - b["x"]))
            dy = max(0, 32 - abs(a["y"] - b["y"]))
            assert dx * dy / (2 * 32 * 32 - dx * dy) <= 0.3, "overlapping boxes survived NMS"


def test_read_right_after_submit_never_404(api, pasted):
    image, template = pasted
    for _ in range(10):
        uid = api.submit_template(image, template).json()["uid"]
        response = api.http.get(f"{api.base}/api/v1/tasks/{uid}")
        assert response.status_code == 200 and response.json()["uid"] == uid


def test_settings_change_defaults_but_not_submitted_tasks(api, pasted):
    image, template = pasted
    before = api.http.get(f"{api.base}/api/v1/settings/template").json()
    assert before["tool"] == "template"
    old = api.submit_template(image, template).json()
    new_settings = {"method": "TM_SQDIFF_NORMED", "threshold": 0.85, "max_results": 7, "use_grayscale": True}
    response = api.http.put(f"{api.base}/api/v1/settings/template", json=new_settings)
    assert response.status_code == 200 and response.json() == {"tool": "template", "params": new_settings}
    try:
        task = api.submit_template(image, template).json()
        assert task["params"] == new_settings
        assert api.wait_done(old["uid"])["params"] == old["params"]
        bad = api.http.put(f"{api.base}/api/v1/settings/template", json={**new_settings, "threshold": 2})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "threshold"]
    finally:
        api.http.put(f"{api.base}/api/v1/settings/template", json=before["params"])


def test_list_is_newest_first_with_exact_total(api, pasted):
    image, template = pasted
    uids = [api.submit_template(image, template).json()["uid"] for _ in range(3)]
    # The list is a projection: it catches up within milliseconds of a submission.
    page = wait_for(lambda: (p := api.http.get(f"{api.base}/api/v1/tasks", params={"offset": 0, "limit": 3}).json())
                    and [t["uid"] for t in p["tasks"]] == uids[::-1] and p, timeout=10, what="the list to show the tasks")
    total = page["total"]
    assert total >= 3
    everything = []
    for offset in range(0, total, 200):
        everything += api.http.get(f"{api.base}/api/v1/tasks", params={"offset": offset, "limit": 200}).json()["tasks"]
    assert len(everything) == total == len({t["uid"] for t in everything})
    second = api.http.get(f"{api.base}/api/v1/tasks", params={"offset": 1, "limit": 2}).json()
    assert [t["uid"] for t in second["tasks"]] == uids[::-1][1:3]
    assert api.http.get(f"{api.base}/api/v1/tasks", params={"offset": total + 5}).json() == {"total": total, "tasks": []}
    by_tool = api.http.get(f"{api.base}/api/v1/tasks", params={"tool": "feature", "limit": 200}).json()
    assert all(t["tool"] == "feature" for t in by_tool["tasks"]) and by_tool["total"] == len(by_tool["tasks"])


def test_the_list_filters_by_status_and_tool_with_exact_totals(api, pasted):
    image, template = pasted
    done = [api.wait_done(api.submit_template(image, template).json()["uid"])["uid"] for _ in range(2)]
    failed = api.wait_done(api.submit_template(image[:300], template).json()["uid"])
    assert failed["status"] == "error"

    def listed(**query) -> dict:
        return api.http.get(f"{api.base}/api/v1/tasks", params={"limit": 200, **query}).json()

    def settled() -> dict | None:
        pages = {s: listed(status=s) for s in ("queued", "processing", "done", "error")}
        everything = listed()
        # Every task is in exactly one status once the projection has caught up.
        return pages if sum(p["total"] for p in pages.values()) == everything["total"] else None

    pages = wait_for(settled, timeout=15, what="the status index to catch up")
    for status, page in pages.items():
        assert all(t["status"] == status for t in page["tasks"]), status
        assert page["total"] == len(page["tasks"]) or page["total"] > 200
        numbers = [t["position"] for t in page["tasks"]]
        assert numbers == sorted(numbers, reverse=True)  # newest first
    assert [t["uid"] for t in pages["done"]["tasks"][:2]] == done[::-1]
    assert pages["error"]["tasks"][0]["uid"] == failed["uid"]
    feature_done = listed(status="done", tool="feature")
    assert all(t["tool"] == "feature" and t["status"] == "done" for t in feature_done["tasks"])
    by_both = listed(status="done", tool="template")
    assert by_both["total"] >= 2 and all(t["tool"] == "template" for t in by_both["tasks"])
    second = listed(status="done", offset=1, limit=1)
    assert [t["uid"] for t in second["tasks"]] == [done[0]]


def test_event_history_is_in_order(api, pasted):
    image, template = pasted
    uid = api.wait_done(api.submit_template(image, template).json()["uid"])["uid"]
    events = api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
    assert [e["type"] for e in events] == ["task.submitted", "task.started", "task.finished"]
    assert all(e["uid"] == uid and e["schema_version"] == 1 for e in events)
