"""SDK access to delivery metrics: ``client.webhook_metrics(...)`` for the whole tenant (and
``client.endpoints.metrics(id, ...)`` for one endpoint, in :mod:`interlink.client._endpoints`).

Times must be timezone-aware; the window defaults to the last 24 hours and spans at most 90 days.
"""

from __future__ import annotations

from datetime import datetime

from interlink.client._base import AsyncRequester, SyncRequester, parse, query
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


_Sync = SyncRequester
_Async = AsyncRequester


def window_params(
    since: datetime | None, until: datetime | None, top: int | None = None
) -> dict[str, str | int]:
    return query({"since": since, "until": until, "top": top})


class WebhookMetrics:
    """``client.webhook_metrics(since=, until=, top=)``: the tenant's delivery metrics with its
    ``top`` busiest endpoints broken down (``GET /v1/webhook-metrics``)."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def __call__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        response = self._c._request("GET", PATH, params=window_params(since, until, top), tenant_id=tenant_id)
        return parse(WebhookDeliveryMetrics, response)


class AsyncWebhookMetrics:
    """``await client.webhook_metrics(since=, until=, top=)``, as :class:`WebhookMetrics`."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def __call__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        response = await self._c._request(
            "GET", PATH, params=window_params(since, until, top), tenant_id=tenant_id
        )
        return parse(WebhookDeliveryMetrics, response)
