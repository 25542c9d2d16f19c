"""Retention: purge audit events, security events and the outbound request log
(``external_api_requests``) older than their RetentionPolicy, connection health checks older
than ``connection_health_retention_days`` and inbound receipts (the provider event ids an inbound
source answers repeats of as duplicates) older than ``inbound_receipt_retention_days``.

Runs as the scheduled job ``retention.purge`` (daily). Each purge writes one audit row per tenant it
touched (``retention.purged`` with counts), so the trail records its own trimming. The row is
written in the transaction of the tenant's first deleted batch and brought up to date in the
transaction of every later one, so a purge cut short (a crash, the database going away) leaves an
audit row counting exactly what it deleted; the next purge writes its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import system_actor
from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import RetentionPolicy
from interlink.core.models import AuditEvent
from interlink.core.purge import BatchHook, purge_in_batches
from interlink.keys.models import SecurityEvent
from interlink.outbound.service import purge_requests

BATCH = 5000


@dataclass(frozen=True)
class PurgeResult:
    audit_events: dict[str, int]
    security_events: dict[str | None, int]
    api_requests: dict[str, int] = field(default_factory=dict)
    health_checks: dict[str, int] = field(default_factory=dict)
    inbound_receipts: dict[str, int] = field(default_factory=dict)


class _Trail:
    """The purge's ``retention.purged`` rows: one per tenant, kept current batch by batch."""

    def __init__(self, counted: list[str], settings: dict[str, Any]) -> None:
        self.counted = counted
        self.settings = settings
        self.counts: dict[str, dict[str, int]] = {}
        self.rows: dict[str, str] = {}

    def hook(self, name: str) -> BatchHook:
        async def on_batch(session: AsyncSession, batch: dict[str, int]) -> None:
            await self.add(session, name, batch)

        return on_batch

    async def add(self, session: AsyncSession, name: str, batch: dict[str, int]) -> None:
        """Count ``batch`` (rows deleted per tenant) in the audit rows, in the batch's transaction."""
        for tenant_id, deleted in sorted(batch.items()):
            counts = self.counts.setdefault(tenant_id, dict.fromkeys(self.counted, 0))
            counts[name] += deleted
            changes = {
                **{key: {"old": None, "new": value} for key, value in counts.items()},
                **{key: {"old": None, "new": value} for key, value in self.settings.items()},
            }
            row_id = self.rows.get(tenant_id)
            if row_id is None:
                event = audit.record(
                    session, system_actor(tenant_id), "retention.purged", "retention", None, changes
                )
                self.rows[tenant_id] = event.id
            else:
                await session.execute(
                    sa.update(AuditEvent)
                    .where(AuditEvent.id == row_id)
                    .values(changes=changes)
                    .execution_options(synchronize_session=False)
                )


async def _purge_table(
    db: Database,
    model: type[AuditEvent] | type[SecurityEvent],
    policy: RetentionPolicy,
    exclude_actions: tuple[str, ...] = (),
    on_batch: BatchHook | None = None,
) -> dict[str | None, int]:
    days = policy.days
    if days is None:
        return {}
    condition = model.occurred_at < utcnow() - timedelta(days=days)
    if exclude_actions and model is AuditEvent:
        condition = condition & AuditEvent.action.not_in(exclude_actions)
    return await purge_in_batches(db, model, condition, on_batch=on_batch, batch_size=BATCH)


async def purge(
    db: Database,
    audit_policy: RetentionPolicy,
    security_policy: RetentionPolicy,
    api_request_policy: RetentionPolicy | None = None,
    health_check_days: int | None = None,
    inbound_receipt_days: int | None = None,
) -> PurgeResult:
    """Delete expired rows in batches; audit the purge per tenant (in the batches' transactions).
    Idempotent. The request log is purged only when ``api_request_policy`` is given, connection
    health checks only when ``health_check_days`` is, inbound receipts only when
    ``inbound_receipt_days`` is."""
    counted = ["auditEvents", "securityEvents"]
    settings: dict[str, Any] = {"auditPolicy": audit_policy.value, "securityPolicy": security_policy.value}
    if api_request_policy is not None:
        counted.append("apiRequests")
        settings["apiRequestPolicy"] = api_request_policy.value
    if health_check_days is not None:
        counted.append("healthChecks")
        settings["healthCheckRetentionDays"] = health_check_days
    if inbound_receipt_days is not None:
        counted.append("inboundReceipts")
        settings["inboundReceiptRetentionDays"] = inbound_receipt_days
    trail = _Trail(counted, settings)
    security_counts = await _purge_table(
        db, SecurityEvent, security_policy, on_batch=trail.hook("securityEvents")
    )
    audit_counts = await _purge_table(
        db,
        AuditEvent,
        audit_policy,
        exclude_actions=("retention.purged",),
        on_batch=trail.hook("auditEvents"),
    )
    api_counts: dict[str, int] = {}
    if api_request_policy is not None:
        api_counts = await purge_requests(db, api_request_policy, on_batch=trail.hook("apiRequests"))
    health_counts: dict[str, int] = {}
    if health_check_days is not None:
        from interlink.connections.health import purge_history

        health_counts = await purge_history(db, health_check_days, on_batch=trail.hook("healthChecks"))
    receipt_counts: dict[str, int] = {}
    if inbound_receipt_days is not None:
        from interlink.webhooks.inbound.receiver import purge_receipts

        receipt_counts = await purge_receipts(
            db, inbound_receipt_days, on_batch=trail.hook("inboundReceipts")
        )
    return PurgeResult(
        audit_events={k: v for k, v in audit_counts.items() if k is not None},
        security_events=security_counts,
        api_requests=api_counts,
        health_checks=health_counts,
        inbound_receipts=receipt_counts,
    )
