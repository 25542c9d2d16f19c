"""Inbound webhook tables.

* ``webhook_inbound_sources``: where a provider posts (``/v1/inbound/{id}``): the verification
  scheme and its options, timestamp tolerance, IP allowlist, body size limit, how the event type
  and the provider's event id are read, enabled state. Soft-deleted (``deleted_at``).
* ``webhook_inbound_secrets``: the signing secrets of a source (encrypted with the master keyring,
  bound to tenant, source and secret id); several are active during a rotation (``expires_at``).
* ``webhook_inbound_receipts``: one row per accepted provider event id, unique per source, so a
  provider's retry (or two concurrent posts) is processed once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime


class WebhookInboundSource(Base):
    __tablename__ = "webhook_inbound_sources"
    __table_args__ = (sa.Index("ix_webhook_inbound_sources_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    connection_id: Mapped[str | None] = mapped_column(sa.String(40))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.String(1000))
    scheme: Mapped[str] = mapped_column(sa.String(20))
    scheme_options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tolerance_seconds: Mapped[int] = mapped_column(sa.Integer(), default=300)
    ip_allowlist: Mapped[list[str]] = mapped_column(JSONType, default=list)
    max_body_bytes: Mapped[int] = mapped_column(sa.Integer())
    event_type_config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    dedupe_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(sa.Boolean(), default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookInboundSecret(Base):
    """A signing secret of a source; active while ``expires_at`` is empty or in the future."""

    __tablename__ = "webhook_inbound_secrets"
    __table_args__ = (sa.Index("ix_webhook_inbound_secrets_tenant_source", "tenant_id", "source_id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    source_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_inbound_sources.id"))
    ciphertext: Mapped[str] = mapped_column(sa.Text())
    key_id: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookInboundReceipt(Base):
    """A provider event id already accepted by a source, and the event it became."""

    __tablename__ = "webhook_inbound_receipts"
    __table_args__ = (
        sa.UniqueConstraint("source_id", "dedupe_key", name="uq_webhook_inbound_receipts_source_key"),
        sa.Index("ix_webhook_inbound_receipts_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("tenants.id"))
    source_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("webhook_inbound_sources.id"))
    dedupe_key: Mapped[str] = mapped_column(sa.String(200))
    event_id: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
