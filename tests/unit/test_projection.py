"""The projector's pure core: every event folds in once, in any replay, never backwards."""

from __future__ import annotations

from contracts.events import StepCompleted, TaskFinished, TaskStarted, TaskSubmitted, WebhookAttempted
from services.projector.apply import apply, index_entries

UID = "d83ae21c-94bc-4a11-b3f7-1a2b3c4d5e6f"


def submitted():
    return TaskSubmitted(uid=UID, tool="template", params={"threshold": 0.8},
                         input_files=[f"uploads/{UID}/a.png"], thumbnails=[f"thumbnails/{UID}/a.png"])


def finished(status="done"):
    return TaskFinished(uid=UID, tool="template", status=status, result_files=[f"results/{UID}/m.png"],
                        result_data={"matches_found": 1}, error=None if status == "done" else "bad")


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
    assert view.status == "done" and view.result_data == {"matches_found": 1} and view.seq == 3
    assert view.created_at == submitted().occurred_at or view.created_at


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
    view = fold([(1, submitted())])
    step = StepCompleted(uid=UID, tool="chain", step=1, step_tool="template", params={}, status="done",
                         found=False, result_files=[f"results/{UID}/step1/matches.png"])
    view = apply(view, step, 2)
    assert view.status == "processing" and view.result_data["steps"][0]["step"] == 1
    assert view.result_files == [f"results/{UID}/step1/matches.png"]
    assert apply(view, step, 2) is view


def test_webhook_attempts_do_not_touch_the_view():
    view = fold([(1, submitted()), (2, finished())])
    attempt = WebhookAttempted(uid=UID, tool="template", webhook_id="wh_1", url="http://x", attempt=1, delivered=True)
    assert apply(view, attempt, 3) is view


def test_index_entries():
    assert index_entries(submitted()) == ["all", "tool-template"]
    assert index_entries(finished()) == []
