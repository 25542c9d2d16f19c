"""Reading deliveries and their attempts, and requeueing a delivery by hand. Tenant-scoped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.enums import DeliveryStatus
from interlink.core.errors import Conflict, NotFound
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.webhooks.ingest import NOTIFY_CHANNEL
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


@dataclass(frozen=True)
class DeliveryFilter:
    endpoint_id: str | None = None
    event_id: str | None = None
    status: DeliveryStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None


async def list_deliveries(
    session: AsyncSession, tenant_id: str, flt: DeliveryFilter, page: PageRequest
) -> Page[WebhookDelivery]:
    """Deliveries of the tenant, newest first; ``since``/``until`` bound ``createdAt``;
    ``event_type`` keeps deliveries of events of that type."""
    stmt = sa.select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
    if flt.event_type:
        stmt = stmt.join(
            WebhookEvent,
            sa.and_(WebhookEvent.tenant_id == tenant_id, WebhookEvent.id == WebhookDelivery.event_id),
        ).where(WebhookEvent.event_type == flt.event_type)
    if flt.endpoint_id:
        stmt = stmt.where(WebhookDelivery.endpoint_id == flt.endpoint_id)
    if flt.event_id:
        stmt = stmt.where(WebhookDelivery.event_id == flt.event_id)
    if flt.status:
        stmt = stmt.where(WebhookDelivery.status == flt.status)
    if flt.since:
        stmt = stmt.where(WebhookDelivery.created_at >= flt.since)
    if flt.until:
        stmt = stmt.where(WebhookDelivery.created_at < flt.until)
    rows = (await session.scalars(paginate_query(stmt, WebhookDelivery.id, page))).all()
    return make_page(rows, page, lambda d: d.id)


async def event_types_of(session: AsyncSession, tenant_id: str, event_ids: Iterable[str]) -> dict[str, str]:
    """The type of each of the tenant's events in ``event_ids`` (one query; unknown ids are left out)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        sa.select(WebhookEvent.id, WebhookEvent.event_type).where(
            WebhookEvent.tenant_id == tenant_id, WebhookEvent.id.in_(wanted)
        )
    )
    return {event_id: event_type for event_id, event_type in rows.all()}


async def get_delivery(
    session: AsyncSession, tenant_id: str, delivery_id: str, *, for_update: bool = False
) -> WebhookDelivery:
    stmt = sa.select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    delivery = await session.scalar(stmt)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return delivery


async def list_attempts(
    session: AsyncSession, tenant_id: str, delivery_id: str, page: PageRequest
) -> Page[WebhookAttempt]:
    """Attempts of one delivery, newest first."""
    await get_delivery(session, tenant_id, delivery_id)
    stmt = sa.select(WebhookAttempt).where(
        WebhookAttempt.tenant_id == tenant_id, WebhookAttempt.delivery_id == delivery_id
    )
    rows = (await session.scalars(paginate_query(stmt, WebhookAttempt.id, page))).all()
    return make_page(rows, page, lambda a: a.id)


async def retry_delivery(session: AsyncSession, actor: Actor, delivery_id: str) -> WebhookDelivery:
    """Requeue a delivery now (any state but SENDING). Its endpoint must be enabled and its
    event's payload not purged by retention (else 409).

    The retry schedule restarts (``retry_base``): a delivery whose retries were exhausted, or a
    delivered one, gets the endpoint's whole schedule again, like a replay.
    """
    event_id = await session.scalar(
        sa.select(WebhookDelivery.event_id).where(
            WebhookDelivery.tenant_id == actor.tenant_id, WebhookDelivery.id == delivery_id
        )
    )
    if event_id is None:
        raise NotFound(f"delivery {delivery_id} not found")
    # The event is locked before the delivery, in the order replays and the retention purge use.
    purged_at = await session.scalar(
        sa.select(WebhookEvent.payload_purged_at)
        .where(WebhookEvent.tenant_id == actor.tenant_id, WebhookEvent.id == event_id)
        .with_for_update()
    )
    delivery = await get_delivery(session, actor.tenant_id, delivery_id, for_update=True)
    now = utcnow()
    if purged_at is not None:
        raise Conflict(
            f"the payload of event {event_id} was purged by retention at {purged_at.isoformat()}; "
            "it cannot be sent again"
        )
    if delivery.status is DeliveryStatus.SENDING and (
        delivery.lease_expires_at is None or delivery.lease_expires_at > now
    ):
        raise Conflict(f"delivery {delivery_id} is being sent right now")
    enabled = await session.scalar(
        sa.select(WebhookEndpoint.enabled).where(
            WebhookEndpoint.tenant_id == actor.tenant_id, WebhookEndpoint.id == delivery.endpoint_id
        )
    )
    if not enabled:
        raise Conflict(f"endpoint {delivery.endpoint_id} is disabled; enable it before retrying")
    before = delivery.status
    delivery.status = DeliveryStatus.RETRYING if delivery.attempts else DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.retry_base = delivery.attempts
    # A batch endpoint bundles it afresh: receivers would drop a resend under the old batch id.
    delivery.batch_id = None
    delivery.locked_by = None
    delivery.lease_expires_at = None
    delivery.updated_at = now
    audit.record(
        session,
        actor,
        "delivery.retried",
        "delivery",
        delivery.id,
        {"status": {"old": before.value, "new": delivery.status.value}},
    )
    await session.flush()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
    return delivery
