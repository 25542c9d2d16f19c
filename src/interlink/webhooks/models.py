"""Webhook tables (the guide's Webhook, WebhookEndpoint, WebhookEvent, WebhookDelivery).

* ``webhook_event_types``: the per-tenant registry of event names, with optional JSON Schema.
* ``webhook_endpoints``: where events go (URL or channel target), what they subscribe to, filter,
  transformation, channel, headers, timeout, retry schedule, limits and enabled state.
* ``webhook_endpoint_secrets``: signing secrets (encrypted with the master keyring, like every
  secret); several may be active at once during a rotation (``expires_at``).
* ``webhook_events``: accepted events (``webhook-id`` of every delivery is the event id).
* ``webhook_deliveries``: one row per event and endpoint. The row *is* the job: workers claim due
  rows (``status`` in PENDING/RETRYING, ``next_attempt_at`` due, or a lease that expired).
* ``webhook_attempts``: every attempt, with request headers, response and timing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime, enum_column_type
from interlink.core.enums import DeliveryChannel, DeliveryStatus, RetentionPolicy


class WebhookEventType(Base):
    __tablename__ = "webhook_event_types"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name", name="uq_webhook_event_types_tenant_name"),
        sa.Index("ix_webhook_event_types_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.String(1000))
    json_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index("ix_webhook_endpoints_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str | None] = mapped_column(sa.String(1000))
    channel: Mapped[DeliveryChannel] = mapped_column(enum_column_type(DeliveryChannel))
    channel_config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    transformation: Mapped[str | None] = mapped_column(sa.Text())
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    timeout_seconds: Mapped[float] = mapped_column(sa.Float(), default=15.0)
    retry_schedule: Mapped[list[int] | None] = mapped_column(JSONType)
    rate_limit_per_second: Mapped[float | None] = mapped_column(sa.Float())
    max_in_flight: Mapped[int] = mapped_column(sa.Integer(), default=16)
    batch_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    retention: Mapped[RetentionPolicy] = mapped_column(enum_column_type(RetentionPolicy))
    enabled: Mapped[bool] = mapped_column(sa.Boolean(), default=True)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer(), default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEndpointSecret(Base):
    """A signing secret of an endpoint; active while ``expires_at`` is empty or in the future."""

    __tablename__ = "webhook_endpoint_secrets"
    __table_args__ = (sa.Index("ix_webhook_endpoint_secrets_tenant_endpoint", "tenant_id", "endpoint_id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    endpoint_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_endpoints.id"))
    ciphertext: Mapped[str] = mapped_column(sa.Text())
    key_id: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_webhook_events_tenant_idempotency"),
        sa.Index("ix_webhook_events_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_webhook_events_tenant_type", "tenant_id", "event_type"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    event_type: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    priority: Mapped[int] = mapped_column(sa.SmallInteger(), default=5)
    source: Mapped[str] = mapped_column(sa.String(40), default="api")
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        sa.Index("ix_webhook_deliveries_claim", "status", "priority", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_webhook_deliveries_tenant_endpoint", "tenant_id", "endpoint_id", "id"),
        sa.Index("ix_webhook_deliveries_tenant_event", "tenant_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    event_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_endpoints.id"))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column_type(DeliveryStatus))
    priority: Mapped[int] = mapped_column(sa.SmallInteger(), default=5)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0)
    locked_by: Mapped[str | None] = mapped_column(sa.String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer())
    last_error_class: Mapped[str | None] = mapped_column(sa.String(40))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.Index("ix_webhook_attempts_tenant_delivery", "tenant_id", "delivery_id"),
        sa.Index("ix_webhook_attempts_tenant_started", "tenant_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    delivery_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_deliveries.id"))
    endpoint_id: Mapped[str] = mapped_column(sa.String(40))
    attempt_number: Mapped[int] = mapped_column(sa.Integer())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float | None] = mapped_column(sa.Float())
    request_headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    response_status: Mapped[int | None] = mapped_column(sa.Integer())
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    response_body: Mapped[str | None] = mapped_column(sa.Text())
    error_class: Mapped[str | None] = mapped_column(sa.String(40))
    error_message: Mapped[str | None] = mapped_column(sa.String(2000))
    succeeded: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
