"""The outbound request log (the guide's ExternalApiRequest): one row per call of the API client.

A row is written for every call, whatever its outcome, by :class:`interlink.outbound.log.RequestLogWriter`
(batched, off the request path). Nothing secret is stored: the URL has no userinfo and its
credential-like query parameters are ``[redacted]``, credential-like headers are ``[redacted]``
and bodies are truncated with credential-like JSON keys ``[redacted]``. ``connection_id`` is a
plain string (the connections table refers to it, not the other way round); ids are time-sortable
(``apr_``), so pagination, metric windows and the retention purge are range scans of the
``(tenant_id, ..., id)`` indexes.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime


class ExternalApiRequest(Base):
    __tablename__ = "external_api_requests"
    __table_args__ = (
        sa.Index("ix_external_api_requests_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_external_api_requests_tenant_connection_id", "tenant_id", "connection_id", "id"),
        sa.Index("ix_external_api_requests_tenant_provider_id", "tenant_id", "provider_key", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    connection_id: Mapped[str | None] = mapped_column(sa.String(40))
    provider_key: Mapped[str | None] = mapped_column(sa.String(100))
    operation: Mapped[str | None] = mapped_column(sa.String(200))
    """The endpoint config's name (e.g. ``customers.get``), when it has one."""
    method: Mapped[str] = mapped_column(sa.String(10))
    url: Mapped[str] = mapped_column(sa.String(2048))
    status: Mapped[int | None] = mapped_column(sa.Integer())
    """HTTP status of the last attempt; null when no answer came."""
    error_class: Mapped[str | None] = mapped_column(sa.String(40))
    error_message: Mapped[str | None] = mapped_column(sa.String(1000))
    attempts: Mapped[int] = mapped_column(sa.Integer())
    """Requests sent (or tried) for this call, retries included; 0 when refused before any."""
    reused: Mapped[bool] = mapped_column(sa.Boolean())
    dns_ms: Mapped[float | None] = mapped_column(sa.Float())
    connect_ms: Mapped[float | None] = mapped_column(sa.Float())
    tls_ms: Mapped[float | None] = mapped_column(sa.Float())
    first_byte_ms: Mapped[float | None] = mapped_column(sa.Float())
    total_ms: Mapped[float | None] = mapped_column(sa.Float())
    """The last attempt: start to the end of the answer (or the error)."""
    duration_ms: Mapped[float] = mapped_column(sa.Float())
    """The whole call: retries, backoff and rate-limit waits included."""
    request_headers: Mapped[dict[str, str]] = mapped_column(JSONType)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    request_body: Mapped[str | None] = mapped_column(sa.Text())
    response_body: Mapped[str | None] = mapped_column(sa.Text())
    request_bytes: Mapped[int] = mapped_column(sa.Integer())
    response_bytes: Mapped[int | None] = mapped_column(sa.Integer())
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the call started."""
