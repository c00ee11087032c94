"""Chains through the API: submission and its 422s, the run, the files, the events."""

from __future__ import annotations

import json

import pytest

from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def pair():
    template = textured_template()
    return encode(scene_with_pastes(template), ".jpg"), encode(template)


def _submit(api, pair, steps, names=("photo.jpg", "icon.png")):
    files = {"image": (names[0], pair[0]), "template": (names[1], pair[1])}
    data = {"steps": steps if isinstance(steps, str) else json.dumps(steps)}
    return api.http.post(f"{api.base}/api/v1/match/chain", files=files, data=data, timeout=30)


def _detail(response):
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def test_a_chain_runs_its_steps_until_one_finds(api, pair):
    steps = [{"tool": "template", "params": {"method": "TM_CCOEFF_NORMED", "threshold": 1.0}},
             {"tool": "template", "params": {"threshold": 0.7}},
             {"tool": "template", "params": {"threshold": 0.5}}]
    response = _submit(api, pair, steps)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["tool"] == "chain" and task["status"] == "queued" and task["result_data"] == {}
    resolved = task["params"]["steps"]
    assert [s["tool"] for s in resolved] == ["template"] * 3
    # Params are completed from the tool's settings.
    assert resolved[1]["params"] == {"method": "TM_CCOEFF_NORMED", "threshold": 0.7, "max_results": 20, "use_grayscale": True}

    done = api.wait_done(task["uid"])
    assert done["status"] == "done", done
    data = done["result_data"]
    assert (data["chain_result"], data["completed_step"], data["total_steps"]) == ("found", 2, 3)
    first, second, third = data["steps"]
    assert (first["step"], first["status"], first["found"]) == (1, "done", False)
    assert first["result_data"]["filtered_matches"] == 0
    assert (second["status"], second["found"], second["result_data"]["filtered_matches"]) == ("done", True, 3)
    assert (third["status"], third["found"], third["result_files"]) == ("skipped", False, [])
    assert "result_data" not in third
    uid = task["uid"]
    expected = [f"results/{uid}/step{n}/{name}" for n in (1, 2) for name in ("matches.png", "heatmap.png")]
    assert done["result_files"] == expected
    assert first["result_files"] == expected[:2] and second["result_files"] == expected[2:]
    for path in expected:
        response = api.http.get(f"{api.base}/{path}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"

    events = api.http.get(f"{api.base}/api/v1/tasks/{uid}/events").json()
    kinds = [(e["type"], e.get("step", {}).get("step")) for e in events]
    assert kinds == [("task.submitted", None), ("task.started", None), ("task.step_completed", 1),
                     ("task.step_completed", 2), ("task.finished", None)]


def test_nothing_found_is_a_done_chain(api, pair):
    done = api.wait_done(_submit(api, pair, [{"tool": "template", "params": {"threshold": 1.0}}]).json()["uid"])
    assert done["status"] == "done"
    assert (done["result_data"]["chain_result"], done["result_data"]["completed_step"]) == ("not_found", 1)


def test_a_chain_on_undecodable_files_fails_with_each_steps_reason(api, pair):
    broken = (pair[0][:200], pair[1])
    task = _submit(api, broken, [{"tool": "template"}, {"tool": "template", "params": {"threshold": 0.5}}]).json()
    done = api.wait_done(task["uid"])
    assert done["status"] == "error" and done["error"].startswith("Every step failed: step 1 (template): ")
    assert [s["status"] for s in done["result_data"]["steps"]] == ["error", "error"]


@pytest.mark.parametrize(("steps", "loc", "type_"), [
    ([{"tool": "template", "params": {"threshold": 0.9}}, {"tool": "template", "params": {"threshold": 7}}],
     ["body", "steps", 1, "params", "threshold"], "value_error"),
    ([{"tool": "template", "params": {"method": "TM_NOPE"}}], ["body", "steps", 0, "params", "method"], "enum"),
    ([{"tool": "template", "params": {"treshold": 0.9}}], ["body", "steps", 0, "params", "treshold"], "extra_forbidden"),
    ([{"tool": "paint"}], ["body", "steps", 0, "tool"], "enum"),
    ([{"params": {}}], ["body", "steps", 0, "tool"], "missing"),
    ([{"tool": "template", "colour": "red"}], ["body", "steps", 0, "colour"], "extra_forbidden"),
    ([], ["body", "steps"], "too_short"),
    ([{"tool": "template"}] * 11, ["body", "steps"], "too_long"),
    ("[{not json", ["body", "steps"], "json_invalid"),
    ('{"tool": "template"}', ["body", "steps"], "value_error"),
    ('[{"tool": "template", "params": {"threshold": [[[[0.9]]]]}}]', ["body", "steps"], "value_error"),
])
def test_bad_steps_are_422_with_the_step_in_loc(api, pair, steps, loc, type_):
    detail = _detail(_submit(api, pair, steps))
    assert [(d["loc"], d["type"]) for d in detail] == [(loc, type_)]


def test_missing_steps_and_files_are_reported_together(api):
    detail = _detail(api.http.post(f"{api.base}/api/v1/match/chain", data={}, timeout=30))
    assert {tuple(d["loc"]) for d in detail} == {("body", "steps"), ("body", "image"), ("body", "template")}
