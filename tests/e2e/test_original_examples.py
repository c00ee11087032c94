"""The template-matching examples of the original documentation, run unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import pytest
import requests

from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client")
    template = textured_template()
    (folder / "screenshot.png").write_bytes(encode(scene_with_pastes(template)))
    (folder / "icon.png").write_bytes(encode(template))
    return folder


def test_curl_examples(api, files):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    base = api.base

    def curl(*args: str) -> dict:
        out = subprocess.run(["curl", "-s", *args], cwd=files, capture_output=True, check=True, timeout=60)
        return json.loads(out.stdout)

    task = curl("-X", "POST", f"{base}/api/v1/match/template", "-F", "image=@screenshot.png", "-F", "template=@icon.png")
    assert task["status"] == "queued" and task["tool"] == "template"
    assert task["params"] == {"method": "TM_CCOEFF_NORMED", "threshold": 0.8, "max_results": 20, "use_grayscale": True}
    assert task["input_files"] == [f"uploads/{task['uid']}/screenshot.png", f"uploads/{task['uid']}/icon.png"]
    assert task["result_files"] == [] and task["result_data"] == {}
    task2 = curl("-X", "POST", f"{base}/api/v1/match/template", "-F", "image=@screenshot.png", "-F", "template=@icon.png",
                 "-F", "method=TM_CCORR_NORMED", "-F", "threshold=0.9", "-F", "max_results=10", "-F", "use_grayscale=true")
    assert task2["params"] == {"method": "TM_CCORR_NORMED", "threshold": 0.9, "max_results": 10, "use_grayscale": True}
    for uid in (task["uid"], task2["uid"]):
        done = api.wait_done(uid)
        status = curl(f"{base}/api/v1/tasks/{uid}")
        assert status["status"] == "done" == done["status"]
        assert status["result_files"] == [f"results/{uid}/matches.png", f"results/{uid}/heatmap.png"]
        data = status["result_data"]
        assert {"method", "matches_found", "best_score", "matches"} <= set(data)
        assert data["matches_found"] >= 3 and len(data["matches"]) >= 3


def test_python_requests_example(api, files):
    # The original's Python example, with only the base URL changed.
    files_ = {"image": open(files / "screenshot.png", "rb"), "template": open(files / "icon.png", "rb")}
    data = {"method": "TM_CCOEFF_NORMED", "threshold": "0.8", "max_results": "20"}
    resp = requests.post(f"{api.base}/api/v1/match/template", files=files_, data=data)
    task = resp.json()
    assert resp.status_code == 201
    assert task["params"] == {"method": "TM_CCOEFF_NORMED", "threshold": 0.8, "max_results": 20, "use_grayscale": True}
    status = api.wait_done(task["uid"])  # the example's loop: poll until done or error
    assert status["status"] == "done"
    assert status["result_data"]["matches_found"] == 3
    assert [m["score"] >= 0.8 for m in status["result_data"]["matches"]] == [True] * 3


def test_javascript_fetch_formdata_example(api, files):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    version = subprocess.run([node, "-e", "console.log(typeof FormData)"], capture_output=True, text=True).stdout
    if version.strip() != "function":
        pytest.skip("this node has no built-in fetch/FormData")
    script = textwrap.dedent(f"""
        const fs = require("fs");
        const BASE = "{api.base}";
        const fileInput = (name, type) => new File([fs.readFileSync(name)], name, {{type}});
        (async () => {{
          const imageInput = {{files: [fileInput("screenshot.png", "image/png")]}};
          const templateInput = {{files: [fileInput("icon.png", "image/png")]}};
          const form = new FormData();
          form.append("image", imageInput.files[0]);
          form.append("template", templateInput.files[0]);
          form.append("method", "TM_CCOEFF_NORMED");
          form.append("threshold", "0.8");
          const res = await fetch(`${{BASE}}/api/v1/match/template`, {{ method: "POST", body: form }});
          const task = await res.json();
          async function waitForResult(uid) {{
            while (true) {{
              const r = await fetch(`${{BASE}}/api/v1/tasks/${{uid}}`);
              const data = await r.json();
              if (data.status === "done" || data.status === "error") return data;
              await new Promise(r => setTimeout(r, 50));
            }}
          }}
          const result = await waitForResult(task.uid);
          console.log(JSON.stringify({{status: res.status, task, result}}));
        }})().catch(e => {{ console.error(e); process.exit(1); }});
    """)
    if "File" not in subprocess.run([node, "-e", "console.log(typeof File)"], capture_output=True, text=True).stdout.replace("undefined", ""):
        script = script.replace("new File([fs.readFileSync(name)], name, {type})",
                                "Object.assign(new Blob([fs.readFileSync(name)], {type}), {name})")
    out = subprocess.run([node, "-e", script], cwd=files, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == 201 and report["task"]["status"] == "queued"
    assert report["task"]["params"]["threshold"] == 0.8
    assert report["result"]["status"] == "done"
    assert report["result"]["result_data"]["matches_found"] == 3
