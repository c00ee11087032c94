"""``/api/v1/webhooks``: registrations, their deliveries, and resends — thin handlers.

Every id, uid and field is checked (webhook_forms) before anything reaches NATS; URLs are shown
without ``user:password@`` and secrets never.
"""

from __future__ import annotations

import structlog
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import HTTPException, NotFoundException

from contracts.api import WEBHOOK_BODY_MAX_BYTES, DeliveryList, PageQuery, ResendOut, WebhookIn, WebhookOut, WebhookRecord
from contracts.events import TERMINAL_STATUSES
from contracts.view import view_envelope
from contracts.webhook_targets import redact_url
from services.gateway.apidoc import RouteDoc
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.forms import parse_params
from services.gateway.paths import is_task_uid, is_webhook_id
from services.gateway.settings import GatewaySettings
from services.gateway.webhook_forms import validate_registration
from services.gateway.webhooks import WebhookStore

log = structlog.get_logger("gateway")


def _shown(record: WebhookRecord) -> WebhookOut:
    return WebhookOut(id=record.id, url=redact_url(record.url), created_at=record.created_at)


async def _hook_or_404(webhooks: WebhookStore, webhook_id: str) -> WebhookRecord:
    # An id that cannot exist never becomes a KV key (a 5,000-character one broke the connection).
    record = await webhooks.get(webhook_id) if is_webhook_id(webhook_id) else None
    if record is None:
        raise NotFoundException(detail="Webhook not found")
    return record


class WebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]

    @post("", status_code=201, request_max_body_size=WEBHOOK_BODY_MAX_BYTES, summary="Register a webhook",
          opt={"doc": RouteDoc(json_body=WebhookIn, errors=(413, 422))})
    async def register(self, request: Request, webhooks: WebhookStore, settings: GatewaySettings) -> WebhookOut:
        wanted, errors = validate_registration(await request.body(), settings.webhook_allow_private_targets)
        if wanted is None:
            raise InvalidRequest(errors)
        record = await webhooks.add(wanted.url, wanted.secret)
        log.info("webhook_registered", webhook_id=record.id)
        return _shown(record)

    @get("", sync_to_thread=False, summary="The registered webhooks (never their secrets)")
    def list_all(self, webhooks: WebhookStore) -> list[WebhookOut]:
        return [_shown(record) for record in webhooks.all()]

    @delete("/{webhook_id:str}", status_code=204, summary="Remove a webhook", opt={"doc": RouteDoc(errors=(404,))})
    async def remove(self, webhook_id: str, webhooks: WebhookStore) -> None:
        if not is_webhook_id(webhook_id) or not await webhooks.delete(webhook_id):
            raise NotFoundException(detail="Webhook not found")
        log.info("webhook_deleted", webhook_id=webhook_id)

    @get("/{webhook_id:str}/deliveries", summary="Every delivery attempt to a webhook, newest first",
         opt={"doc": RouteDoc(query=PageQuery, errors=(404, 422))})
    async def deliveries(self, webhook_id: str, request: Request, webhooks: WebhookStore) -> DeliveryList:
        page, errors = parse_params(PageQuery, request.query_params, PageQuery(), ("query",))
        if errors or page is None:
            raise InvalidRequest(errors)
        await _hook_or_404(webhooks, webhook_id)
        total, records = await webhooks.attempts(webhook_id, page.offset, page.limit)
        return DeliveryList(total=total, deliveries=records)

    @post("/{webhook_id:str}/deliveries/{uid:str}/resend", status_code=202,
          summary="Send a finished task's notification to a webhook again", opt={"doc": RouteDoc(errors=(404, 409))})
    async def resend(self, webhook_id: str, uid: str, webhooks: WebhookStore, backend: Backend) -> ResendOut:
        await _hook_or_404(webhooks, webhook_id)
        view = await backend.task(uid) if is_task_uid(uid) else None
        if view is None:
            raise NotFoundException(detail="Task not found")
        task = view_envelope.decode(view)
        if task.status not in TERMINAL_STATUSES:
            # Nothing to resend yet: the notification goes out by itself when the task ends.
            raise HTTPException(status_code=409, detail="Task has not finished yet; its notification is sent when it ends")
        await webhooks.request_resend(webhook_id, uid, task.tool)
        log.info("webhook_resend_requested", webhook_id=webhook_id, uid=uid)
        return ResendOut(webhook_id=webhook_id, uid=uid)
