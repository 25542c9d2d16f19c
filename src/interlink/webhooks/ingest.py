"""Ingest: accept events and fan them out to deliveries, in one transaction.

Contracts:

* :func:`ingest` / :func:`ingest_batch` write each event and one ``webhook_deliveries`` row per
  matching endpoint in the caller's unit of work, so an accepted event is never lost and never
  half fanned out. A matching endpoint is enabled, subscribed to the type (an empty subscription
  list means every type) and its filter matches ``{"type", "payload", "metadata"}``. With
  ``endpoint_ids`` only those endpoints are considered; each must belong to the tenant.
* ``idempotency_key``: a second event with the same key within :data:`IDEMPOTENCY_WINDOW` returns
  the first event (``created=False``) and writes nothing. The unique constraint on
  ``(tenant_id, idempotency_key)`` makes concurrent duplicates safe: the loser of the race reads
  the winner's event. After the window the old event gives its key up.
* When the event type is registered with a JSON Schema, the payload must match it (422 naming
  ``payload`` and the failing path).
* On PostgreSQL the transaction sends ``NOTIFY interlink_deliveries`` so idle delivery workers wake.
* ``immediate`` events: their deliveries are held back from the queue for :data:`IMMEDIATE_HOLD`
  while the request makes the first attempt (``delivery.deliver_now``), which claims them
  regardless of the hold.
* Batch endpoints (``batch_config``, WEBHOOK channel): a new delivery is due ``maxWaitSeconds``
  after the event was accepted (``immediate`` does not apply to them); when ``maxCount`` first
  deliveries of the endpoint wait, the oldest ``maxCount`` are due at once (their batch is full).
  See "Batches" in :mod:`interlink.webhooks.delivery`.
* Deleted endpoints get no delivery. On PostgreSQL an endpoint deleted while the ingest runs
  (after its endpoints were read) is seen once the deliveries are written (their foreign key locks
  the endpoint against a later delete), and those deliveries are CANCELLED in the same
  transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.enums import DeliveryChannel, DeliveryStatus
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.ids import is_id, new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.webhooks import endpoints, filters
from interlink.webhooks.models import (
    QUEUED_PREDICATE,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)

NOTIFY_CHANNEL: Final = "interlink_deliveries"
IDEMPOTENCY_WINDOW: Final = timedelta(hours=24)
MAX_BATCH: Final = 100
MAX_ENDPOINT_IDS: Final = 100
EVENT_TYPE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
ALL_TYPES: Final = "*"


class Priority(IntEnum):
    """Delivery order among due deliveries: lower goes first."""

    HIGH = 0
    NORMAL = 5
    LOW = 9


def priority_name(value: int) -> Literal["HIGH", "NORMAL", "LOW"]:
    if value <= Priority.HIGH:
        return "HIGH"
    return "NORMAL" if value <= Priority.NORMAL else "LOW"


@dataclass(frozen=True)
class EventSpec:
    """One event to accept. ``field_prefix`` names fields in errors (``events.3.payload``)."""

    type: str
    payload: dict[str, Any] | None
    endpoint_ids: list[str] | None = None
    idempotency_key: str | None = None
    priority: Priority = Priority.NORMAL
    metadata: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    source: str = "api"
    field_prefix: str = ""
    immediate: bool = False
    """The caller makes the first attempt itself (``deliver_now``): the deliveries are held back
    from the queue for :data:`IMMEDIATE_HOLD`, so a worker woken by the commit does not race it.
    If the immediate attempt never happens, the queue sends them when the hold ends."""
    bypass_subscription: bool = False
    """Deliver to every enabled endpoint in ``endpoint_ids`` whatever its subscriptions and filter
    (the ``webhook.test`` ping, :func:`interlink.webhooks.health.send_test`)."""


IMMEDIATE_HOLD: Final = timedelta(seconds=30)


@dataclass
class IngestResult:
    event: WebhookEvent
    deliveries: list[WebhookDelivery]
    created: bool


def filter_document(event_type: str, payload: Any, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The document filters and transformations see."""
    return {"type": event_type, "payload": payload, "metadata": metadata or {}}


