"""``/v1/webhook-metrics``: delivery metrics of the whole tenant (per endpoint:
``GET /v1/endpoints/{id}/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.schemas import UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS
from interlink.webhooks import metrics
from interlink.webhooks.metrics_schemas import WebhookDeliveryMetrics

router = APIRouter(tags=["deliveries"], responses=STANDARD_ERRORS)


@router.get("/v1/webhook-metrics", response_model=WebhookDeliveryMetrics)
async def get_webhook_metrics(
    request: Request,
    since: UtcDatetime | None = Query(None, description="Window start (default: 24 hours before until)."),
    until: UtcDatetime | None = Query(None, description="Window end, exclusive (default: now)."),
    top: int = Query(
        metrics.DEFAULT_TOP,
        ge=1,
        le=metrics.MAX_TOP,
        description="How many endpoints to break down (those with the most deliveries in the window).",
    ),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> WebhookDeliveryMetrics:
    """Delivery metrics of the tenant over ``[since, until)`` (at most 90 days), with its busiest
    endpoints broken down in ``endpoints``."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        return await metrics.tenant_metrics(session, actor.tenant_id, since, until, top=top)
