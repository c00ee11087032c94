"""Surface matching through the API: the original document's examples, PLY checks at the door,
stages in the history, chains of surface steps, and the lane that keeps fast tools fast."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pytest
import requests

from infra.ply import write_ply
from tests.images import encode, scene_with_pastes, textured_template
from tests.surface_scenes import load_model, make_scene, model_bytes

SURFACE_DEFAULTS = {"relative_sampling_step": 0.05, "relative_distance_step": 0.05, "num_angles": 30,
                    "use_icp": True, "icp_tolerance": 0.005, "icp_iterations": 100}


@pytest.fixture(scope="module")
def scene():
    return make_scene(3, partial=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory, scene):
    folder = tmp_path_factory.mktemp("surface")
    (folder / "model.ply").write_bytes(model_bytes())
    (folder / "scene.ply").write_bytes(write_ply(scene.xyz, scene.normals))
    return folder


def _pose_error(pose: list[list[float]], truth: np.ndarray) -> float:
    """Mean distance of the posed model points to the true ones, as a share of the model's size."""
    xyz, _ = load_model()
    diameter = float(np.linalg.norm(xyz.max(axis=0) - xyz.min(axis=0)))
    homogeneous = np.column_stack([xyz, np.ones(len(xyz))])
    found, true = homogeneous @ np.array(pose).T, homogeneous @ truth.T
    return float(np.linalg.norm(found[:, :3] - true[:, :3], axis=1).mean()) / diameter


def _found(api, uid: str, scene) -> dict:
    task = api.wait_done(uid, timeout=120)
    assert task["status"] == "done", task
    data = task["result_data"]
    assert {"pose", "num_model_points", "num_scene_points", "icp_residual", "poses_found"} <= set(data)
    assert data["poses_found"] >= 1 and data["num_model_points"] == 6700
    assert _pose_error(data["pose"], scene.pose) < 0.1
    assert sorted(task["result_files"]) == [f"results/{uid}/pose.png", f"results/{uid}/posed_model.ply"]
    return task


def test_surface_curl_examples(api, files, scene):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")

    def curl(*args: str) -> dict:
        out = subprocess.run(["curl", "-s", *args], cwd=files, capture_output=True, check=True, timeout=60)
        return json.loads(out.stdout)

    basic = curl("-X", "POST", f"{api.base}/api/v1/match/surface", "-F", "model_file=@model.ply", "-F", "scene_file=@scene.ply")
    assert (basic["status"], basic["tool"], basic["params"]) == ("queued", "surface", SURFACE_DEFAULTS)
    assert basic["input_files"] == [f"uploads/{basic['uid']}/model.ply", f"uploads/{basic['uid']}/scene.ply"]
    assert basic["thumbnails"] == [] and basic["result_data"] == {}
    precise = curl("-X", "POST", f"{api.base}/api/v1/match/surface", "-F", "model_file=@model.ply", "-F", "scene_file=@scene.ply",
                   "-F", "relative_sampling_step=0.025", "-F", "num_angles=60", "-F", "use_icp=true", "-F", "icp_iterations=200")
    assert precise["params"] == {**SURFACE_DEFAULTS, "relative_sampling_step": 0.025, "num_angles": 60, "icp_iterations": 200}
    _found(api, basic["uid"], scene)
    _found(api, precise["uid"], scene)
    response = requests.get(f"{api.base}/results/{basic['uid']}/posed_model.ply")
    assert response.status_code == 200 and response.content.startswith(b"ply")
    # The task showed its stages while it ran; the history keeps them.
    events = requests.get(f"{api.base}/api/v1/tasks/{basic['uid']}/events").json()
    assert [e["stage"] for e in events if e["type"] == "task.progressed"] == ["loading", "training", "matching", "refining"]


def test_surface_python_example(api, files, scene):
    files_ = {
        "model_file": open(files / "model.ply", "rb"),
        "scene_file": open(files / "scene.ply", "rb"),
    }
    data = {
        "relative_sampling_step": "0.025",
        "use_icp": "true",
        "icp_iterations": "200",
    }
    resp = requests.post(f"{api.base}/api/v1/match/surface", files=files_, data=data)
    task = resp.json()
    api.wait_done(task["uid"], timeout=120)
    assert resp.status_code == 201 and task["params"]["relative_sampling_step"] == 0.025
    _found(api, task["uid"], scene)