@dataclass(frozen=True)
class BatchSettings:
    """An endpoint's ``batch_config``: the most events and bytes in one request, and how long the
    oldest event waits for its batch to fill."""

    max_count: int
    max_bytes: int
    max_wait: timedelta


def batch_settings(config: dict[str, Any] | None, channel: DeliveryChannel | str) -> BatchSettings | None:
    """The batching of an endpoint, or None when it is not batched (only WEBHOOK endpoints batch)."""
    if not config or channel != DeliveryChannel.WEBHOOK:
        return None
    return BatchSettings(
        max_count=max(1, int(config.get("maxCount", 1))),
        max_bytes=int(config.get("maxBytes", 0)),
        max_wait=timedelta(seconds=float(config.get("maxWaitSeconds", 0))),
    )


async def _due_full_batches(
    session: AsyncSession, tenant_id: str, batched: Sequence[tuple[str, BatchSettings]], now: datetime
) -> None:
    """Batch endpoints with ``maxCount`` waiting first deliveries: the oldest ``maxCount`` are due
    now (their batch is full), the rest keep waiting."""
    d = WebhookDelivery
    for endpoint_id, settings in batched:
        waiting = (
            sa.select(d.id)
            .where(
                d.tenant_id == tenant_id,
                d.endpoint_id == endpoint_id,
                sa.text(QUEUED_PREDICATE),
                d.status == sa.literal_column("'PENDING'"),
                d.batch_id.is_(None),
            )
            .order_by(d.priority, d.next_attempt_at)
            .limit(settings.max_count)
        )
        ids = list((await session.scalars(waiting)).all())
        if len(ids) >= settings.max_count:
            await session.execute(
                sa.update(d)
                .where(d.id.in_(ids), d.next_attempt_at > now)
                .values(next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )


async def _cancel_for_deleted(
    session: AsyncSession, tenant_id: str, used: set[str], results: Sequence[IngestResult], now: datetime
) -> set[str]:
    """PostgreSQL: endpoints deleted while this transaction ran, whose new deliveries are CANCELLED.

    The delivery inserts hold a key-share lock on their endpoints (foreign key), so a delete
    either committed before them (and this later statement sees it) or waits for this commit (and
    its own cancel sees these rows). SQLite runs writers one at a time: nothing to check."""
    deleted = set(
        (
            await session.scalars(
                sa.select(WebhookEndpoint.id).where(
                    WebhookEndpoint.tenant_id == tenant_id,
                    WebhookEndpoint.id.in_(sorted(used)),
                    WebhookEndpoint.deleted_at.is_not(None),
                )
            )
        ).all()
    )
    if deleted:
        await session.execute(
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.tenant_id == tenant_id,
                WebhookDelivery.endpoint_id.in_(sorted(deleted)),
                WebhookDelivery.event_id.in_([r.event.id for r in results if r.created]),
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for result in results:
            for delivery in result.deliveries if result.created else ():
                if delivery.endpoint_id in deleted:
                    delivery.status = DeliveryStatus.CANCELLED
    return deleted


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    types = endpoint.event_types or []
    return not types or ALL_TYPES in types or event_type in types


def _first_attempt_at(endpoint: WebhookEndpoint, spec: EventSpec, now: datetime) -> datetime:
    """When a new delivery is due: after ``maxWaitSeconds`` on a batch endpoint (``immediate`` does
    not apply there), after :data:`IMMEDIATE_HOLD` for an immediate event, else now."""
    batching = batch_settings(endpoint.batch_config, endpoint.channel)
    if batching is not None:
        return now + batching.max_wait
    return now + IMMEDIATE_HOLD if spec.immediate else now


def _name(spec: EventSpec, name: str) -> str:
    return f"{spec.field_prefix}{name}"


async def _schemas(session: AsyncSession, tenant_id: str, names: set[str]) -> dict[str, dict[str, Any]]:
    rows = await session.execute(
        sa.select(WebhookEventType.name, WebhookEventType.json_schema).where(
            WebhookEventType.tenant_id == tenant_id, WebhookEventType.name.in_(sorted(names))
        )
    )
    return {name: schema for name, schema in rows.all() if schema}


def _check_payload(spec: EventSpec, schema: dict[str, Any] | None) -> None:
    endpoints.validate_payload(schema, spec.payload, _name(spec, "payload"))


def _check_spec(spec: EventSpec) -> None:
    if not EVENT_TYPE_RE.match(spec.type):
        raise ValidationFailed(
            "type must be 1-200 letters, digits or . _ : - and start with a letter or digit",
            field=_name(spec, "type"),
        )
    for endpoint_id in spec.endpoint_ids or []:
        if not is_id(endpoint_id, "ep"):
            raise ValidationFailed(f"{endpoint_id!r} is not an endpoint id", field=_name(spec, "endpointIds"))


async def _existing(session: AsyncSession, tenant_id: str, key: str, now: datetime) -> WebhookEvent | None:
    """The live event holding ``key``; an expired holder gives the key up."""
    event = await session.scalar(
        sa.select(WebhookEvent).where(
            WebhookEvent.tenant_id == tenant_id, WebhookEvent.idempotency_key == key
        )
    )
    if event is None:
        return None
    if now - event.created_at < IDEMPOTENCY_WINDOW:
        return event
    await session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.id == event.id)
        .values(idempotency_key=None)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return None


async def _deliveries_of(session: AsyncSession, tenant_id: str, event_id: str) -> list[WebhookDelivery]:
    rows = await session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.event_id == event_id)
        .order_by(WebhookDelivery.id)
    )
    return list(rows.all())


