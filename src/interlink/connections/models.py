"""Connection tables (the guide's IntegrationProvider, ...).

* ``integration_providers``: the provider catalogue mirrored into the database at start-up
  (:func:`interlink.connections.providers.sync_providers`), so connections can reference a
  provider by key. The catalogue files stay the source of truth: ``spec`` is the validated entry
  as served by ``GET /v1/providers/{key}``, ``spec_hash`` detects changes, and a key that left the
  catalogue keeps its row with ``listed = false`` (existing connections still name it). The
  catalogue is global, not per tenant, so the table has no ``tenant_id``.
* ``integration_connections``: a tenant's connection to a provider (the guide's
  IntegrationConnectionInfo); see :mod:`interlink.connections.service`. Credentials are never
  stored here: ``secret_ids`` names the IntegrationSecret rows that hold them (by role:
  ``credentials``, ``accessToken``, ``refreshToken``, ``pkceVerifier``). ``token_version`` is bumped
  each time a new access token is stored (the compare-and-swap value of the single-flight refresh).
  ``health_status``/``health_score``/``last_health_check_at`` hold the last health check's verdict
  and ``next_health_check_at`` when the ``connections.health`` job checks it next.
* ``integration_health_checks``: the history of health checks
  (:mod:`interlink.connections.health`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, CachedInProcesses, JSONType, UTCDateTime, enum_column_type
from interlink.core.enums import (
    AuthenticationType,
    IntegrationCategory,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
    IntegrationProviderStatus,
)


class CheckStatus(StrEnum):
    """Outcome of one check of a health check."""

    PASS = "PASS"  # noqa: S105 - an outcome name, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


class IntegrationHealthStatus(StrEnum):
    """Verdict of a connection health check (the guide's HEALTHY/DEGRADED/UNHEALTHY; see
    :mod:`interlink.connections.health` for how it is derived from the checks and the score)."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"


class HealthCheckTrigger(StrEnum):
    """What started a health check."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"


class IntegrationProvider(Base):
    __tablename__ = "integration_providers"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    category: Mapped[IntegrationCategory] = mapped_column(enum_column_type(IntegrationCategory))
    status: Mapped[IntegrationProviderStatus] = mapped_column(enum_column_type(IntegrationProviderStatus))
    auth_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_hash: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(20))
    """``builtin``, ``custom`` (the operator's file) or ``builtin+custom`` (overridden)."""
    listed: Mapped[bool] = mapped_column(sa.Boolean(), default=True)
    """False once the key is no longer in the catalogue."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IntegrationConnection(CachedInProcesses, Base):
    __tablename__ = "integration_connections"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name", name="uq_integration_connections_tenant_name"),
        sa.Index("ix_integration_connections_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_integration_connections_tenant_provider_id", "tenant_id", "provider_key", "id"),
        sa.Index("ix_integration_connections_token_expires_at", "token_expires_at"),
        sa.Index("ix_integration_connections_next_health_check_at", "next_health_check_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    provider_key: Mapped[str] = mapped_column(sa.String(64))
    environment: Mapped[IntegrationEnvironment] = mapped_column(enum_column_type(IntegrationEnvironment))
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[IntegrationConnectionStatus] = mapped_column(enum_column_type(IntegrationConnectionStatus))
    auth_type: Mapped[AuthenticationType] = mapped_column(enum_column_type(AuthenticationType))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    secret_ids: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    token_version: Mapped[int] = mapped_column(sa.Integer(), default=0)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # health (interlink.connections.health): the last check's verdict and the scheduling cursor
    health_status: Mapped[IntegrationHealthStatus | None] = mapped_column(
        enum_column_type(IntegrationHealthStatus)
    )
    health_score: Mapped[int | None] = mapped_column(sa.Integer())
    last_health_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_health_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IntegrationHealthCheck(Base):
    """One health check of a connection (the guide's IntegrationHealthCheck); kept for
    ``connection_health_retention_days`` (see :mod:`interlink.connections.health`)."""

    __tablename__ = "integration_health_checks"
    __table_args__ = (
        sa.Index(
            "ix_integration_health_checks_tenant_connection_checked",
            "tenant_id",
            "connection_id",
            "checked_at",
        ),
        sa.Index("ix_integration_health_checks_checked_at", "checked_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    connection_id: Mapped[str] = mapped_column(sa.String(40))
    """No foreign key: the history outlives a deleted connection until retention purges it."""
    status: Mapped[IntegrationHealthStatus] = mapped_column(enum_column_type(IntegrationHealthStatus))
    health_score: Mapped[int] = mapped_column(sa.Integer())
    response_time_ms: Mapped[float | None] = mapped_column(sa.Float())
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    connectivity: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    performance: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tls_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trigger: Mapped[HealthCheckTrigger] = mapped_column(enum_column_type(HealthCheckTrigger))
    error: Mapped[str | None] = mapped_column(sa.String(1000))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
