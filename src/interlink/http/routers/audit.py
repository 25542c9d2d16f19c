"""``/v1/audit-events`` and ``/v1/security-events``: the trails, filtered and paginated."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import AuditEventInfo, PageOut, UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS
from interlink.keys import security
from interlink.keys.schemas import ApiSecurityAuditEvent

router = APIRouter(prefix="/v1", tags=["audit"], responses=STANDARD_ERRORS)


@router.get("/audit-events", response_model=PageOut[AuditEventInfo])
async def list_audit_events(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=80, description="e.g. `key.revoked`"),
    resource_type: str | None = Query(None, alias="resourceType", max_length=40),
    resource_id: str | None = Query(None, alias="resourceId", max_length=80),
    actor_key_id: str | None = Query(None, alias="actorKeyId", max_length=40),
    correlation_id: str | None = Query(None, alias="correlationId", max_length=128),
    since: UtcDatetime | None = Query(None),
    until: UtcDatetime | None = Query(None),
    actor: Actor = Depends(require(ApiKeyScope.AUDIT_READ)),
) -> PageOut[AuditEventInfo]:
    """Every mutation in the tenant, newest first."""
    flt = audit.AuditFilter(action, resource_type, resource_id, actor_key_id, correlation_id, since, until)
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await audit.list_events(session, actor.tenant_id, flt, PageRequest(limit, after))
    return PageOut[AuditEventInfo](
        data=[AuditEventInfo.model_validate(e) for e in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/security-events", response_model=PageOut[ApiSecurityAuditEvent])
async def list_security_events(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    event_type: str | None = Query(None, alias="eventType", max_length=40, description="e.g. `auth.failed`"),
    key_id: str | None = Query(None, alias="keyId", max_length=40),
    source_ip: str | None = Query(None, alias="sourceIp", max_length=64),
    min_risk: int | None = Query(None, alias="minRisk", ge=0, le=100),
    since: UtcDatetime | None = Query(None),
    until: UtcDatetime | None = Query(None),
    actor: Actor = Depends(require(ApiKeyScope.AUDIT_READ)),
) -> PageOut[ApiSecurityAuditEvent]:
    """Security events of the tenant, newest first. Platform keys acting for their own tenant also
    see events that could not be tied to any tenant (unknown or malformed keys)."""
    flt = security.SecurityEventFilter(
        event_type,
        key_id,
        source_ip,
        min_risk,
        since,
        until,
        include_unattributed=actor.is_platform and not actor.acts_for_other_tenant,
    )
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await security.list_events(session, actor.tenant_id, flt, PageRequest(limit, after))
    return PageOut[ApiSecurityAuditEvent](
        data=[ApiSecurityAuditEvent.model_validate(e) for e in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
