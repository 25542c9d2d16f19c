"""Retention: purge audit events, security events and the outbound request log
(``external_api_requests``) older than their RetentionPolicy, and connection health checks older
than ``connection_health_retention_days``.

Runs as the scheduled job ``retention.purge`` (daily). Each purge writes one audit row per tenant it
touched (``retention.purged`` with counts), so the trail records its own trimming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from interlink.core import audit
from interlink.core.actor import system_actor
from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import RetentionPolicy
from interlink.core.models import AuditEvent
from interlink.keys.models import SecurityEvent
from interlink.outbound.service import purge_requests

BATCH = 5000


@dataclass(frozen=True)
class PurgeResult:
    audit_events: dict[str, int]
    security_events: dict[str | None, int]
    api_requests: dict[str, int] = field(default_factory=dict)
    health_checks: dict[str, int] = field(default_factory=dict)


async def _purge_table(
    db: Database,
    model: type[AuditEvent] | type[SecurityEvent],
    policy: RetentionPolicy,
    exclude_actions: tuple[str, ...] = (),
) -> dict[str | None, int]:
    days = policy.days
    if days is None:
        return {}
    cutoff = utcnow() - timedelta(days=days)
    counts: dict[str | None, int] = {}
    while True:
        async with db.unit_of_work() as session:
            pick = sa.select(model.id, model.tenant_id).where(model.occurred_at < cutoff)
            if exclude_actions and model is AuditEvent:
                pick = pick.where(AuditEvent.action.not_in(exclude_actions))
            rows = (await session.execute(pick.limit(BATCH))).all()
            if not rows:
                return counts
            for _id, tenant_id in rows:
                counts[tenant_id] = counts.get(tenant_id, 0) + 1
            await session.execute(
                sa.delete(model)
                .where(model.id.in_([r[0] for r in rows]))
                .execution_options(synchronize_session=False)
            )
        if len(rows) < BATCH:
            return counts


async def purge(
    db: Database,
    audit_policy: RetentionPolicy,
    security_policy: RetentionPolicy,
    api_request_policy: RetentionPolicy | None = None,
    health_check_days: int | None = None,
) -> PurgeResult:
    """Delete expired rows in batches; audit the purge per tenant. Idempotent. The request log is
    purged only when ``api_request_policy`` is given, connection health checks only when
    ``health_check_days`` is."""
    security_counts = await _purge_table(db, SecurityEvent, security_policy)
    audit_counts = await _purge_table(db, AuditEvent, audit_policy, exclude_actions=("retention.purged",))
    api_counts = await purge_requests(db, api_request_policy) if api_request_policy is not None else {}
    health_counts: dict[str, int] = {}
    if health_check_days is not None:
        from interlink.connections.health import purge_history

        health_counts = await purge_history(db, health_check_days)
    tenants = {t for t in [*audit_counts, *security_counts, *api_counts, *health_counts] if t is not None}
    if tenants:
        async with db.unit_of_work() as session:
            for tenant_id in sorted(tenants):
                audit.record(
                    session,
                    system_actor(tenant_id),
                    "retention.purged",
                    "retention",
                    None,
                    {
                        "auditEvents": {"old": None, "new": audit_counts.get(tenant_id, 0)},
                        "securityEvents": {"old": None, "new": security_counts.get(tenant_id, 0)},
                        "auditPolicy": {"old": None, "new": audit_policy.value},
                        "securityPolicy": {"old": None, "new": security_policy.value},
                        **(
                            {
                                "apiRequests": {"old": None, "new": api_counts.get(tenant_id, 0)},
                                "apiRequestPolicy": {"old": None, "new": api_request_policy.value},
                            }
                            if api_request_policy is not None
                            else {}
                        ),
                        **(
                            {
                                "healthChecks": {"old": None, "new": health_counts.get(tenant_id, 0)},
                                "healthCheckRetentionDays": {"old": None, "new": health_check_days},
                            }
                            if health_check_days is not None
                            else {}
                        ),
                    },
                )
    return PurgeResult(
        audit_events={k: v for k, v in audit_counts.items() if k is not None},
        security_events=security_counts,
        api_requests=api_counts,
        health_checks=health_counts,
    )
