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
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime, enum_column_type
from interlink.core.enums import (
    AuthenticationType,
    IntegrationCategory,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
    IntegrationProviderStatus,
)


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


class IntegrationConnection(Base):
    __tablename__ = "integration_connections"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name", name="uq_integration_connections_tenant_name"),
        sa.Index("ix_integration_connections_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_integration_connections_tenant_provider_id", "tenant_id", "provider_key", "id"),
        sa.Index("ix_integration_connections_token_expires_at", "token_expires_at"),
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