def test_surface_javascript_example(api, files, scene):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = textwrap.dedent(f"""
        const fs = require("fs");
        const fileInput = (name) => new File([fs.readFileSync(name)], name, {{type: "application/octet-stream"}});
        (async () => {{
          const modelInput = {{files: [fileInput("model.ply")]}};
          const sceneInput = {{files: [fileInput("scene.ply")]}};
          const form = new FormData(); form.append("model_file", modelInput.files[0]); form.append("scene_file", sceneInput.files[0]); form.append("relative_sampling_step", "0.025"); form.append("use_icp", "true"); const res = await fetch("{api.base}/api/v1/match/surface", {{ method: "POST", body: form, }}); const task = await res.json();
          console.log(JSON.stringify({{status: res.status, task}}));
        }})().catch(e => {{ console.error(e); process.exit(1); }});
    """)
    out = subprocess.run([node, "-e", script], cwd=files, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == 201 and report["task"]["tool"] == "surface"
    assert report["task"]["params"]["relative_sampling_step"] == 0.025 and report["task"]["params"]["use_icp"] is True
    _found(api, report["task"]["uid"], scene)


@pytest.mark.parametrize(("model", "message"), [
    (b"not a ply at all", "PLY"),
    (b"ply\nformat ascii 1.0\nelement vertex -5\nproperty float x\nproperty float y\nproperty float z\nend_header\n", "count"),
    (b"ply\nformat ascii 1.0\nelement vertex 99999999999\nproperty float x\nproperty float y\nproperty float z\nend_header\n", "2,000,000"),
    (b"", "empty"),
])
def test_ply_headers_are_checked_at_the_door(api, files, model, message):
    response = requests.post(f"{api.base}/api/v1/match/surface", timeout=30,
                             files={"model_file": ("model.ply", model), "scene_file": ("scene.ply", (files / "scene.ply").read_bytes())})
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert item["loc"] == ["body", "model_file"] and message.lower() in item["msg"].lower()


def test_a_ply_whose_values_are_broken_ends_in_a_clear_error(api, files):
    xyz, normals = load_model()
    xyz = xyz.copy()
    xyz[10] = np.nan
    response = requests.post(f"{api.base}/api/v1/match/surface", timeout=30, files={
        "model_file": ("model.ply", write_ply(xyz, normals)), "scene_file": ("scene.ply", (files / "scene.ply").read_bytes())})
    assert response.status_code == 201
    task = api.wait_done(response.json()["uid"], timeout=120)
    assert task["status"] == "error" and "model_file" in task["error"] and task["result_files"] == []


def test_a_chain_of_surface_steps(api, files, scene):
    steps = [{"tool": "surface", "params": {"use_icp": False, "relative_sampling_step": 0.1}}, {"tool": "surface"}]
    response = requests.post(f"{api.base}/api/v1/match/chain", timeout=30, data={"steps": json.dumps(steps)},
                             files={"image": ("model.ply", (files / "model.ply").read_bytes()),
                                    "template": ("scene.ply", (files / "scene.ply").read_bytes())})
    assert response.status_code == 201, response.text
    task = api.wait_done(response.json()["uid"], timeout=180)
    data = task["result_data"]
    assert task["status"] == "done" and data["chain_result"] == "found"
    found = data["steps"][data["completed_step"] - 1]
    assert found["tool"] == "surface" and found["result_data"]["poses_found"] >= 1
    assert _pose_error(found["result_data"]["pose"], scene.pose) < 0.1


def test_a_chain_cannot_mix_images_and_point_clouds(api, files):
    steps = [{"tool": "template"}, {"tool": "surface"}]
    response = requests.post(f"{api.base}/api/v1/match/chain", timeout=30, data={"steps": json.dumps(steps)},
                             files={"image": ("a.png", b"x"), "template": ("b.png", b"y")})
    assert response.status_code == 422
    [item] = [d for d in response.json()["detail"] if d["loc"] == ["body", "steps"]]
    assert item["msg"] == ("A chain's steps must all take the same kind of file: step 1 (template) takes images, "
                           "step 2 (surface) takes point clouds")


def test_fast_tools_do_not_wait_behind_surface_jobs(api, files):
    """The slow lane has its own workers (at a lower CPU priority): a template task submitted
    while surface jobs queue and run is done before they are."""
    surface_files = {"model_file": ("model.ply", (files / "model.ply").read_bytes()),
                     "scene_file": ("scene.ply", (files / "scene.ply").read_bytes())}
    slow = [requests.post(f"{api.base}/api/v1/match/surface", files=surface_files, timeout=30).json()["uid"] for _ in range(3)]
    template = textured_template()
    fast = api.submit_template(encode(scene_with_pastes(template)), encode(template)).json()["uid"]
    done = api.wait_done(fast, timeout=60)
    assert done["status"] == "done"
    still_running = [uid for uid in slow if api.task(uid)["status"] in ("queued", "processing")]
    assert still_running, "the template task waited for every surface job"
    for uid in slow:
        assert api.wait_done(uid, timeout=180)["status"] == "done"
