"""The feature, chain, settings and webhook examples of the original documentation, run unchanged
(only the host is this test system's): curl, Python requests and JavaScript (node)."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import cv2
import pytest
import requests

from tests.harness import DATA
from tests.images import encode, scene_with_pastes, textured_template

FEATURE_DEFAULTS = {"detector": "SIFT", "matcher": "FLANN", "ratio_threshold": 0.75, "max_matches": 200}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client")
    # photo1: the box; photo2: the box in a scene (OpenCV's samples), as JPEGs like the docs'.
    (folder / "photo1.jpg").write_bytes(encode(cv2.imread(str(DATA / "box.png")), ".jpg"))
    (folder / "photo2.jpg").write_bytes(encode(cv2.imread(str(DATA / "box_in_scene.png")), ".jpg"))
    template = textured_template()
    (folder / "photo.png").write_bytes(encode(scene_with_pastes(template)))
    (folder / "icon.png").write_bytes(encode(template))
    return folder


@pytest.fixture(scope="module")
def curl(files):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")

    def run(*args: str) -> dict | list:
        out = subprocess.run(["curl", "-s", *args], cwd=files, capture_output=True, check=True, timeout=60)
        return json.loads(out.stdout)
    return run


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    kinds = subprocess.run([path, "-e", "console.log(typeof fetch, typeof FormData, typeof File)"],
                           capture_output=True, text=True).stdout.split()
    if kinds != ["function", "function", "function"]:
        pytest.skip("this node has no built-in fetch/FormData/File")
    return path


def _found_box(task: dict) -> None:
    assert task["status"] == "done", task
    data = task["result_data"]
    assert {"query_keypoints", "train_keypoints", "good_matches", "detector", "matcher"} <= set(data)
    assert data["good_matches"] > 10 and data["inliers"] >= 10 and len(data["corners"]) == 4
    assert task["result_files"] == [f"results/{task['uid']}/matches.png"]


def test_feature_curl_examples(api, curl):
    base = api.base
    task = curl("-X", "POST", f"{base}/api/v1/match/feature", "-F", "query_image=@photo1.jpg", "-F", "train_image=@photo2.jpg")
    assert (task["status"], task["tool"], task["params"]) == ("queued", "feature", FEATURE_DEFAULTS)
    assert task["input_files"] == [f"uploads/{task['uid']}/photo1.jpg", f"uploads/{task['uid']}/photo2.jpg"]
    assert task["thumbnails"] == [f"thumbnails/{task['uid']}/photo1.jpg", f"thumbnails/{task['uid']}/photo2.jpg"]
    assert task["result_files"] == [] and task["result_data"] == {}
    tuned = curl("-X", "POST", f"{base}/api/v1/match/feature", "-F", "query_image=@photo1.jpg", "-F", "train_image=@photo2.jpg",
                 "-F", "detector=ORB", "-F", "matcher=BFMatcher", "-F", "ratio_threshold=0.8", "-F", "max_matches=300")
    assert tuned["params"] == {"detector": "ORB", "matcher": "BFMatcher", "ratio_threshold": 0.8, "max_matches": 300}
    for uid in (task["uid"], tuned["uid"]):
        api.wait_done(uid)
        _found_box(curl(f"{base}/api/v1/tasks/{uid}"))
    assert curl(f"{base}/api/v1/tasks/{tuned['uid']}")["result_data"]["detector"] == "ORB"


def test_feature_python_example(api, files):
    base = api.base
    # The original's code, with only the host changed.
    files_ = {
        "query_image": open(files / "photo1.jpg", "rb"),
        "train_image": open(files / "photo2.jpg", "rb"),
    }
    data = {
        "detector": "SIFT",
        "matcher": "FLANN",
        "ratio_threshold": "0.75",
        "max_matches": "200",
    }
    resp = requests.post(f"{base}/api/v1/match/feature", files=files_, data=data)
    task = resp.json()
    status = api.wait_done(task["uid"])  # the example's loop: poll until done or error
    assert resp.status_code == 201 and task["params"] == FEATURE_DEFAULTS
    _found_box(status)


def _node(node: str, folder, base: str, body: str) -> dict:
    script = textwrap.dedent(f"""
        const fs = require("fs");
        const BASE = "{base}";
        const fileInput = (name, type) => new File([fs.readFileSync(name)], name, {{type}});
        async function waitForResult(uid) {{
          while (true) {{
            const r = await fetch(`${{BASE}}/api/v1/tasks/${{uid}}`);
            const data = await r.json();
            if (data.status === "done" || data.status === "error") return data;
            await new Promise(r => setTimeout(r, 50));
          }}
        }}
        (async () => {{
        {body}
        }})().catch(e => {{ console.error(e); process.exit(1); }});
    """)
    out = subprocess.run([node, "-e", script], cwd=folder, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_feature_javascript_example(api, files, node):
    # The original's fetch/FormData code; `fileInput1.files[0]` are File objects, as in a page.
    report = _node(node, files, api.base, """
        const fileInput1 = {files: [fileInput("photo1.jpg", "image/jpeg")]};
        const fileInput2 = {files: [fileInput("photo2.jpg", "image/jpeg")]};
        const form = new FormData();
        form.append("query_image", fileInput1.files[0]);
        form.append("train_image", fileInput2.files[0]);
        form.append("detector", "SIFT");
        form.append("ratio_threshold", "0.75");
        const res = await fetch(`${BASE}/api/v1/match/feature`, { method: "POST", body: form });
        const task = await res.json();
        const result = await waitForResult(task.uid);
        console.log(JSON.stringify({status: res.status, task, result}));
    """)
    assert report["status"] == 201 and report["task"]["params"] == FEATURE_DEFAULTS
    _found_box(report["result"])


CHAIN = '[{"tool":"template","params":{"method":"TM_CCOEFF_NORMED","threshold":0.95}},{"tool":"template","params":{"threshold":0.7}},{"tool":"feature","params":{"detector":"SIFT","ratio_threshold":0.7}}]'


def _chain_done(api, uid: str) -> dict:
    task = api.wait_done(uid)
    assert task["status"] == "done", task
    data = task["result_data"]
    assert data["chain_result"] == "found" and data["total_steps"] == 3
    # The pastes are exact copies: the strict first step already finds them; the rest are skipped.
    assert [(s["step"], s["tool"], s["status"]) for s in data["steps"]] == [
        (1, "template", "done"), (2, "template", "skipped"), (3, "feature", "skipped")]
    assert data["completed_step"] == 1 and data["steps"][0]["found"] is True
    assert data["steps"][2]["params"] == {**FEATURE_DEFAULTS, "ratio_threshold": 0.7}
    return task


def test_chain_curl_example(api, curl):
    task = curl("-X", "POST", f"{api.base}/api/v1/match/chain", "-F", "image=@photo.png", "-F", "template=@icon.png",
                "-F", f"steps={CHAIN}")
    assert task["status"] == "queued" and task["tool"] == "chain"
    _chain_done(api, task["uid"])


def test_chain_python_example(api, files):
    steps = [
        {"tool": "template", "params": {"method": "TM_CCOEFF_NORMED", "threshold": 0.95}},
        {"tool": "template", "params": {"threshold": 0.7}},
        {"tool": "feature", "params": {"detector": "SIFT", "ratio_threshold": 0.7}},
    ]
    resp = requests.post(
        f"{api.base}/api/v1/match/chain",
        files={
            "image": open(files / "photo.png", "rb"),
            "template": open(files / "icon.png", "rb"),
        },
        data={"steps": json.dumps(steps)},
    )
    print(resp.json())
    assert resp.status_code == 201 and resp.json()["tool"] == "chain"
    _chain_done(api, resp.json()["uid"])


def test_chain_javascript_example(api, files, node):
    report = _node(node, files, api.base, """
        const imageFile = fileInput("photo.png", "image/png");
        const templateFile = fileInput("icon.png", "image/png");
        const form = new FormData(); form.append('image', imageFile); form.append('template', templateFile); form.append('steps', JSON.stringify([ {tool: 'template', params: {method: 'TM_CCOEFF_NORMED', threshold: 0.95}}, {tool: 'template', params: {threshold: 0.7}}, {tool: 'feature', params: {detector: 'SIFT', ratio_threshold: 0.7}}, ])); const res = await fetch(`${BASE}/api/v1/match/chain`, { method: 'POST', body: form, }); const data = await res.json();
        console.log(JSON.stringify({status: res.status, data}));
    """)
    assert report["status"] == 201 and report["data"]["status"] == "queued" and report["data"]["tool"] == "chain"
    _chain_done(api, report["data"]["uid"])


def test_a_chain_that_needs_its_feature_step(api, files, curl):
    # Here "image" is the icon and "template" the (shrunk) scene: the template step fails (its
    # template is larger than its image), the chain goes on, and the feature step finds the icon.
    small = cv2.resize(cv2.imread(str(files / "photo.png")), (480, 360))
    (files / "small.png").write_bytes(encode(small))
    steps = json.dumps([{"tool": "template", "params": {"threshold": 0.95}},
                        {"tool": "feature", "params": {"detector": "SIFT"}}])
    task = curl("-X", "POST", f"{api.base}/api/v1/match/chain", "-F", "image=@icon.png", "-F", "template=@small.png",
                "-F", f"steps={steps}")
    done = api.wait_done(task["uid"])
    data = done["result_data"]
    assert done["status"] == "done" and data["chain_result"] == "found" and data["completed_step"] == 2
    first, second = data["steps"]
    assert first["status"] == "error" and "larger than the image" in first["error"]
    assert second["status"] == "done" and second["found"] is True
    assert done["result_files"] == [f"results/{task['uid']}/step2/matches.png"]


def test_settings_examples(api, curl):
    base = api.base
    before = {tool: curl(f"{base}/api/v1/settings/{tool}") for tool in ("template", "feature", "surface")}
    try:
        assert before["feature"] == {"tool": "feature", "params": FEATURE_DEFAULTS}
        put = curl("-X", "PUT", f"{base}/api/v1/settings/feature", "-H", "Content-Type: application/json",
                   "-d", '{ "detector": "SIFT", "matcher": "FLANN", "ratio_threshold": 0.7, "max_matches": 200 }')
        assert put == {"tool": "feature", "params": {**FEATURE_DEFAULTS, "ratio_threshold": 0.7}}
        surface = {"relative_sampling_step": 0.05, "relative_distance_step": 0.05, "num_angles": 30, "use_icp": True,
                   "icp_tolerance": 0.005, "icp_iterations": 100}
        put = curl("-X", "PUT", f"{base}/api/v1/settings/surface", "-H", "Content-Type: application/json",
                   "-d", json.dumps(surface))
        assert put == {"tool": "surface", "params": surface}
        resp = requests.put(f"{base}/api/v1/settings/feature",
                            json={"detector": "ORB", "matcher": "BFMatcher", "ratio_threshold": 0.8, "max_matches": 500})
        assert resp.json() == {"tool": "feature", "params": {"detector": "ORB", "matcher": "BFMatcher",
                                                             "ratio_threshold": 0.8, "max_matches": 500}}
        assert requests.get(f"{base}/api/v1/settings/feature").json() == resp.json()
    finally:
        for tool, settings in before.items():
            requests.put(f"{base}/api/v1/settings/{tool}", json=settings["params"])


def test_tasks_examples(api):
    resp = requests.get(f"{api.base}/api/v1/tasks", params={"offset": 0, "limit": 20})
    data = resp.json()
    assert data["total"] >= len(data["tasks"]) > 0
    for t in data["tasks"]:
        assert f" {t['uid'][:12]} {t['status']:12s} {t['tool']}"
    uid = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    resp = requests.get(f"{api.base}/api/v1/tasks/{uid}")
    assert resp.status_code == 404 and resp.json() == {"detail": "Task not found"}
