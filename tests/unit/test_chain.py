"""Chains on real images: steps in order, stop at the first that finds, the rest skipped, resumable."""

from __future__ import annotations

import pytest

from contracts.params import TemplateParams
from contracts.tools import STEP_SPECS, ChainParams, ChainProgress, ChainResult
from services.matcher.chain import ChainFailed, run_chain
from services.matcher.jobs import Job, run_job
from services.matcher.parts import ResultFile, StepDone
from tests.harness import drain
from tests.images import encode, scene_with_pastes, textured_template


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    # The pastes are JPEG-compressed, so a perfect score is out of reach: threshold 1.0 finds nothing.
    template = textured_template()
    scene = scene_with_pastes(template)
    return encode(scene, ".jpg"), encode(template)


def _chain(*thresholds: float) -> ChainParams:
    return ChainParams(steps=[STEP_SPECS["template"](params=TemplateParams(threshold=t)) for t in thresholds])




@pytest.mark.parametrize(("thresholds", "found_at"), [
    ((0.8, 1.0, 1.0), 1),
    ((1.0, 0.8, 1.0), 2),
    ((1.0, 1.0, 0.8), 3),
])
def test_the_chain_stops_at_the_first_step_that_finds(pair, thresholds, found_at):
    parts, result = drain(run_chain(_chain(*thresholds), *pair))
    assert isinstance(result, ChainResult)
    assert (result.chain_result, result.completed_step, result.total_steps) == ("found", found_at, 3)
    assert [s.status for s in result.steps] == ["done"] * found_at + ["skipped"] * (3 - found_at)
    assert [s.found for s in result.steps] == [False] * (found_at - 1) + [True] + [False] * (3 - found_at)
    found = result.steps[found_at - 1]
    assert found.result_data.filtered_matches == 3
    assert all(s.result_data is None and s.result_files == [] for s in result.steps[found_at:])
    # Each step that ran handed over its files under its own folder, then itself.
    done = [p.record.step for p in parts if isinstance(p, StepDone)]
    assert done == list(range(1, found_at + 1))
    files = [p.name for p in parts if isinstance(p, ResultFile)]
    assert files == [f"step{n}/{name}" for n in done for name in ("matches.png", "heatmap.png")]
    assert found.result_files == [f"step{found_at}/matches.png", f"step{found_at}/heatmap.png"]


def test_nothing_found_runs_every_step(pair):
    _, result = drain(run_chain(_chain(1.0, 1.0), *pair))
    assert (result.chain_result, result.completed_step, result.total_steps) == ("not_found", 2, 2)
    assert [(s.status, s.found) for s in result.steps] == [("done", False), ("done", False)]
    assert all(s.result_data.filtered_matches == 0 for s in result.steps)


def test_a_retried_chain_resumes_after_the_recorded_steps(pair):
    first, _ = drain(run_chain(_chain(1.0, 1.0, 0.8), *pair))
    recorded = [p.record for p in first if isinstance(p, StepDone)][:2]
    parts, result = drain(run_chain(_chain(1.0, 1.0, 0.8), *pair, done=recorded))
    assert [p.record.step for p in parts if isinstance(p, StepDone)] == [3]
    assert all(p.name.startswith("step3/") for p in parts if isinstance(p, ResultFile))
    assert result.steps[:2] == recorded and result.completed_step == 3 and result.chain_result == "found"


def test_when_every_step_fails_the_task_fails_with_each_reason():
    with pytest.raises(ChainFailed) as failed:
        drain(run_chain(_chain(0.8, 0.9), b"not an image", b"nor this"))
    assert str(failed.value).startswith("Every step failed: step 1 (template): ")
    assert isinstance(failed.value.progress, ChainProgress)
    assert [s.status for s in failed.value.progress.steps] == ["error", "error"]
    assert all("could not decode" in s.error for s in failed.value.progress.steps)


def test_a_chain_job_fails_as_a_task_with_its_steps():
    outcome = run_job(Job(uid="u", tool="chain", params=_chain(0.8), inputs=[("image", b"x"), ("template", b"y")]))
    assert outcome.status == "error" and outcome.error.startswith("Every step failed")
    assert isinstance(outcome.result_data, ChainProgress) and outcome.result_data.steps[0].status == "error"
