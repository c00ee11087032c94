"""A worker's whole job on real images: step by step (as the matcher runs it) and to the end."""

from __future__ import annotations

import cv2
import numpy as np

from services.matcher.jobs import Job, job_steps, run_job
from tests.harness import drain
from tests.unit.test_template import PASTES, T, _scene


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _job(image: bytes, template: bytes, **params) -> Job:
    return Job(uid="u1", tool="template", params={"threshold": 0.9, **params},
               inputs=[("image", image), ("template", template)])




def test_steps_hand_over_the_larger_image_first_then_the_outcome() -> None:
    scene, template = _scene(gray=False)
    parts, outcome = drain(job_steps(_job(_png(scene), _png(template))))
    assert [p.name for p in parts] == ["matches.png", "heatmap.png"]
    assert len(parts[0].data) > len(parts[1].data)
    drawn = cv2.imdecode(np.frombuffer(parts[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == scene.shape
    assert outcome.status == "done" and outcome.files == []
    found = {(m.x, m.y) for m in outcome.result_data.matches}
    assert set(PASTES) <= found


def test_run_job_gives_the_same_result_with_every_file() -> None:
    scene, template = _scene(gray=True)
    job = _job(_png(scene), _png(template))
    parts, stepped = drain(job_steps(job))
    whole = run_job(job)
    assert whole.result_data == stepped.result_data
    assert whole.files == [(p.name, p.data) for p in parts]
    assert all((m.w, m.h) == (T, T) for m in whole.result_data.matches)


def test_bad_input_ends_in_an_error_outcome_without_files() -> None:
    scene, _ = _scene(gray=True)
    parts, outcome = drain(job_steps(_job(_png(scene), b"not an image")))
    assert parts == [] and outcome.status == "error"
    assert "template" in (outcome.error or "")
    assert run_job(_job(_png(scene), b"")).status == "error"


def test_an_unknown_tool_is_an_error_outcome() -> None:
    outcome = run_job(Job(uid="u2", tool="teleport", params={}, inputs=[]))
    assert outcome.status == "error" and "teleport" in (outcome.error or "")
