"""``/v1/events`` (ingest and read events) and ``/v1/deliveries`` (delivery log, attempts, retry)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope, DeliveryStatus
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut, UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.runtime import Runtime
from interlink.webhooks import deliveries as delivery_service
from interlink.webhooks import ingest
from interlink.webhooks.delivery import deliver_now
from interlink.webhooks.delivery_schemas import (
    DeliveryBrief,
    EventBatchCreate,
    EventBatchResult,
    EventCreate,
    EventInfo,
    WebhookAttemptInfo,
    WebhookDeliveryInfo,
)
from interlink.webhooks.models import WebhookDelivery, WebhookEvent

log = structlog.get_logger(__name__)

router = APIRouter(tags=["events"], responses=STANDARD_ERRORS)

EventId = Path(max_length=64, description="An event id (`evt_...`).")
DeliveryId = Path(max_length=64, description="A delivery id (`del_...`).")


def _spec(body: EventCreate, prefix: str = "") -> ingest.EventSpec:
    return ingest.EventSpec(
        immediate=body.immediate,
        type=body.type,
        payload=body.payload,
        endpoint_ids=body.endpoint_ids,
        idempotency_key=body.idempotency_key,
        priority=ingest.Priority[body.priority],
        metadata=body.metadata,
        field_prefix=prefix,
    )


def event_info(
    event: WebhookEvent, deliveries: list[WebhookDelivery] | None = None, *, created: bool | None = None
) -> EventInfo:
    return EventInfo(
        id=event.id,
        tenant_id=event.tenant_id,
        type=event.event_type,
        payload=event.payload,
        payload_purged_at=event.payload_purged_at,
        metadata=event.meta or {},
        idempotency_key=event.idempotency_key,
        priority=ingest.priority_name(event.priority),
        source=event.source,
        correlation_id=event.correlation_id,
        created_at=event.created_at,
        deliveries=None
        if deliveries is None
        else [DeliveryBrief(id=d.id, endpoint_id=d.endpoint_id, status=d.status) for d in deliveries],
        created=created,
    )


def delivery_info(row: WebhookDelivery) -> WebhookDeliveryInfo:
    return WebhookDeliveryInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        status=row.status,
        priority=ingest.priority_name(row.priority),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at
        if row.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
        else None,
        last_status_code=row.last_status_code,
        last_error_class=row.last_error_class,
        delivered_at=row.delivered_at,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _accept(
    runtime: Runtime, actor: Actor, specs: list[ingest.EventSpec], immediate: list[bool]
) -> list[EventInfo]:
    async with runtime.db.unit_of_work() as session:
        results = await ingest.ingest_batch(session, actor, specs)
    now_ids = [
        d.id
        for r, wanted in zip(results, immediate, strict=True)
        if wanted and r.created
        for d in r.deliveries
    ]
    if now_ids:
        try:
            outcomes = {
                o.work.delivery_id: o.status
                for o in await deliver_now(
                    runtime.db, runtime.keyring, runtime.transport, now_ids, smtp=runtime.smtp
                )
            }
        except Exception as exc:  # the deliveries are stored: the queue sends them
            log.warning("immediate_delivery_failed", error=str(exc))
            outcomes = {}
        for r in results:
            for d in r.deliveries:
                if d.id in outcomes:
                    d.status = outcomes[d.id]
    if any(r.created and r.deliveries for r in results) and runtime.delivery_worker is not None:
        runtime.delivery_worker.wake()
    return [event_info(r.event, r.deliveries, created=r.created) for r in results]


@router.post(
    "/v1/events",
    status_code=201,
    response_model=EventInfo,
    responses={200: {"model": EventInfo, "description": "An earlier event with this idempotencyKey"}},
)
async def create_event(
    body: EventCreate,
    request: Request,
    response: Response,
    actor: Actor = Depends(require(ApiKeyScope.EVENTS_WRITE)),
) -> EventInfo:
    """Accept an event and fan it out to every matching endpoint, in one transaction."""
    [info] = await _accept(get_runtime(request), actor, [_spec(body)], [body.immediate])
    if not info.created:
        response.status_code = 200
    return info


@router.post("/v1/events/batch", status_code=201, response_model=EventBatchResult)
async def create_events(
    body: EventBatchCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.EVENTS_WRITE))
) -> EventBatchResult:
    """Accept up to 100 events, all or none. Each item says whether it was new (``created``)."""
    specs = [_spec(e, f"events.{i}.") for i, e in enumerate(body.events)]
    data = await _accept(get_runtime(request), actor, specs, [e.immediate for e in body.events])
    return EventBatchResult(data=data)


@router.get("/v1/events", response_model=PageOut[EventInfo])
async def list_events(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    type: str | None = Query(None, max_length=200, description="Only events of this type."),
    actor: Actor = Depends(require(ApiKeyScope.EVENTS_READ)),
) -> PageOut[EventInfo]:
    """Events of the tenant, newest first."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await ingest.list_events(session, actor.tenant_id, PageRequest(limit, after), event_type=type)
    return PageOut[EventInfo](
        data=[event_info(e) for e in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/v1/events/{event_id}", response_model=EventInfo)
async def get_event(
    request: Request, event_id: str = EventId, actor: Actor = Depends(require(ApiKeyScope.EVENTS_READ))
) -> EventInfo:
    """One event with its deliveries."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        event, deliveries = await ingest.get_event(session, actor.tenant_id, event_id)
    return event_info(event, deliveries)


@router.get("/v1/deliveries", response_model=PageOut[WebhookDeliveryInfo], tags=["deliveries"])
async def list_deliveries(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    endpoint_id: str | None = Query(None, alias="endpointId", max_length=64),
    event_id: str | None = Query(None, alias="eventId", max_length=64),
    status: DeliveryStatus | None = Query(None),
    since: UtcDatetime | None = Query(None, description="Created at or after."),
    until: UtcDatetime | None = Query(None, description="Created before."),
    event_type: str | None = Query(
        None, alias="eventType", max_length=200, description="Only deliveries of events of this type."
    ),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[WebhookDeliveryInfo]:
    """Deliveries of the tenant, newest first."""
    flt = delivery_service.DeliveryFilter(endpoint_id, event_id, status, since, until, event_type)
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await delivery_service.list_deliveries(
            session, actor.tenant_id, flt, PageRequest(limit, after)
        )
    return PageOut[WebhookDeliveryInfo](
        data=[delivery_info(d) for d in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/v1/deliveries/{delivery_id}", response_model=WebhookDeliveryInfo, tags=["deliveries"])
async def get_delivery(
    request: Request,
    delivery_id: str = DeliveryId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> WebhookDeliveryInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await delivery_service.get_delivery(session, actor.tenant_id, delivery_id)
    return delivery_info(row)


@router.get(
    "/v1/deliveries/{delivery_id}/attempts", response_model=PageOut[WebhookAttemptInfo], tags=["deliveries"]
)
async def list_attempts(
    request: Request,
    delivery_id: str = DeliveryId,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[WebhookAttemptInfo]:
    """Attempts of one delivery, newest first."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await delivery_service.list_attempts(
            session, actor.tenant_id, delivery_id, PageRequest(limit, after)
        )
    return PageOut[WebhookAttemptInfo](
        data=[WebhookAttemptInfo.model_validate(a) for a in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    response_model=WebhookDeliveryInfo,
    tags=["deliveries"],
    responses=error_responses(409),
)
async def retry_delivery(
    request: Request,
    delivery_id: str = DeliveryId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookDeliveryInfo:
    """Requeue a delivery now (audited). 409 while it is being sent or its endpoint is disabled."""
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        row = await delivery_service.retry_delivery(session, actor, delivery_id)
    if runtime.delivery_worker is not None:
        runtime.delivery_worker.wake()
    return delivery_info(row)
