"""A client generated from the live /schema/openapi.json (openapi-python-client, as a REST user
would make one) submits every tool and reads its typed result: the document describes the API
well enough to program against, multipart forms and tagged result unions included."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contracts.tools import TOOLS
from infra.ply import write_ply
from tests.harness import DATA, wait_for
from tests.images import encode, scene_with_pastes, textured_template
from tests.surface_scenes import load_model, make_scene, model_bytes

pytestmark = pytest.mark.slow
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def client_package(system, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    (folder / "openapi.json").write_bytes(system.http.get(f"{system.base}/schema/openapi.json", timeout=30).content)
    made = subprocess.run([str(GENERATOR), "generate", "--path", "openapi.json", "--output-path", "generated_client",
                           "--meta", "none"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert (folder / "generated_client" / "client.py").exists(), made.stdout[-3000:] + made.stderr[-3000:]
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("generated_client")
    finally:
        sys.path.remove(str(folder))


def _wait(read_task, client, uid: str, timeout: float = 120):
    def ended():
        task = read_task.sync(client=client, uid=uid)
        return task if task.status in ("done", "error") else None

    return wait_for(ended, timeout=timeout, interval=0.1, what=f"task {uid} to end")


def test_a_generated_client_submits_every_tool_and_reads_typed_results(system, client_package):
    pkg = client_package.__name__
    submit = {tool: importlib.import_module(f"{pkg}.api.submissions.submit_{tool}") for tool in TOOLS}
    read_task = importlib.import_module(f"{pkg}.api.tasks.read_task")
    list_tasks = importlib.import_module(f"{pkg}.api.tasks.list_tasks")
    models = importlib.import_module(f"{pkg}.models")
    File = importlib.import_module(f"{pkg}.types").File
    client = client_package.Client(base_url=system.base, raise_on_unexpected_status=True, timeout=60)

    def upload(data: bytes, name: str) -> File:
        return File(payload=io.BytesIO(data), file_name=name)

    template = textured_template()
    scene = make_scene(5, partial=True)
    bodies = {
        "template": models.SubmitTemplateBody(image=upload(encode(scene_with_pastes(template)), "scene.png"),
                                              template=upload(encode(template), "template.png"),
                                              threshold=0.9, use_grayscale=True),
        "feature": models.SubmitFeatureBody(query_image=upload((DATA / "graf1.png").read_bytes(), "graf1.png"),
                                            train_image=upload((DATA / "graf3.png").read_bytes(), "graf3.png"),
                                            detector=models.SubmitFeatureBodyDetector.SIFT),
        "surface": models.SubmitSurfaceBody(model_file=upload(model_bytes(), "model.ply"),
                                            scene_file=upload(write_ply(scene.xyz, scene.normals), "scene.ply")),
        "chain": models.SubmitChainBody(image=upload((DATA / "box_in_scene.png").read_bytes(), "photo.png"),
                                        template=upload((DATA / "box.png").read_bytes(), "icon.png"),
                                        steps=json.dumps([{"tool": "template", "params": {"threshold": 0.95}},
                                                          {"tool": "feature", "params": {"detector": "SIFT"}}])),
    }
    accepted = {tool: submit[tool].sync(client=client, body=body) for tool, body in bodies.items()}
    for tool, task in accepted.items():
        assert type(task).__name__.startswith(tool.capitalize() + "View"), type(task)  # the 201's own model
        assert task.status == "queued" and task.tool == tool

    done = {tool: _wait(read_task, client, task.uid) for tool, task in accepted.items()}
    assert {tool: (type(t).__name__, t.status) for tool, t in done.items()} == {
        tool: (f"{tool.capitalize()}ViewDone", "done") for tool in TOOLS}
    assert done["template"].result_data.filtered_matches == 3
    assert done["feature"].result_data.good_matches > 0 and len(done["feature"].result_data.corners) == 4
    surface = done["surface"].result_data
    assert surface.poses_found >= 1
    xyz, _ = load_model()
    points = np.column_stack([xyz, np.ones(len(xyz))])
    error = np.linalg.norm(points @ np.asarray(surface.pose).T - points @ scene.pose.T, axis=1).mean()
    assert error / float(np.linalg.norm(xyz.max(axis=0) - xyz.min(axis=0))) < 0.1
    chain = done["chain"].result_data
    assert chain.chain_result.value == "found" and chain.completed_step == 2
    assert [step.status.value for step in chain.steps] == ["done", "done"]

    page = list_tasks.sync(client=client, status=models.ListTasksStatus.DONE, limit=200)
    listed = {t.uid for t in page.tasks}
    assert {t.uid for t in accepted.values()} <= listed and page.total >= 4
