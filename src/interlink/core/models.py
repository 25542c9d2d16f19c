"""Core tables: tenants, the audit trail, and encrypted secrets (IntegrationSecret)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime, enum_column_type
from interlink.core.enums import TokenType


class Tenant(Base):
    """A customer of the host application; every other row belongs to one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    slug: Mapped[str] = mapped_column(sa.String(100), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One mutation (or platform act-as) of any resource: who, what, when, where from."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_tenant_resource", "tenant_id", "resource_type", "resource_id"),
        sa.Index("ix_audit_events_tenant_action", "tenant_id", "action"),
        sa.Index("ix_audit_events_tenant_occurred", "tenant_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(sa.String(80))
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    resource_id: Mapped[str | None] = mapped_column(sa.String(80))
    actor_key_id: Mapped[str | None] = mapped_column(sa.String(40))
    actor_tenant_id: Mapped[str | None] = mapped_column(sa.String(40))
    actor_type: Mapped[str] = mapped_column(sa.String(20), default="api_key")
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    source_ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class IntegrationSecret(Base):
    """An encrypted credential. ``ciphertext`` is bound to tenant, owner and id (AES-GCM AAD)."""

    __tablename__ = "integration_secrets"
    __table_args__ = (
        sa.Index("ix_integration_secrets_tenant_owner", "tenant_id", "owner_type", "owner_id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_integration_secrets_tenant_name"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    owner_type: Mapped[str] = mapped_column(sa.String(40))
    owner_id: Mapped[str] = mapped_column(sa.String(80))
    token_type: Mapped[TokenType] = mapped_column(enum_column_type(TokenType))
    ciphertext: Mapped[str] = mapped_column(sa.Text())
    key_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    version: Mapped[int] = mapped_column(sa.Integer(), default=1)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotate_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_accessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    access_count: Mapped[int] = mapped_column(sa.Integer(), default=0)
