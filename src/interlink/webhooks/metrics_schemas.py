"""Pydantic types of delivery metrics (the guide's WebhookDeliveryMetrics), camelCase JSON.

Two populations are measured, and every field says which one it counts:

* the **deliveries created in the window** (``deliveries``, ``successRate``,
  ``attemptsPerDelivery``): what became of the events sent in that period;
* the **attempts started in the window** (``attempts``, ``p50Ms``…``p99Ms``,
  ``throughputPerMinute``, ``errorsByClass``): the work done in that period, whichever delivery it
  belonged to.

``queueDepth`` and ``oldestPendingAgeSeconds`` describe the queue *now*, whatever the window.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from interlink.core.schemas import ApiModel


class DeliveryCounts(ApiModel):
    """Deliveries created in the window, by their current status."""

    total: int
    delivered: int
    failed: int
    pending: int
    retrying: int
    sending: int
    cancelled: int


class DeliveryStats(ApiModel):
    """The figures shared by the whole-tenant, per-endpoint and breakdown answers."""

    deliveries: DeliveryCounts
    success_rate: float | None = Field(
        description="delivered / (delivered + failed) over the deliveries created in the window; "
        "null when none of them has finished yet."
    )
    attempts_per_delivery: float | None = Field(
        description="Attempts made so far / deliveries with at least one attempt, over the deliveries "
        "created in the window; null when none was attempted."
    )
    attempts: int = Field(description="Attempts started in the window.")
    latency_samples: int = Field(description="Attempts started in the window that have a duration.")
    p50_ms: float | None = Field(
        description="Median attempt duration (ms) over the attempts started in the window; "
        "continuous percentile (linear interpolation between the closest ranks); null without samples."
    )
    p95_ms: float | None = Field(description="95th percentile of the attempt durations (ms), as p50Ms.")
    p99_ms: float | None = Field(description="99th percentile of the attempt durations (ms), as p50Ms.")
    throughput_per_minute: float = Field(
        description="Attempts started in the window per minute of the window that has elapsed."
    )
    errors_by_class: dict[str, int] = Field(
        description="Failed attempts started in the window by error class (`timeout`, `dns`, `connect`, "
        "`tls`, `refused`, `http_4xx`, `http_5xx`, ... as in `errorClass` of an attempt)."
    )
    queue_depth: int = Field(description="Deliveries waiting now (PENDING or RETRYING), whatever the window.")
    oldest_pending_age_seconds: float | None = Field(
        description="Seconds since the oldest waiting delivery (PENDING or RETRYING) was created; "
        "null when nothing waits."
    )


class EndpointMetricsSummary(DeliveryStats):
    """One endpoint in a tenant's breakdown."""

    endpoint_id: str
    url: str | None = Field(description="The endpoint's target (null if it no longer exists).")


class WebhookDeliveryMetrics(DeliveryStats):
    """Delivery metrics of one endpoint or of the whole tenant over ``[since, until)``."""

    tenant_id: str
    endpoint_id: str | None = Field(description="The endpoint measured; null for the whole tenant.")
    since: datetime = Field(description="Start of the window (inclusive).")
    until: datetime = Field(description="End of the window (exclusive).")
    generated_at: datetime = Field(description="When these figures were computed.")
    endpoints: list[EndpointMetricsSummary] | None = Field(
        default=None,
        description="Tenant metrics only: the endpoints with the most deliveries created in the window "
        "(at most `top`), busiest first.",
    )
