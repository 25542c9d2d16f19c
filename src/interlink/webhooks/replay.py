"""Replays (the guide's WebhookReplayRequest): send again what was sent before, recorded.

Three forms, each in the caller's unit of work:

* **one delivery** (``delivery_id``): requeue it. 404 when it is not the tenant's; 409 when its
  endpoint is disabled or deleted, or its event's payload was purged by retention.
* **one event** (``event_id``, optional ``endpoint_ids``): every endpoint that is enabled,
  subscribed to the type and whose filter matches (the ingest rules), or only the listed ones
  (404 for an id that is not the tenant's). Endpoints that already have a delivery of the event
  get it requeued (the ``(event_id, endpoint_id)`` pair is unique); the others get a new delivery.
  A listed endpoint that is disabled, not subscribed or filtered out is skipped and reported; so
  is one the event went to before and that no longer qualifies. 409 when the payload was purged.
* **an endpoint's deliveries in a time range** (``endpoint_id``, ``since``, ``until``,
  ``statuses``, default FAILED): every delivery of that endpoint in those states whose event was
  created in ``[since, until)``. At most :data:`MAX_REPLAY_DELIVERIES` per replay: a range with
  more is a 422 asking to split it (nothing is requeued). Deliveries whose payload was purged are
  skipped and reported. 409 when the endpoint is disabled (nothing could be sent).

Requeueing sets PENDING (never attempted) or RETRYING, due now, and restarts the retry schedule
(``retry_base = attempts``), exactly like :func:`deliveries.retry_delivery`; the delivery workers
send it (on PostgreSQL the transaction sends ``NOTIFY``). A delivery being sent right now
(SENDING with a live lease) is skipped and reported, in every form.

**Idempotency.** ``(tenant_id, request_id)`` is unique. The record is inserted before any work, so
a concurrent duplicate waits for the first and then reads it. A repeat with the same normalised
request returns the first record (``created=False``) and sends nothing; a different request under
the same id is a 409.

**Locking.** Events are locked (``FOR UPDATE``, ascending ids) before their deliveries are
touched, the order :func:`deliveries.retry_delivery` and the retention purge use, so a payload is
never purged under a delivery that is being requeued.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.context import current_correlation_id
from interlink.core.enums import DeliveryStatus
from interlink.core.errors import Conflict, NotFound, ValidationFailed
from interlink.core.ids import is_id, new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.webhooks import endpoints, filters
from interlink.webhooks.ingest import NOTIFY_CHANNEL, filter_document, subscribed
from interlink.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookReplay

MAX_REPLAY_DELIVERIES: Final = 10_000
"""The most deliveries one replay requeues; a time range matching more must be split."""
MAX_ENDPOINT_IDS: Final = 100
CHUNK: Final = 500
"""Ids per statement (bounded IN lists on both databases)."""
MAX_REQUEST_ID: Final = 200
REPLAYABLE_STATUSES: Final = (DeliveryStatus.FAILED, DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED)


class SkipReason(StrEnum):
    SENDING = "sending"
    ENDPOINT_DISABLED = "endpoint_disabled"
    ENDPOINT_DELETED = "endpoint_deleted"
    PAYLOAD_PURGED = "payload_purged"
    NOT_SUBSCRIBED = "not_subscribed"
    FILTERED_OUT = "filtered_out"
    STATUS_CHANGED = "status_changed"


class Kind(StrEnum):
    DELIVERY = "delivery"
    EVENT = "event"
    ENDPOINT = "endpoint"


@dataclass(frozen=True)
class ReplaySpec:
    """One replay request; exactly one of ``delivery_id``, ``event_id``, ``endpoint_id``."""

    request_id: str
    delivery_id: str | None = None
    event_id: str | None = None
    endpoint_ids: Sequence[str] | None = None
    endpoint_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    statuses: Sequence[DeliveryStatus] | None = None


@dataclass
class ReplayResult:
    replay: WebhookReplay
    created: bool


@dataclass
class _Outcome:
    delivery_ids: list[str]
    created_count: int
    skipped: list[dict[str, Any]]


def _skip(reason: SkipReason, endpoint_id: str, event_id: str, delivery_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"endpointId": endpoint_id, "eventId": event_id, "reason": reason.value}
    if delivery_id is not None:
        out["deliveryId"] = delivery_id
    return out


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


# -- the request ---------------------------------------------------------------------------------


def _check_id(value: str, prefix: str, name: str) -> str:
    if not is_id(value, prefix):
        raise ValidationFailed(f"{value!r} is not a {prefix}_ id", field=name)
    return value


def _refuse(spec: ReplaySpec, names: Iterable[str], form: str) -> None:
    for name in names:
        if getattr(spec, name) is not None:
            field = {"endpoint_ids": "endpointIds", "endpoint_id": "endpointId"}.get(name, name)
            raise ValidationFailed(f"{field} does not go with {form}", field=field)


def normalise(spec: ReplaySpec) -> tuple[Kind, dict[str, Any]]:
    """The kind and the normalised request (what a repeated ``requestId`` is compared with).

    Raises ValidationFailed naming the field for a malformed or ambiguous request."""
    if not spec.request_id or len(spec.request_id) > MAX_REQUEST_ID or not spec.request_id.isprintable():
        raise ValidationFailed(
            f"requestId must be 1-{MAX_REQUEST_ID} printable characters", field="requestId"
        )
    targets = [
        n
        for n, v in (
            ("deliveryId", spec.delivery_id),
            ("eventId", spec.event_id),
            ("endpointId", spec.endpoint_id),
        )
        if v is not None
    ]
    if not targets:
        raise ValidationFailed(
            "give deliveryId, eventId (with endpointIds optionally), or endpointId with since and until",
            field="deliveryId",
        )
    if len(targets) > 1:
        raise ValidationFailed(f"{targets[0]} and {targets[1]} cannot be combined", field=targets[1])
    request: dict[str, Any] = {"requestId": spec.request_id}
    if spec.delivery_id is not None:
        _refuse(spec, ("endpoint_ids", "since", "until", "statuses"), "deliveryId")
        request["deliveryId"] = _check_id(spec.delivery_id, "del", "deliveryId")
        return Kind.DELIVERY, request
    if spec.event_id is not None:
        _refuse(spec, ("since", "until", "statuses"), "eventId")
        request["eventId"] = _check_id(spec.event_id, "evt", "eventId")
        if spec.endpoint_ids is not None:
            if not spec.endpoint_ids:
                raise ValidationFailed("endpointIds must name at least one endpoint", field="endpointIds")
            if len(spec.endpoint_ids) > MAX_ENDPOINT_IDS:
                raise ValidationFailed(f"at most {MAX_ENDPOINT_IDS} endpointIds", field="endpointIds")
            request["endpointIds"] = sorted({_check_id(e, "ep", "endpointIds") for e in spec.endpoint_ids})
        return Kind.EVENT, request
    assert spec.endpoint_id is not None
    _refuse(spec, ("endpoint_ids",), "endpointId (use endpointId with since and until, or eventId)")
    request["endpointId"] = _check_id(spec.endpoint_id, "ep", "endpointId")
    if spec.since is None:
        raise ValidationFailed("since is required with endpointId", field="since")
    if spec.until is None:
        raise ValidationFailed("until is required with endpointId", field="until")
    if spec.until <= spec.since:
        raise ValidationFailed("until must be after since", field="until")
    statuses = list(spec.statuses) if spec.statuses is not None else [DeliveryStatus.FAILED]
    if not statuses:
        raise ValidationFailed("statuses must name at least one state", field="statuses")
    wrong = sorted({s.value for s in statuses if s not in REPLAYABLE_STATUSES})
    if wrong:
        allowed = ", ".join(s.value for s in REPLAYABLE_STATUSES)
        raise ValidationFailed(
            f"statuses may only be final states ({allowed}); {', '.join(wrong)} are sent already",
            field="statuses",
        )
    request["since"] = spec.since.isoformat()
    request["until"] = spec.until.isoformat()
    request["statuses"] = sorted({s.value for s in statuses})
    return Kind.ENDPOINT, request


# -- shared steps ----------------------------------------------------------------------------------


def _endpoint_gone(endpoint: WebhookEndpoint) -> bool:
    return endpoints.is_deleted(endpoint) or endpoint.deleted_at is not None


async def _lock_events(
    session: AsyncSession, tenant_id: str, event_ids: Iterable[str]
) -> dict[str, WebhookEvent]:
    """The tenant's events among ``event_ids``, locked in ascending id order."""
    found: dict[str, WebhookEvent] = {}
    for chunk in _chunks(sorted(set(event_ids))):
        rows = await session.scalars(
            sa.select(WebhookEvent)
            .where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.id.in_(chunk))
            .order_by(WebhookEvent.id)
            .with_for_update()
        )
        found.update({e.id: e for e in rows.all()})
    return found


