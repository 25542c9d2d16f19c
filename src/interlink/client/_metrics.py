"""SDK access to delivery metrics: ``client.webhook_metrics(...)`` for the whole tenant (and
``client.endpoints.metrics(id, ...)`` for one endpoint, in :mod:`interlink.client._endpoints`).

Times must be timezone-aware; the window defaults to the last 24 hours and spans at most 90 days.
"""

from __future__ import annotations

from datetime import datetime

from interlink.client._base import AsyncResource, Call, SyncResource, call, query
from interlink.webhooks.metrics_schemas import (
    DeliveryCounts,
    EndpointMetricsSummary,
    WebhookDeliveryMetrics,
)

__all__ = [
    "AsyncWebhookMetrics",
    "DeliveryCounts",
    "EndpointMetricsSummary",
    "WebhookDeliveryMetrics",
    "WebhookMetrics",
    "window_params",
]

PATH = "/v1/webhook-metrics"


def window_params(
    since: datetime | None, until: datetime | None, top: int | None = None
) -> dict[str, str | int]:
    return query({"since": since, "until": until, "top": top})


def _metrics_call(
    since: datetime | None, until: datetime | None, top: int | None, tenant_id: str | None
) -> Call[WebhookDeliveryMetrics]:
    return call(
        WebhookDeliveryMetrics, "GET", PATH, params=window_params(since, until, top), tenant_id=tenant_id
    )


class WebhookMetrics(SyncResource):
    """``client.webhook_metrics(since=, until=, top=)``: the tenant's delivery metrics with its
    ``top`` busiest endpoints broken down (``GET /v1/webhook-metrics``)."""

    def __call__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        return self._send(_metrics_call(since, until, top, tenant_id))


class AsyncWebhookMetrics(AsyncResource):
    """``await client.webhook_metrics(since=, until=, top=)``, as :class:`WebhookMetrics`."""

    async def __call__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        return await self._send(_metrics_call(since, until, top, tenant_id))
