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

QUEUED_PREDICATE = "status IN ('PENDING', 'RETRYING')"
"""Deliveries waiting in the queue (the partial indexes' predicate, repeated by the claim)."""


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
    """The target; for SLACK only its redacted form (the real hook url is ``target_ciphertext``)."""
    target_ciphertext: Mapped[str | None] = mapped_column(sa.Text())
    """SLACK: the hook url, encrypted with the master keyring (it is a credential)."""
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
    # Circuit breaker (webhooks/health.py): CLOSED, OPEN (held back until circuit_open_until) or
    # HALF_OPEN (one probe in flight until circuit_open_until); the window counts recent failures.
    circuit_state: Mapped[str] = mapped_column(sa.String(20), default="CLOSED", server_default="CLOSED")
    circuit_open_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    circuit_opens: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    circuit_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    circuit_window_failures: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rate_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Rate-limited endpoints: the earliest time the next delivery may be claimed (GCRA state,
    advanced by the delivery claim)."""


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
        sa.Index("ix_webhook_events_retention", "tenant_id", "payload_purged_at", "created_at"),
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
        # The delivery engine's queue (webhooks/delivery.py): due rows in claim order, and one
        # endpoint's waiting rows (batch top-ups, cancelling on delete). Queries repeat the
        # predicate with literal values so both databases can use these indexes.
        sa.Index(
            "ix_webhook_deliveries_queued",
            "priority",
            "next_attempt_at",
            postgresql_where=sa.text(QUEUED_PREDICATE),
            sqlite_where=sa.text(QUEUED_PREDICATE),
        ),
        sa.Index(
            "ix_webhook_deliveries_queued_endpoint",
            "endpoint_id",
            "priority",
            "next_attempt_at",
            postgresql_where=sa.text(QUEUED_PREDICATE),
            sqlite_where=sa.text(QUEUED_PREDICATE),
        ),
        sa.Index("ix_webhook_deliveries_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_webhook_deliveries_tenant_endpoint", "tenant_id", "endpoint_id", "id"),
        sa.Index("ix_webhook_deliveries_tenant_event", "tenant_id", "event_id"),
        # Waiting deliveries only (queue depth and oldest waiting per tenant and endpoint, metrics.py):
        # an entry is written at ingest and on each retry, never for SENDING or finished rows.
        sa.Index(
            "ix_webhook_deliveries_waiting",
            "tenant_id",
            "endpoint_id",
            "created_at",
            postgresql_where=sa.text("status IN ('PENDING', 'RETRYING')"),
            sqlite_where=sa.text("status IN ('PENDING', 'RETRYING')"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    event_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_endpoints.id"))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column_type(DeliveryStatus))
    priority: Mapped[int] = mapped_column(sa.SmallInteger(), default=5)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0)
    retry_base: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    """``attempts`` when the delivery was last requeued by hand (retry, replay): the retry
    schedule counts from there, so a requeued delivery gets the whole schedule again."""
    locked_by: Mapped[str | None] = mapped_column(sa.String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer())
    last_error_class: Mapped[str | None] = mapped_column(sa.String(40))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    batch_id: Mapped[str | None] = mapped_column(sa.String(40))
    """Batch endpoints: the batch this delivery was last sent in (``webhook-id`` of the request);
    a failed batch is retried as the same set under the same id."""


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.Index("ix_webhook_attempts_tenant_delivery", "tenant_id", "delivery_id"),
        sa.Index("ix_webhook_attempts_tenant_started", "tenant_id", "started_at"),
        sa.Index("ix_webhook_attempts_tenant_endpoint_started", "tenant_id", "endpoint_id", "started_at"),
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
    batch_id: Mapped[str | None] = mapped_column(sa.String(40))
    """Set when the attempt carried several deliveries in one request (batch delivery)."""


class WebhookReplay(Base):
    """One replay request (WebhookReplayRequest), kept so a repeated ``requestId`` returns it."""

    __tablename__ = "webhook_replays"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "request_id", name="uq_webhook_replays_tenant_request"),
        sa.Index("ix_webhook_replays_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    request_id: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(40))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    delivery_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """Deliveries requeued or created by the replay."""
    created_count: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    """How many of ``delivery_ids`` were created (event replays to endpoints it never went to)."""
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    """``{"deliveryId"?, "eventId", "endpointId", "reason"}`` for everything left alone."""
    actor_key_id: Mapped[str | None] = mapped_column(sa.String(40))
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenantWebhookConfig(Base):
    """The guide's ``Webhook`` table: a tenant's webhook defaults (``WebhookConfig``), at most one
    row per tenant; a tenant without a row uses the built-in defaults (webhooks/config.py)."""

    __tablename__ = "webhook_configs"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_webhook_configs_tenant"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    retry_schedule: Mapped[list[int] | None] = mapped_column(JSONType)
    retention: Mapped[RetentionPolicy] = mapped_column(enum_column_type(RetentionPolicy))
    disable_after_seconds: Mapped[int] = mapped_column(sa.Integer())
    circuit_breaker: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    default_timeout_seconds: Mapped[float] = mapped_column(sa.Float())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