async def _lock_purge_states(
    session: AsyncSession, tenant_id: str, event_ids: Iterable[str]
) -> dict[str, datetime | None]:
    """``payload_purged_at`` of the tenant's events among ``event_ids``, locked in ascending id
    order (only those two columns are read: a time range may hold thousands of events)."""
    found: dict[str, datetime | None] = {}
    for chunk in _chunks(sorted(set(event_ids))):
        rows = await session.execute(
            sa.select(WebhookEvent.id, WebhookEvent.payload_purged_at)
            .where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.id.in_(chunk))
            .order_by(WebhookEvent.id)
            .with_for_update()
        )
        found.update({event_id: purged_at for event_id, purged_at in rows.all()})
    return found


def _purged(event: WebhookEvent) -> Conflict:
    when = event.payload_purged_at.isoformat() if event.payload_purged_at else "earlier"
    return Conflict(
        f"the payload of event {event.id} was purged by retention at {when}; it cannot be replayed",
        extra={"reason": "payload_purged"},
    )


async def requeue(
    session: AsyncSession,
    tenant_id: str,
    delivery_ids: Sequence[str],
    now: datetime,
    *,
    only_statuses: Sequence[DeliveryStatus] | None = None,
) -> set[str]:
    """Make deliveries due now with a fresh retry schedule; returns the ids requeued.

    Deliveries being sent (SENDING with a live lease) and, with ``only_statuses``, deliveries no
    longer in those states are left alone. Bounded statements of :data:`CHUNK` ids."""
    t = WebhookDelivery
    done: set[str] = set()
    in_flight = sa.and_(
        t.status == DeliveryStatus.SENDING, sa.or_(t.lease_expires_at.is_(None), t.lease_expires_at >= now)
    )
    for chunk in _chunks(list(delivery_ids)):
        stmt = (
            sa.update(t)
            .where(t.tenant_id == tenant_id, t.id.in_(chunk), sa.not_(in_flight))
            .values(
                status=sa.case(
                    (t.attempts == 0, DeliveryStatus.PENDING.value), else_=DeliveryStatus.RETRYING.value
                ),
                next_attempt_at=now,
                retry_base=t.attempts,
                batch_id=None,  # a batch endpoint re-bundles it under a new batch id
                locked_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(t.id)
            .execution_options(synchronize_session=False)
        )
        if only_statuses is not None:
            stmt = stmt.where(t.status.in_(list(only_statuses)))
        done.update((await session.scalars(stmt)).all())
    return done


# -- the three forms ---------------------------------------------------------------------------------


async def _replay_delivery(
    session: AsyncSession, tenant_id: str, delivery_id: str, now: datetime
) -> _Outcome:
    found = (
        await session.execute(
            sa.select(WebhookDelivery.event_id, WebhookDelivery.endpoint_id).where(
                WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"delivery {delivery_id} not found")
    event_id, endpoint_id = found
    event = (await _lock_events(session, tenant_id, [event_id]))[event_id]
    if event.payload_purged_at is not None:
        raise _purged(event)
    endpoint = await session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )
    if endpoint is None or _endpoint_gone(endpoint):
        raise Conflict(f"endpoint {endpoint_id} was deleted; its deliveries cannot be replayed")
    if not endpoint.enabled:
        raise Conflict(
            f"endpoint {endpoint_id} is disabled; enable it before replaying",
            extra={"reason": "endpoint_disabled"},
        )
    if await requeue(session, tenant_id, [delivery_id], now):
        return _Outcome([delivery_id], 0, [])
    return _Outcome([], 0, [_skip(SkipReason.SENDING, endpoint_id, event_id, delivery_id)])


async def _replay_event(
    session: AsyncSession, actor: Actor, event_id: str, endpoint_ids: list[str] | None, now: datetime
) -> _Outcome:
    tenant_id = actor.tenant_id
    event = (await _lock_events(session, tenant_id, [event_id])).get(event_id)
    if event is None:
        raise NotFound(f"event {event_id} not found")
    if event.payload_purged_at is not None:
        raise _purged(event)
    existing = {
        d.endpoint_id: d.id
        for d in (
            await session.execute(
                sa.select(WebhookDelivery.id, WebhookDelivery.endpoint_id).where(
                    WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.event_id == event_id
                )
            )
        ).all()
    }
    stmt = sa.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    if endpoint_ids is not None:
        stmt = stmt.where(WebhookEndpoint.id.in_(endpoint_ids))
    else:
        stmt = stmt.where(sa.or_(WebhookEndpoint.enabled.is_(True), WebhookEndpoint.id.in_(sorted(existing))))
    candidates = sorted((await session.scalars(stmt)).all(), key=lambda e: e.id)
    if endpoint_ids is not None:
        known = {e.id for e in candidates if not _endpoint_gone(e)}
        unknown = [e for e in endpoint_ids if e not in known]
        if unknown:
            raise NotFound(f"no endpoint {', '.join(unknown)} in this tenant")
    document = filter_document(event.event_type, event.payload, event.meta)
    to_requeue: list[str] = []
    to_create: list[WebhookEndpoint] = []
    skipped: list[dict[str, Any]] = []
    for endpoint in candidates:
        delivery_id = existing.get(endpoint.id)
        reason: SkipReason | None = None
        if _endpoint_gone(endpoint):
            reason = SkipReason.ENDPOINT_DELETED
        elif not endpoint.enabled:
            reason = SkipReason.ENDPOINT_DISABLED
        elif not subscribed(endpoint, event.event_type):
            reason = SkipReason.NOT_SUBSCRIBED
        elif not filters.matches(endpoint.filter, document):
            reason = SkipReason.FILTERED_OUT
        if reason is not None:
            # Asked for by name, or sent to before: say why it is left out. Otherwise it simply
            # does not qualify, as at ingest.
            if endpoint_ids is not None or delivery_id is not None:
                skipped.append(_skip(reason, endpoint.id, event_id, delivery_id))
        elif delivery_id is not None:
            to_requeue.append(delivery_id)
        else:
            to_create.append(endpoint)
    done = await requeue(session, tenant_id, to_requeue, now)
    by_id = {v: k for k, v in existing.items()}
    for delivery_id in to_requeue:
        if delivery_id not in done:
            skipped.append(_skip(SkipReason.SENDING, by_id[delivery_id], event_id, delivery_id))
    created: list[str] = []
    rows = []
    for endpoint in to_create:
        new = new_id("del")
        created.append(new)
        rows.append(
            {
                "id": new,
                "tenant_id": tenant_id,
                "event_id": event_id,
                "endpoint_id": endpoint.id,
                "status": DeliveryStatus.PENDING,
                "priority": event.priority,
                "next_attempt_at": now,
                "attempts": 0,
                "retry_base": 0,
                "correlation_id": event.correlation_id,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        await session.execute(sa.insert(WebhookDelivery), rows)
    requeued = [d for d in to_requeue if d in done]
    return _Outcome(sorted(requeued + created), len(created), skipped)


async def _replay_range(
    session: AsyncSession,
    tenant_id: str,
    endpoint_id: str,
    since: datetime,
    until: datetime,
    statuses: list[DeliveryStatus],
    now: datetime,
) -> _Outcome:
    endpoint = await session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )
    if endpoint is None or _endpoint_gone(endpoint):
        raise NotFound(f"endpoint {endpoint_id} not found")
    if not endpoint.enabled:
        raise Conflict(
            f"endpoint {endpoint_id} is disabled; enable it before replaying",
            extra={"reason": "endpoint_disabled"},
        )
    d, e = WebhookDelivery, WebhookEvent
    rows = (
        await session.execute(
            # Driven by the tenant's deliveries; each event is then found by its primary key (a
            # delivery's event is always of its tenant), which stays fast whatever the statistics.
            sa.select(d.id, d.event_id)
            .join(e, e.id == d.event_id)
            .where(
                d.tenant_id == tenant_id,
                d.endpoint_id == endpoint_id,
                d.status.in_(statuses),
                e.created_at >= since,
                e.created_at < until,
            )
            .order_by(d.id)
            .limit(MAX_REPLAY_DELIVERIES + 1)
        )
    ).all()
    if len(rows) > MAX_REPLAY_DELIVERIES:
        raise ValidationFailed(
            f"more than {MAX_REPLAY_DELIVERIES} deliveries match this range; split it into smaller "
            "ranges (one replay each)",
            field="until",
        )
    purge_states = await _lock_purge_states(session, tenant_id, {r.event_id for r in rows})
    skipped: list[dict[str, Any]] = []
    wanted: list[str] = []
    for delivery_id, event_id in rows:
        if event_id not in purge_states or purge_states[event_id] is not None:
            skipped.append(_skip(SkipReason.PAYLOAD_PURGED, endpoint_id, event_id, delivery_id))
        else:
            wanted.append(delivery_id)
    done = await requeue(session, tenant_id, wanted, now, only_statuses=statuses)
    asked = set(wanted)
    for delivery_id, event_id in rows:
        if delivery_id in asked and delivery_id not in done:
            skipped.append(_skip(SkipReason.STATUS_CHANGED, endpoint_id, event_id, delivery_id))
    return _Outcome([i for i in wanted if i in done], 0, skipped)


# -- the use case ------------------------------------------------------------------------------------


async def _by_request_id(session: AsyncSession, tenant_id: str, request_id: str) -> WebhookReplay | None:
    return await session.scalar(
        sa.select(WebhookReplay)
        .where(WebhookReplay.tenant_id == tenant_id, WebhookReplay.request_id == request_id)
        .execution_options(populate_existing=True)
    )


def _same_or_conflict(replay: WebhookReplay, request: dict[str, Any]) -> ReplayResult:
    if replay.request != request:
        raise Conflict(
            f"requestId {replay.request_id!r} was used for a different replay ({replay.id}); "
            "use a new requestId",
            extra={"reason": "request_id_reused"},
        )
    return ReplayResult(replay, False)


async def create_replay(session: AsyncSession, actor: Actor, spec: ReplaySpec) -> ReplayResult:
    """Replay (see the module contracts) and record it; a repeated ``request_id`` returns the first."""
    kind, request = normalise(spec)
    tenant_id = actor.tenant_id
    earlier = await _by_request_id(session, tenant_id, spec.request_id)
    if earlier is not None:
        return _same_or_conflict(earlier, request)
    now = utcnow()
    replay = WebhookReplay(
        id=new_id("rpl"),
        tenant_id=tenant_id,
        request_id=spec.request_id,
        kind=kind.value,
        request=request,
        delivery_ids=[],
        created_count=0,
        skipped=[],
        actor_key_id=actor.key_id,
        correlation_id=actor.correlation_id or current_correlation_id(),
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(replay)
    except IntegrityError:
        winner = await _by_request_id(session, tenant_id, spec.request_id)
        if winner is None:
            raise
        return _same_or_conflict(winner, request)
    if kind is Kind.DELIVERY:
        outcome = await _replay_delivery(session, tenant_id, request["deliveryId"], now)
    elif kind is Kind.EVENT:
        outcome = await _replay_event(session, actor, request["eventId"], request.get("endpointIds"), now)
    else:
        assert spec.since is not None and spec.until is not None
        statuses = [DeliveryStatus(s) for s in request["statuses"]]
        outcome = await _replay_range(
            session, tenant_id, request["endpointId"], spec.since, spec.until, statuses, now
        )
    replay.delivery_ids = outcome.delivery_ids
    replay.created_count = outcome.created_count
    replay.skipped = outcome.skipped
    target = request.get("deliveryId") or request.get("eventId") or request.get("endpointId")
    audit.record(
        session,
        actor,
        "replay.created",
        "replay",
        replay.id,
        {
            "requestId": {"old": None, "new": spec.request_id},
            "kind": {"old": None, "new": kind.value},
            "target": {"old": None, "new": target},
            "deliveries": {"old": None, "new": len(outcome.delivery_ids)},
            "createdDeliveries": {"old": None, "new": outcome.created_count},
            "skipped": {"old": None, "new": len(outcome.skipped)},
        },
    )
    await session.flush()
    if outcome.delivery_ids and session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
    return ReplayResult(replay, True)


# -- reads -----------------------------------------------------------------------------------------


async def get_replay(session: AsyncSession, tenant_id: str, replay_id: str) -> WebhookReplay:
    replay = await session.scalar(
        sa.select(WebhookReplay).where(WebhookReplay.tenant_id == tenant_id, WebhookReplay.id == replay_id)
    )
    if replay is None:
        raise NotFound(f"replay {replay_id} not found")
    return replay


async def list_replays(session: AsyncSession, tenant_id: str, page: PageRequest) -> Page[WebhookReplay]:
    """Replays of the tenant, newest first."""
    stmt = sa.select(WebhookReplay).where(WebhookReplay.tenant_id == tenant_id)
    rows = (await session.scalars(paginate_query(stmt, WebhookReplay.id, page))).all()
    return make_page(rows, page, lambda r: r.id)
