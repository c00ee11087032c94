"""The projector's pure core: fold one event into a task's view.

``apply`` returns the same object when the event changes nothing (a duplicate, a replay, an
event for a task that already ended), so the caller knows there is nothing to write.
Status only moves forward (queued -> processing -> done | error), so a late or redelivered
event can never undo a newer state.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events import (
    TERMINAL_STATUSES,
    AnyEvent,
    StepCompleted,
    TaskFinished,
    TaskStarted,
    TaskSubmitted,
    WebhookAttempted,
)
from contracts.view import INDEX_ALL, TaskView, queued_view, tool_index


def apply(view: TaskView | None, event: AnyEvent, seq: int) -> TaskView | None:
    """The view after ``event`` (stored at stream sequence ``seq``)."""
    if view is not None and seq <= view.seq:
        return view
    match event:
        case TaskSubmitted():
            return queued_view(event, seq) if view is None else view
        case _ if view is None or view.status in TERMINAL_STATUSES:
            return view
        case TaskStarted():
            return msgspec.structs.replace(
                view, status="processing", attempts=max(view.attempts, event.attempt),
                updated_at=event.occurred_at, seq=seq,
            )
        case StepCompleted():
            return _with_step(view, event, seq)
        case TaskFinished():
            return msgspec.structs.replace(
                view, status=event.status, result_files=list(event.result_files),
                result_data=dict(event.result_data), error=event.error,
                updated_at=event.occurred_at, seq=seq,
            )
        case WebhookAttempted():
            return view
    return view


def _with_step(view: TaskView, event: StepCompleted, seq: int) -> TaskView:
    """Chain progress: the steps completed so far appear while the chain runs."""
    step: dict[str, Any] = {
        "step": event.step, "tool": event.step_tool, "params": event.params, "status": event.status,
        "found": event.found, "result_data": event.result_data, "result_files": event.result_files,
    }
    if event.error:
        step["error"] = event.error
    steps = [s for s in view.result_data.get("steps", []) if s.get("step") != event.step]
    steps.append(step)
    steps.sort(key=lambda s: s["step"])
    files = [f for s in steps for f in s.get("result_files", [])]
    data = {**view.result_data, "completed_step": max(s["step"] for s in steps), "steps": steps}
    return msgspec.structs.replace(
        view, status="processing", result_data=data, result_files=files,
        updated_at=event.occurred_at, seq=seq,
    )


def index_entries(event: AnyEvent) -> list[str]:
    """The task-list indexes a newly submitted task is appended to."""
    if isinstance(event, TaskSubmitted):
        return [INDEX_ALL, tool_index(event.tool)]
    return []
