"""API key tables: keys (hash only, never the key) and security audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, CachedInProcesses, JSONType, UTCDateTime, enum_column_type
from interlink.core.enums import ApiKeyStatus, IntegrationEnvironment


class ApiKey(CachedInProcesses, Base):
    """A tenant or platform API key. The key itself is never stored: only its keyed hash."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.Index("ix_api_keys_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(sa.String(16), default="tenant")
    name: Mapped[str] = mapped_column(sa.String(200))
    prefix: Mapped[str] = mapped_column(sa.String(40))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    environment: Mapped[IntegrationEnvironment] = mapped_column(enum_column_type(IntegrationEnvironment))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[ApiKeyStatus] = mapped_column(enum_column_type(ApiKeyStatus))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_from_id: Mapped[str | None] = mapped_column(sa.String(40))
    rotated_to_id: Mapped[str | None] = mapped_column(sa.String(40))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(500))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_ip: Mapped[str | None] = mapped_column(sa.String(64))
    usage_count: Mapped[int] = mapped_column(sa.BigInteger(), default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    allowed_ips: Mapped[list[str]] = mapped_column(JSONType, default=list)
    rate_limit: Mapped[int | None] = mapped_column(sa.Integer())
    rate_limit_period_seconds: Mapped[int | None] = mapped_column(sa.Integer())
    created_by_key_id: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SecurityEvent(Base):
    """ApiSecurityAuditEvent: a security-relevant act on or with a key, with a risk score.

    ``tenant_id`` is empty when the key presented could not be tied to any tenant.
    """

    __tablename__ = "security_events"
    __table_args__ = (
        sa.Index("ix_security_events_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_security_events_key_ip", "key_id", "source_ip"),
        sa.Index("ix_security_events_ip_occurred", "source_ip", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(40))
    key_id: Mapped[str | None] = mapped_column(sa.String(40))
    key_prefix: Mapped[str | None] = mapped_column(sa.String(40))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    reason: Mapped[str | None] = mapped_column(sa.String(40))
    source_ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    risk_score: Mapped[int] = mapped_column(sa.Integer(), default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
