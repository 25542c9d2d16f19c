"""Reading the outbound request log (tenant-scoped) and purging it under its RetentionPolicy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import RetentionPolicy
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.ids import is_id, min_id_at
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.core.purge import BatchHook, purge_in_batches
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.response import ERROR_CLASSES
from interlink.outbound.schemas import ApiRequestTiming, ExternalApiRequestInfo
from interlink.webhooks.metrics import shifted

ID_CLOCK_SLACK: Final = timedelta(minutes=10)

_R = ExternalApiRequest


def check_text(value: str | None, field: str) -> None:
    """Refuse text no database column can hold (NUL) with a 422 naming the field."""
    if value is not None and "\x00" in value:
        raise ValidationFailed("must not contain NUL characters", field=field)


@dataclass(frozen=True)
class RequestFilter:
    connection_id: str | None = None
    provider_key: str | None = None
    status: int | None = None
    error_class: str | None = None
    """An error class, or ``none`` for calls that succeeded."""
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> None:
        check_text(self.connection_id, "connectionId")
        check_text(self.provider_key, "providerKey")
        if self.status is not None and not 100 <= self.status <= 999:  # a provider may send 6xx-9xx
            raise ValidationFailed("status must be a three-digit HTTP status code (100-999)", field="status")
        if self.error_class is not None and self.error_class not in ERROR_CLASSES | {"none"}:
            raise ValidationFailed(
                f"errorClass must be one of {', '.join(sorted(ERROR_CLASSES | {'none'}))}", field="errorClass"
            )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationFailed("since must be before until", field="since")


async def list_requests(
    session: AsyncSession, tenant_id: str, flt: RequestFilter, page: PageRequest
) -> Page[ExternalApiRequest]:
    """The tenant's calls, newest first; ``since``/``until`` bound ``createdAt``."""
    flt.check()
    stmt = sa.select(_R).where(_R.tenant_id == tenant_id)
    if flt.connection_id is not None:
        stmt = stmt.where(_R.connection_id == flt.connection_id)
    if flt.provider_key is not None:
        stmt = stmt.where(_R.provider_key == flt.provider_key)
    if flt.status is not None:
        stmt = stmt.where(_R.status == flt.status)
    if flt.error_class == "none":
        stmt = stmt.where(_R.error_class.is_(None))
    elif flt.error_class is not None:
        stmt = stmt.where(_R.error_class == flt.error_class)
    if flt.since is not None:
        stmt = stmt.where(
            _R.id >= min_id_at("apr", shifted(flt.since, -ID_CLOCK_SLACK)), _R.created_at >= flt.since
        )
    if flt.until is not None:
        stmt = stmt.where(
            _R.id < min_id_at("apr", shifted(flt.until, ID_CLOCK_SLACK)), _R.created_at < flt.until
        )
    rows = (await session.scalars(paginate_query(stmt, _R.id, page))).all()
    return make_page(rows, page, lambda r: r.id)


async def get_request(session: AsyncSession, tenant_id: str, request_id: str) -> ExternalApiRequest:
    if not is_id(request_id, "apr"):
        raise NotFound(f"api request {request_id!r} not found")
    row = await session.scalar(sa.select(_R).where(_R.tenant_id == tenant_id, _R.id == request_id))
    if row is None:
        raise NotFound(f"api request {request_id} not found")
    return row


def request_info(row: ExternalApiRequest) -> ExternalApiRequestInfo:
    return ExternalApiRequestInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        connection_id=row.connection_id,
        provider_key=row.provider_key,
        operation=row.operation,
        method=row.method,
        url=row.url,
        status=row.status,
        error_class=row.error_class,
        error_message=row.error_message,
        attempts=row.attempts,
        timing=ApiRequestTiming(
            dns_ms=row.dns_ms,
            connect_ms=row.connect_ms,
            tls_ms=row.tls_ms,
            first_byte_ms=row.first_byte_ms,
            total_ms=row.total_ms,
            reused=row.reused,
        ),
        duration_ms=row.duration_ms,
        request_headers=dict(row.request_headers or {}),
        response_headers=dict(row.response_headers) if row.response_headers is not None else None,
        request_body=row.request_body,
        response_body=row.response_body,
        request_bytes=row.request_bytes,
        response_bytes=row.response_bytes,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
    )


async def purge_requests(
    db: Database, policy: RetentionPolicy, on_batch: BatchHook | None = None
) -> dict[str, int]:
    """Delete calls older than ``policy`` in batches (each its own transaction, in which
    ``on_batch`` gets the batch's rows per tenant); rows deleted per tenant. Ids are made when a
    call ends, so ``id < min_id_at(cutoff)`` selects calls that ended (and started) before the
    cutoff: a range scan of the primary key."""
    days = policy.days
    if days is None:
        return {}
    cutoff_id = min_id_at("apr", utcnow() - timedelta(days=days))
    return await purge_in_batches(db, _R, _R.id < cutoff_id, order_by=_R.id, on_batch=on_batch)
