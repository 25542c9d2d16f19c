"""The audit trail: every mutation writes a row in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.context import current_correlation_id
from interlink.core.ids import new_id
from interlink.core.models import AuditEvent
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query

SECRET_FIELD_HINTS = ("secret", "password", "token", "key_hash", "ciphertext", "credential", "pepper")
REDACTED = "[redacted]"


def _is_secret_field(name: str) -> bool:
    """True for names that look secret, in snake_case or camelCase (``key_hash``, ``keyHash``)."""
    lowered = name.lower().replace("_", "").replace("-", "")
    return any(hint.replace("_", "") in lowered for hint in SECRET_FIELD_HINTS)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``{field: {"old": ..., "new": ...}}`` for changed fields; secret-looking fields are redacted."""
    changes: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if _is_secret_field(name):
            changes[name] = {
                "old": REDACTED if old is not None else None,
                "new": REDACTED if new is not None else None,
            }
        else:
            changes[name] = {"old": _jsonable(old), "new": _jsonable(new)}
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "value"):
        return value.value
    return value


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    changes: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
) -> AuditEvent:
    """Add an audit row to the session (committed with the change it describes)."""
    event = AuditEvent(
        id=new_id("aud"),
        tenant_id=tenant_id or actor.tenant_id,
        occurred_at=utcnow(),
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        actor_key_id=actor.key_id,
        actor_tenant_id=actor.home_tenant_id,
        actor_type=actor.actor_type,
        correlation_id=actor.correlation_id or current_correlation_id(),
        source_ip=actor.source_ip,
        user_agent=actor.user_agent,
        changes=_jsonable(changes or {}),
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    actor_key_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_events(
    session: AsyncSession, tenant_id: str, flt: AuditFilter, page: PageRequest
) -> Page[AuditEvent]:
    """Audit rows of one tenant, newest first."""
    stmt = sa.select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if flt.action:
        stmt = stmt.where(AuditEvent.action == flt.action)
    if flt.resource_type:
        stmt = stmt.where(AuditEvent.resource_type == flt.resource_type)
    if flt.resource_id:
        stmt = stmt.where(AuditEvent.resource_id == flt.resource_id)
    if flt.actor_key_id:
        stmt = stmt.where(AuditEvent.actor_key_id == flt.actor_key_id)
    if flt.correlation_id:
        stmt = stmt.where(AuditEvent.correlation_id == flt.correlation_id)
    if flt.since:
        stmt = stmt.where(AuditEvent.occurred_at >= flt.since)
    if flt.until:
        stmt = stmt.where(AuditEvent.occurred_at < flt.until)
    rows = (await session.scalars(paginate_query(stmt, AuditEvent.id, page))).all()
    return make_page(rows, page, lambda e: e.id)
