"""The projector's pure core: fold one event into a task's view.

``apply`` returns the same object when the event changes nothing (a duplicate, a replay, an
event for a task that already ended), so the caller knows there is nothing to write.
Status only moves forward (queued -> processing -> done | error), so a late or redelivered
event can never undo a newer state.
"""

from __future__ import annotations

from contracts.events import (
    TERMINAL_STATUSES,
    AnyEvent,
    StepCompleted,
    TaskFinished,
    TaskProgressed,
    TaskStarted,
    TaskSubmitted,
    WebhookAttempted,
)
from contracts.tools import ChainParams, ChainProgress
from contracts.view import INDEX_ALL, TaskView, moved, queued_view, tool_index


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
            return moved(view, "processing", attempts=max(view.attempts, event.attempt),
                         updated_at=event.occurred_at, seq=seq)
        case TaskProgressed():
            return moved(view, "processing", stage=event.stage, updated_at=event.occurred_at, seq=seq)
        case StepCompleted():
            return _with_step(view, event, seq)
        case TaskFinished():
            return moved(view, event.status, result_files=list(event.result_files), result_data=event.result_data,
                         error=event.error, stage=None, updated_at=event.occurred_at, seq=seq)
        case WebhookAttempted():
            return view
    return view


def _with_step(view: TaskView, event: StepCompleted, seq: int) -> TaskView:
    """Chain progress: the steps completed so far appear while the chain runs."""
    done = view.result_data.steps if isinstance(view.result_data, ChainProgress) else []
    steps = sorted([s for s in done if s.step != event.step.step] + [event.step], key=lambda s: s.step)
    total = len(view.params.steps) if isinstance(view.params, ChainParams) else len(steps)
    progress = ChainProgress(completed_step=max(s.step for s in steps), total_steps=total, steps=steps)
    files = [f for s in steps for f in s.result_files]
    return moved(view, "processing", result_data=progress, result_files=files, updated_at=event.occurred_at, seq=seq)


def index_entries(event: AnyEvent) -> list[str]:
    """The task-list indexes a newly submitted task is appended to."""
    if isinstance(event, TaskSubmitted):
        return [INDEX_ALL, tool_index(event.tool)]
    return []
