"""NATS names, defined once: the event stream, its subjects, the buckets."""

from __future__ import annotations

EVENT_STREAM = "AEROVISION_EVENTS"
EVENT_PREFIX = "aerovision.events"
EVENT_SUBJECTS = f"{EVENT_PREFIX}.>"

# Subject kinds: the second-to-last tokens let subscribers filter by kind, tool and uid,
# e.g. "aerovision.events.finished.>" or "aerovision.events.*.*.<uid>".
KIND_SUBMITTED = "submitted"
KIND_STARTED = "started"
KIND_PROGRESSED = "progressed"
KIND_STEP_COMPLETED = "step_completed"
KIND_FINISHED = "finished"
KIND_WEBHOOK_ATTEMPTED = "webhook_attempted"
KIND_WEBHOOK_REGISTERED = "webhook_registered"  # <tool> is "webhooks", <uid> the webhook's id
KIND_WEBHOOK_REMOVED = "webhook_removed"
KIND_SETTINGS_CHANGED = "settings_changed"  # <tool> is the tool whose defaults changed, <uid> the change's id

TASK_VIEW_BUCKET = "aerovision-tasks"
TASK_INDEX_BUCKET = "aerovision-task-index"
SETTINGS_BUCKET = "aerovision-settings"
WEBHOOKS_BUCKET = "aerovision-webhooks"
# Webhooks: the state of each (task, webhook) delivery (the notifier's, kept: a redelivered or
# replayed event finds it and sends nothing twice); the outbox, one key per delivery still owed
# (the notifier's schedule, and where the gateway asks for a resend); and the attempts, per
# webhook, in pages (the notifier's projection of webhook.attempted events, read by the gateway).
DELIVERIES_BUCKET = "aerovision-webhook-deliveries"
WEBHOOK_OUTBOX_BUCKET = "aerovision-webhook-outbox"
WEBHOOK_ATTEMPTS_BUCKET = "aerovision-webhook-attempts"
FILES_BUCKET = "aerovision-files"

MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
MATCHER_CONSUMER = "matcher"  # the fast lane's; the slow lane's is "matcher-slow"
MATCHER_CONSUMERS = {"fast": MATCHER_CONSUMER, "slow": "matcher-slow"}
# The projector's consumer pushes to a fixed subject (outside the event subjects): a pull
# consumer costs a request and a status message per batch, twice the traffic of the events.
PROJECTOR_CONSUMER = "projector-push"
PROJECTOR_DELIVER_SUBJECT = "aerovision.internal.projector"
LEGACY_PROJECTOR_CONSUMERS = ("projector",)
# ``aerovision replay --switch`` asks the running projector to adopt the rebuilt view here.
PROJECTOR_SWITCH_SUBJECT = "aerovision.internal.projector-switch"
REPLAY_SUFFIX = "-replay"  # the rebuilt view's buckets: aerovision-tasks-replay, ...
NOTIFIER_CONSUMER = "notifier"
NOTIFIER_ATTEMPTS_CONSUMER = "notifier-attempts"


def event_subject(kind: str, tool: str, uid: str) -> str:
    """Subject of one event: aerovision.events.<kind>.<tool>.<uid>."""
    return f"{EVENT_PREFIX}.{kind}.{tool}.{uid}"


def kind_filter(kind: str) -> str:
    """Subject filter matching every event of one kind."""
    return f"{EVENT_PREFIX}.{kind}.>"


def tool_filter(kind: str, tool: str) -> str:
    """Subject filter matching every event of one kind of one tool."""
    return f"{EVENT_PREFIX}.{kind}.{tool}.*"


def task_filter(uid: str) -> str:
    """Subject filter matching every event of one task."""
    return f"{EVENT_PREFIX}.*.*.{uid}"


# Where a task's files live in the file store, and under which paths clients download them.
def upload_path(uid: str, name: str) -> str:
    return f"uploads/{uid}/{name}"


def thumbnail_path(uid: str, name: str) -> str:
    return f"thumbnails/{uid}/{name}"


def result_path(uid: str, name: str) -> str:
    """A result file; a chain step's are named ``step<N>/<file>``."""
    return f"results/{uid}/{name}"