async def _candidate_endpoints(
    session: AsyncSession, tenant_id: str, specs: Sequence[EventSpec]
) -> dict[str, WebhookEndpoint]:
    named = {i for s in specs for i in (s.endpoint_ids or [])}
    stmt = sa.select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id,
        WebhookEndpoint.deleted_at.is_(None),
        sa.or_(
            WebhookEndpoint.disabled_reason.is_(None),
            WebhookEndpoint.disabled_reason != endpoints.DELETED_REASON,
        ),
    )
    if all(s.endpoint_ids is not None for s in specs):
        stmt = stmt.where(WebhookEndpoint.id.in_(sorted(named)))
    found = {e.id: e for e in (await session.scalars(stmt)).all()}
    for spec in specs:
        unknown = sorted(set(spec.endpoint_ids or []) - set(found))
        if unknown:
            raise ValidationFailed(
                f"no endpoint {', '.join(unknown)} in this tenant", field=_name(spec, "endpointIds")
            )
    return found


async def ingest_batch(session: AsyncSession, actor: Actor, specs: Sequence[EventSpec]) -> list[IngestResult]:
    """Accept events (all or none) in the caller's transaction; see the module contracts."""
    if not specs:
        return []
    if len(specs) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} events per batch", field="events")
    tenant_id = actor.tenant_id
    now = utcnow()
    for spec in specs:
        _check_spec(spec)
    keys = [s.idempotency_key for s in specs if s.idempotency_key]
    if len(keys) != len(set(keys)):
        raise ValidationFailed("idempotencyKey values must differ within a batch", field="idempotencyKey")
    schemas = await _schemas(session, tenant_id, {s.type for s in specs})
    for spec in specs:
        _check_payload(spec, schemas.get(spec.type))
    candidates = await _candidate_endpoints(session, tenant_id, specs)
    enabled = sorted((e for e in candidates.values() if e.enabled), key=lambda e: e.id)

    results: list[IngestResult] = []
    delivery_rows: list[dict[str, Any]] = []
    for spec in specs:
        if spec.idempotency_key:
            existing = await _existing(session, tenant_id, spec.idempotency_key, now)
            if existing is not None:
                results.append(
                    IngestResult(existing, await _deliveries_of(session, tenant_id, existing.id), False)
                )
                continue
        event = WebhookEvent(
            id=new_id("evt"),
            tenant_id=tenant_id,
            event_type=spec.type,
            payload=spec.payload,
            idempotency_key=spec.idempotency_key,
            priority=int(spec.priority),
            source=spec.source,
            correlation_id=spec.correlation_id or actor.correlation_id,
            created_at=now,
            meta=spec.metadata or {},
        )
        if spec.idempotency_key:
            try:
                async with session.begin_nested():
                    session.add(event)
            except IntegrityError:
                winner = await _existing(session, tenant_id, spec.idempotency_key, now)
                if winner is None:
                    raise
                results.append(
                    IngestResult(winner, await _deliveries_of(session, tenant_id, winner.id), False)
                )
                continue
        else:
            session.add(event)
        document = filter_document(spec.type, spec.payload, spec.metadata)
        allowed = set(spec.endpoint_ids) if spec.endpoint_ids is not None else None
        deliveries: list[WebhookDelivery] = []
        for endpoint in enabled:
            if allowed is not None and endpoint.id not in allowed:
                continue
            if not spec.bypass_subscription and (
                not subscribed(endpoint, spec.type) or not filters.matches(endpoint.filter, document)
            ):
                continue
            delivery = WebhookDelivery(
                id=new_id("del"),
                tenant_id=tenant_id,
                event_id=event.id,
                endpoint_id=endpoint.id,
                status=DeliveryStatus.PENDING,
                priority=int(spec.priority),
                next_attempt_at=_first_attempt_at(endpoint, spec, now),
                attempts=0,
                correlation_id=event.correlation_id,
                created_at=now,
                updated_at=now,
            )
            deliveries.append(delivery)
            delivery_rows.append(
                {
                    c: getattr(delivery, c)
                    for c in (
                        "id",
                        "tenant_id",
                        "event_id",
                        "endpoint_id",
                        "status",
                        "priority",
                        "next_attempt_at",
                        "attempts",
                        "correlation_id",
                        "created_at",
                        "updated_at",
                    )
                }
            )
        results.append(IngestResult(event, deliveries, True))
    await session.flush()
    if delivery_rows:
        await session.execute(sa.insert(WebhookDelivery), delivery_rows)
        used = {row["endpoint_id"] for row in delivery_rows}
        if session.get_bind().dialect.name == "postgresql":
            used -= await _cancel_for_deleted(session, tenant_id, used, results, now)
        batched = [
            (e.id, b)
            for e in enabled
            if e.id in used and (b := batch_settings(e.batch_config, e.channel)) is not None
        ]
        if batched:
            await _due_full_batches(session, tenant_id, batched, now)
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
    created = [r.event.id for r in results if r.created]
    if len(specs) == 1 and created:
        r = results[0]
        audit.record(
            session,
            actor,
            "event.created",
            "event",
            r.event.id,
            {
                "type": {"old": None, "new": r.event.event_type},
                "deliveries": {"old": None, "new": len(r.deliveries)},
            },
        )
    elif created:
        audit.record(
            session,
            actor,
            "event.batch_created",
            "event",
            created[0],
            {
                "eventIds": {"old": None, "new": created},
                "deliveries": {"old": None, "new": len(delivery_rows)},
            },
        )
    return results


async def ingest(session: AsyncSession, actor: Actor, spec: EventSpec) -> IngestResult:
    """Accept one event; see the module contracts."""
    [result] = await ingest_batch(session, actor, [spec])
    return result


# -- reads -----------------------------------------------------------------------------------------


async def get_event(
    session: AsyncSession, tenant_id: str, event_id: str
) -> tuple[WebhookEvent, list[WebhookDelivery]]:
    """An event of the tenant with its deliveries. Raises NotFound."""
    event = await session.scalar(
        sa.select(WebhookEvent).where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.id == event_id)
    )
    if event is None:
        raise NotFound(f"event {event_id} not found")
    return event, await _deliveries_of(session, tenant_id, event_id)


async def list_events(
    session: AsyncSession, tenant_id: str, page: PageRequest, *, event_type: str | None = None
) -> Page[WebhookEvent]:
    """Events of the tenant, newest first, optionally of one type."""
    stmt = sa.select(WebhookEvent).where(WebhookEvent.tenant_id == tenant_id)
    if event_type:
        stmt = stmt.where(WebhookEvent.event_type == event_type)
    rows = (await session.scalars(paginate_query(stmt, WebhookEvent.id, page))).all()
    return make_page(rows, page, lambda e: e.id)
