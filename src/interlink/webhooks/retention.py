"""Webhook retention: purge delivery attempts and event payloads per RetentionPolicy.

Runs as the scheduled job ``webhooks.retention.purge`` (hourly) and from ``interlink retention
run``. Contracts:

* **Policy.** An endpoint's ``retention``; the tenant's webhook configuration
  (``webhook_configs.retention``) for events that went to no endpoint, else
  :data:`schemas.DEFAULT_RETENTION`. ``NONE`` keeps nothing once it is final; ``FOREVER`` keeps
  everything.
* **Attempts** of an endpoint are deleted once ``started_at`` is older than the endpoint's policy
  (``NONE``: as soon as their delivery is final).
* **Payloads.** An event's payload is purged (``payload = NULL``, ``payload_purged_at`` set; the
  event row, its metadata and its deliveries stay) once every delivery of the event is final
  (DELIVERED, FAILED, CANCELLED) and the event is older than the longest policy among the
  endpoints it went to (one ``FOREVER`` endpoint keeps it for good). A purged event cannot be
  replayed or retried (409).
* **Bounded and concurrent.** Every statement touches at most :data:`BATCH` rows, each batch in its
  own transaction. Events are locked ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) before their
  deliveries are checked, the order replays use, so a payload is never purged under a delivery a
  replay is requeueing, and several purgers (workers, the CLI) never wait for or double-count
  each other. Running it again purges nothing new.
* **Audit.** One ``webhooks.retention.purged`` row per tenant and run that purged something, with
  the counts, written by the system actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa

from interlink.core import audit
from interlink.core.actor import system_actor
from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import DeliveryStatus, RetentionPolicy
from interlink.core.models import Tenant
from interlink.webhooks.models import (
    TenantWebhookConfig,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from interlink.webhooks.schemas import DEFAULT_RETENTION

BATCH: Final = 1000
"""Rows per statement and per transaction."""
FINAL: Final = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)
AUDIT_ACTION: Final = "webhooks.retention.purged"


@dataclass
class TenantPurge:
    attempts: int = 0
    payloads: int = 0


@dataclass
class WebhookPurgeResult:
    tenants: dict[str, TenantPurge] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return sum(t.attempts for t in self.tenants.values())

    @property
    def payloads(self) -> int:
        return sum(t.payloads for t in self.tenants.values())


@dataclass(frozen=True)
class _Policies:
    by_endpoint: dict[str, RetentionPolicy]
    default: RetentionPolicy

    def longest(self, endpoint_ids: Sequence[str]) -> RetentionPolicy:
        """The policy that keeps longest among these endpoints (the default for none)."""
        policies = [self.by_endpoint.get(e, self.default) for e in endpoint_ids] or [self.default]
        if any(p.days is None for p in policies):
            return RetentionPolicy.FOREVER
        return max(policies, key=lambda p: p.days or 0)

    def shortest_days(self) -> int | None:
        """The fewest days any event of the tenant can be kept (None: everything is FOREVER)."""
        days = [p.days for p in [*self.by_endpoint.values(), self.default] if p.days is not None]
        return min(days) if days else None


def _chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


async def _policies(db: Database, tenant_id: str) -> _Policies:
    async with db.unit_of_work(write=False) as session:
        default = await session.scalar(
            sa.select(TenantWebhookConfig.retention).where(TenantWebhookConfig.tenant_id == tenant_id)
        )
        rows = (
            await session.execute(
                sa.select(WebhookEndpoint.id, WebhookEndpoint.retention).where(
                    WebhookEndpoint.tenant_id == tenant_id
                )
            )
        ).all()
    fallback = default or DEFAULT_RETENTION
    return _Policies({r.id: r.retention or fallback for r in rows}, fallback)


async def _purge_attempts(
    db: Database, tenant_id: str, policies: _Policies, now: datetime, batch: int
) -> int:
    groups: dict[RetentionPolicy, list[str]] = {}
    for endpoint_id, policy in sorted(policies.by_endpoint.items()):
        if policy.days is not None:
            groups.setdefault(policy, []).append(endpoint_id)
    deleted = 0
    a = WebhookAttempt
    for policy, endpoint_ids in sorted(groups.items()):
        cutoff = now - timedelta(days=policy.days or 0)
        for chunk in _chunks(endpoint_ids, batch):
            while True:
                async with db.unit_of_work() as session:
                    pick = sa.select(a.id).where(
                        a.tenant_id == tenant_id, a.endpoint_id.in_(chunk), a.started_at < cutoff
                    )
                    if policy is RetentionPolicy.NONE:  # only attempts of final deliveries
                        pick = pick.join(WebhookDelivery, WebhookDelivery.id == a.delivery_id).where(
                            WebhookDelivery.status.in_(FINAL)
                        )
                    ids = list((await session.scalars(pick.limit(batch))).all())
                    if ids:
                        result = await session.execute(
                            sa.delete(a)
                            .where(a.tenant_id == tenant_id, a.id.in_(ids))
                            .execution_options(synchronize_session=False)
                        )
                        deleted += int(getattr(result, "rowcount", 0) or 0)
                if len(ids) < batch:
                    break
    return deleted


async def _purge_payloads(
    db: Database, tenant_id: str, policies: _Policies, now: datetime, batch: int
) -> int:
    shortest = policies.shortest_days()
    if shortest is None:
        return 0
    newest = now - timedelta(days=shortest)
    e, d = WebhookEvent, WebhookDelivery
    purged = 0
    cursor: tuple[datetime, str] | None = None
    while True:
        async with db.unit_of_work() as session:
            pick = sa.select(e.id, e.created_at).where(
                e.tenant_id == tenant_id, e.payload_purged_at.is_(None), e.created_at < newest
            )
            if cursor is not None:
                pick = pick.where(
                    sa.or_(e.created_at > cursor[0], sa.and_(e.created_at == cursor[0], e.id > cursor[1]))
                )
            pick = pick.order_by(e.created_at, e.id).limit(batch)
            if not db.is_sqlite:
                pick = pick.with_for_update(skip_locked=True)
            events = (await session.execute(pick)).all()
            if not events:
                return purged
            cursor = (events[-1].created_at, events[-1].id)
            # Read after the lock: a replay that requeued one of these has committed by now.
            rows = (
                await session.execute(
                    sa.select(d.event_id, d.endpoint_id, d.status).where(
                        d.tenant_id == tenant_id, d.event_id.in_([r.id for r in events])
                    )
                )
            ).all()
            targets: dict[str, list[str]] = {}
            unfinished: set[str] = set()
            for event_id, endpoint_id, status in rows:
                targets.setdefault(event_id, []).append(endpoint_id)
                if status not in FINAL:
                    unfinished.add(event_id)
            due: list[str] = []
            for event_id, created_at in events:
                if event_id in unfinished:
                    continue
                days = policies.longest(targets.get(event_id, [])).days
                if days is not None and created_at < now - timedelta(days=days):
                    due.append(event_id)
            if due:
                result = await session.execute(
                    sa.update(e)
                    .where(e.tenant_id == tenant_id, e.id.in_(due), e.payload_purged_at.is_(None))
                    .values(payload=sa.null(), payload_purged_at=now)
                    .execution_options(synchronize_session=False)
                )
                purged += int(getattr(result, "rowcount", 0) or 0)
        if len(events) < batch:
            return purged


async def purge_tenant(db: Database, tenant_id: str, *, batch: int = BATCH) -> TenantPurge:
    """Purge one tenant's expired attempts and payloads; audited when anything went."""
    now = utcnow()
    policies = await _policies(db, tenant_id)
    counts = TenantPurge(
        attempts=await _purge_attempts(db, tenant_id, policies, now, batch),
        payloads=await _purge_payloads(db, tenant_id, policies, now, batch),
    )
    if counts.attempts or counts.payloads:
        async with db.unit_of_work() as session:
            audit.record(
                session,
                system_actor(tenant_id),
                AUDIT_ACTION,
                "retention",
                None,
                {
                    "attempts": {"old": None, "new": counts.attempts},
                    "payloads": {"old": None, "new": counts.payloads},
                    "defaultPolicy": {"old": None, "new": policies.default.value},
                },
            )
    return counts


async def purge(db: Database, *, batch: int = BATCH) -> WebhookPurgeResult:
    """Purge every tenant (see the module contracts). Idempotent; safe to run concurrently."""
    async with db.unit_of_work(write=False) as session:
        tenant_ids = list((await session.scalars(sa.select(Tenant.id).order_by(Tenant.id))).all())
    result = WebhookPurgeResult()
    for tenant_id in tenant_ids:
        counts = await purge_tenant(db, tenant_id, batch=batch)
        if counts.attempts or counts.payloads:
            result.tenants[tenant_id] = counts
    return result
