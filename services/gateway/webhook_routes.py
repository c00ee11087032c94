"""``/api/v1/webhooks``: registrations, their deliveries, and resends — thin handlers.

Every id, uid and field is checked (webhook_forms) before anything reaches NATS; URLs are shown
without ``user:password@`` and secrets never.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import structlog
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from contracts.api import (
    WEBHOOK_BODY_MAX_BYTES,
    WEBHOOK_SECRET_MAX_LENGTH,
    WEBHOOK_URL_MAX_LENGTH,
    DeliveryList,
    ErrorBody,
    ResendOut,
    ValidationErrorBody,
    WebhookOut,
    WebhookRecord,
)
from contracts.webhook_targets import redact_url
from services.gateway.backend import Backend
from services.gateway.errors import InvalidRequest
from services.gateway.settings import GatewaySettings
from services.gateway.webhook_forms import is_task_uid, is_webhook_id, query_int, validate_registration
from services.gateway.webhooks import WebhookStore

log = structlog.get_logger("gateway")


class _TaskEnd(msgspec.Struct):
    """What a resend needs of the task view."""

    status: str
    tool: str


_task_end = msgspec.json.Decoder(_TaskEnd)


@dataclass
class _RegistrationOperation(Operation):
    """The registration body in the OpenAPI document: the handler reads it itself (to answer in
    the API's 422 shape with a bounded ``input``), so Litestar cannot infer it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={"application/json": OpenAPIMediaType(schema=Schema(
            type=OpenAPIType.OBJECT, required=["url"], properties={
                "url": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI, min_length=1,
                              max_length=WEBHOOK_URL_MAX_LENGTH, description="http or https URL (docs/limits.md)"),
                "secret": Schema(one_of=[Schema(type=OpenAPIType.STRING, max_length=WEBHOOK_SECRET_MAX_LENGTH),
                                         Schema(type=OpenAPIType.NULL)],
                                 description="HMAC-SHA256 key: deliveries carry X-Webhook-Signature"),
            }))})


_NOT_FOUND = ResponseSpec(ErrorBody, description="Unknown webhook (or task)")
_INVALID = ResponseSpec(ValidationErrorBody, description="Invalid fields, every one listed")


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

    @post("", status_code=201, request_max_body_size=WEBHOOK_BODY_MAX_BYTES, operation_class=_RegistrationOperation,
          responses={422: _INVALID, 413: ResponseSpec(ErrorBody, description="Body over 4 MiB")})
    async def register(self, request: Request, webhooks: WebhookStore, settings: GatewaySettings) -> WebhookOut:
        wanted, errors = validate_registration(await request.body(), settings.webhook_allow_private_targets)
        if wanted is None:
            raise InvalidRequest(errors)
        record = await webhooks.add(wanted.url, wanted.secret)
        log.info("webhook_registered", webhook_id=record.id)
        return _shown(record)

    @get("", sync_to_thread=False)
    def list_all(self, webhooks: WebhookStore) -> list[WebhookOut]:
        return [_shown(record) for record in webhooks.all()]

    @delete("/{webhook_id:str}", status_code=204, responses={404: _NOT_FOUND})
    async def remove(self, webhook_id: str, webhooks: WebhookStore) -> None:
        if not is_webhook_id(webhook_id) or not await webhooks.delete(webhook_id):
            raise NotFoundException(detail="Webhook not found")
        log.info("webhook_deleted", webhook_id=webhook_id)

    @get("/{webhook_id:str}/deliveries", responses={404: _NOT_FOUND, 422: _INVALID})
    async def deliveries(self, webhook_id: str, request: Request, webhooks: WebhookStore) -> DeliveryList:
        offset, e1 = query_int(request.query_params.get("offset"), "offset", 0, 0, None)
        limit, e2 = query_int(request.query_params.get("limit"), "limit", 50, 1, 200)
        if e1 or e2:
            raise InvalidRequest([e for e in (e1, e2) if e is not None])
        await _hook_or_404(webhooks, webhook_id)
        total, records = await webhooks.attempts(webhook_id, offset, limit)
        return DeliveryList(total=total, deliveries=records)

    @post("/{webhook_id:str}/deliveries/{uid:str}/resend", status_code=202, responses={
        404: _NOT_FOUND, 409: ResponseSpec(ErrorBody, description="The task has not finished yet")})
    async def resend(self, webhook_id: str, uid: str, webhooks: WebhookStore, backend: Backend) -> ResendOut:
        await _hook_or_404(webhooks, webhook_id)
        view = await backend.task(uid) if is_task_uid(uid) else None
        if view is None:
            raise NotFoundException(detail="Task not found")
        task = _task_end.decode(view)
        if task.status not in ("done", "error"):
            # Nothing to resend yet: the notification goes out by itself when the task ends.
            raise HTTPException(status_code=409, detail="Task has not finished yet; its notification is sent when it ends")
        await webhooks.request_resend(webhook_id, uid, task.tool)
        log.info("webhook_resend_requested", webhook_id=webhook_id, uid=uid)
        return ResendOut(webhook_id=webhook_id, uid=uid)
