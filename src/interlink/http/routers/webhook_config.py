"""``/v1/webhook-config``: the tenant's webhook defaults (the guide's ``WebhookConfig``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS
from interlink.webhooks import config as webhook_config
from interlink.webhooks.config_schemas import WebhookConfig, WebhookConfigUpdate

router = APIRouter(prefix="/v1/webhook-config", tags=["webhook config"], responses=STANDARD_ERRORS)


@router.get("", response_model=WebhookConfig)
async def get_webhook_config(
    request: Request, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ))
) -> WebhookConfig:
    """The tenant's retry schedule, retention, auto-disable window, circuit breaker and default
    timeout (built-in values until first changed; ``createdAt`` is then null)."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        return await webhook_config.get(session, actor)


@router.put("", response_model=WebhookConfig)
async def update_webhook_config(
    body: WebhookConfigUpdate,
    request: Request,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookConfig:
    """Change the fields given (the others keep their value); audited as ``webhook_config.updated``.
    ``retrySchedule: null`` restores the built-in schedule, ``circuitBreaker: null`` turns it off."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if body.circuit_breaker is not None:
        changes["circuit_breaker"] = body.circuit_breaker.model_dump(by_alias=True)
    async with get_runtime(request).db.unit_of_work() as session:
        return await webhook_config.update(session, actor, changes)
