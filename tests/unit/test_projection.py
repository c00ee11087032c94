"""The projector's pure core: every event folds in once, in any replay, never backwards."""

from __future__ import annotations

import msgspec

from contracts import events
from contracts.events import StepCompleted, TaskProgressed, TaskStarted, WebhookAttempted
from contracts.params import FeatureParams, TemplateParams
from contracts.results import NoResult, TemplateMatch, TemplateResult
from contracts.tools import STEP_RECORDS, STEP_SPECS, ChainParams, ChainProgress
from contracts.view import decode_view, view_encoder
from services.projector.apply import apply, index_entries

UID = "d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"
RESULT = TemplateResult(method="TM_CCOEFF_NORMED", matches_found=1, filtered_matches=1, best_score=1.0,
                        matches=[TemplateMatch(1, 2, 3, 4, 1.0)])


def submitted():
    return events.submitted("template", uid=UID, params=TemplateParams(threshold=0.8),
                            input_files=[f"uploads/{UID}/a.png"], thumbnails=[f"thumbnails/{UID}/a.png"])


def finished(status="done"):
    if status == "done":
        return events.finished("template", "done", uid=UID, result_files=[f"results/{UID}/m.png"], result_data=RESULT)
    return events.finished("template", "error", uid=UID, error="bad")


def chain_submitted():
    steps = [STEP_SPECS["template"](params=TemplateParams()), STEP_SPECS["feature"](params=FeatureParams())]
    return events.submitted("chain", uid=UID, params=ChainParams(steps=steps), input_files=[], thumbnails=[])


def fold(events):
    view = None
    for seq, event in events:
        view = apply(view, event, seq)
    return view


def test_lifecycle():
    view = apply(None, submitted(), 1)
    assert (view.status, view.seq, view.result_files) == ("queued", 1, [])
    view = apply(view, TaskStarted(uid=UID, tool="template", worker="w", attempt=1), 2)
    assert (view.status, view.attempts) == ("processing", 1)
    view = apply(view, finished(), 3)
    assert view.status == "done" and view.result_data == RESULT and view.seq == 3
    assert view.created_at == submitted().occurred_at or view.created_at
    # The stored JSON reads back into the same typed view.
    assert decode_view(view_encoder.encode(view)) == view


def test_views_keep_the_wire_shape():
    queued = msgspec.json.decode(view_encoder.encode(apply(None, submitted(), 1)))
    assert list(queued) == ["uid", "status", "tool", "params", "created_at", "updated_at", "input_files",
                            "thumbnails", "result_files", "result_data", "error", "attempts", "seq", "stage", "position"]
    assert queued["result_data"] == {} and queued["params"]["threshold"] == 0.8
    failed = fold([(1, submitted()), (2, finished("error"))])
    assert failed.result_data == NoResult() and msgspec.json.decode(view_encoder.encode(failed))["result_data"] == {}


def test_replay_and_duplicates_change_nothing():
    events = [(1, submitted()), (2, TaskStarted(uid=UID, tool="template", worker="w")), (3, finished())]
    once = fold(events)
    assert apply(once, events[1][1], 2) is once  # a redelivered event is a no-op
    assert apply(once, events[2][1], 3) is once
    assert fold(events + events) == once


def test_status_never_goes_backwards():
    done = fold([(1, submitted()), (3, finished())])
    late_start = apply(done, TaskStarted(uid=UID, tool="template", worker="w", attempt=2), 4)
    assert late_start is done and late_start.status == "done"
    second_finish = apply(done, finished("error"), 5)
    assert second_finish.status == "done"


def test_events_without_a_submission_are_ignored():
    assert apply(None, finished(), 7) is None


def test_chain_steps_show_progress():
    view = fold([(1, chain_submitted())])
    record = STEP_RECORDS["template"](step=1, params=TemplateParams(), status="done", found=False,
                                      result_data=RESULT, result_files=[f"results/{UID}/step1/matches.png"])
    step = StepCompleted(uid=UID, tool="chain", step=record)
    view = apply(view, step, 2)
    assert view.status == "processing" and isinstance(view.result_data, ChainProgress)
    assert (view.result_data.completed_step, view.result_data.total_steps) == (1, 2)
    assert view.result_data.steps == [record]
    assert view.result_files == [f"results/{UID}/step1/matches.png"]
    assert apply(view, step, 2) is view
    assert decode_view(view_encoder.encode(view)) == view


def test_stages_show_while_a_task_runs_and_clear_when_it_ends():
    view = fold([(1, submitted()), (2, TaskStarted(uid=UID, tool="template", worker="w"))])
    view = apply(view, TaskProgressed(uid=UID, tool="template", stage="matching"), 3)
    assert (view.status, view.stage) == ("processing", "matching")
    assert apply(view, finished(), 4).stage is None


def test_webhook_attempts_do_not_touch_the_view():
    view = fold([(1, submitted()), (2, finished())])
    attempt = WebhookAttempted(uid=UID, tool="template", webhook_id="wh_1", endpoint="http://x", attempt=1, delivered=True)
    assert apply(view, attempt, 3) is view


def test_index_entries():
    assert index_entries(submitted()) == ["all", "tool-template"]
    assert index_entries(finished()) == []
