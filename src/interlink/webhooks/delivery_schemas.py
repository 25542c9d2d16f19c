"""Pydantic types of events, deliveries and attempts (the guide's WebhookEventInfo,
WebhookDeliveryInfo and WebhookDeliveryRequest)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from interlink.core.enums import DeliveryStatus
from interlink.core.schemas import ApiModel, RequestModel

PriorityName = Literal["HIGH", "NORMAL", "LOW"]
MAX_BATCH_EVENTS = 100


class EventCreate(RequestModel):
    """An event to deliver to every matching endpoint (WebhookDeliveryRequest)."""

    type: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="e.g. `invoice.paid`.",
    )
    payload: dict[str, Any] = Field(
        description="The event data; checked against the type's JSON Schema when it has one."
    )
    endpoint_ids: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Deliver only to these endpoints of the tenant (still subject to their filters).",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The same key within 24 hours returns the first event (200) instead of a new one.",
    )
    priority: PriorityName = Field(default="NORMAL", description="Due deliveries go out HIGH first.")
    immediate: bool = Field(
        default=False,
        description="Make the first attempt of each delivery before answering; "
        "failures retry from the queue.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form; filters can match on it.")


class EventBatchCreate(RequestModel):
    """Up to 100 events, accepted all together or not at all."""

    events: list[EventCreate] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class DeliveryBrief(ApiModel):
    id: str
    endpoint_id: str
    status: DeliveryStatus


class EventInfo(ApiModel):
    """An accepted event (WebhookEventInfo). ``id`` is the ``webhook-id`` of its deliveries."""

    id: str
    tenant_id: str
    type: str
    payload: dict[str, Any] | None = Field(description="Null once retention purged it (payloadPurgedAt).")
    payload_purged_at: datetime | None = Field(
        default=None, description="When retention removed the payload; such an event cannot be replayed."
    )
    metadata: dict[str, Any]
    idempotency_key: str | None
    priority: PriorityName
    source: str
    correlation_id: str | None
    created_at: datetime
    deliveries: list[DeliveryBrief] | None = Field(
        default=None, description="Its deliveries (on create and on read of one event)."
    )
    created: bool | None = Field(
        default=None,
        description="On create: false when an earlier event with the same idempotencyKey was returned.",
    )


class EventBatchResult(ApiModel):
    data: list[EventInfo]


class WebhookDeliveryInfo(ApiModel):
    """One event to one endpoint: its state and schedule."""

    id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    status: DeliveryStatus
    priority: PriorityName
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (PENDING/RETRYING).")
    last_status_code: int | None
    last_error_class: str | None = Field(
        description="timeout, dns, connect, tls, refused, http_3xx, http_4xx, http_5xx, "
        "smtp_4xx, smtp_5xx (EMAIL), unconfigured (EMAIL without SMTP settings), transformation or other."
    )
    delivered_at: datetime | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime


class WebhookAttemptInfo(ApiModel):
    """One attempt: what was sent (credential-like header values redacted) and what came back."""

    id: str
    delivery_id: str
    endpoint_id: str
    attempt_number: int
    started_at: datetime
    duration_ms: float | None
    request_headers: dict[str, str]
    response_status: int | None
    response_headers: dict[str, str] | None
    response_body: str | None = Field(description="At most 20 KB of the answer.")
    error_class: str | None
    error_message: str | None
    succeeded: bool
    batch_id: str | None = Field(
        default=None,
        description="Batch endpoints: the batch request (its webhook-id) this attempt was part of.",
    )
