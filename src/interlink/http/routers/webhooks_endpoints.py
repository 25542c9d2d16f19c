"""``/v1/event-types`` and ``/v1/endpoints``: the event type registry, endpoints and their secrets."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope, DeliveryChannel, DeliveryStatus
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut, UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.webhooks import health
from interlink.webhooks import metrics as delivery_metrics
from interlink.webhooks.delivery import Outcome, deliver_now
from interlink.webhooks.endpoints import (
    Endpoints,
    EndpointSpec,
    EventTypes,
    EventTypeSpec,
    RevealedEndpointSecret,
)
from interlink.webhooks.metrics_schemas import WebhookDeliveryMetrics
from interlink.webhooks.schemas import (
    EndpointCreate,
    EndpointDisable,
    EndpointSecret,
    EndpointTest,
    EndpointTestResult,
    EndpointUpdate,
    EventTypeCreate,
    EventTypeInfo,
    EventTypeUpdate,
    TransformationTest,
    TransformationTestResult,
    WebhookEndpointInfo,
    endpoint_info,
    event_type_info,
)

event_types_router = APIRouter(prefix="/v1/event-types", tags=["event types"], responses=STANDARD_ERRORS)
endpoints_router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"], responses=STANDARD_ERRORS)
log = structlog.get_logger(__name__)

EventTypeId = Path(max_length=200, description="An event type id (`etp_...`) or its name.")
EndpointId = Path(max_length=64, description="An endpoint id (`ep_...`).")
_EVENT_TYPES = EventTypes()


def _endpoints(request: Request) -> Endpoints:
    runtime = get_runtime(request)
    return Endpoints(runtime.keyring, runtime.allowed_target_networks)


# -- event types -----------------------------------------------------------------------------------


@event_types_router.post("", status_code=201, response_model=EventTypeInfo, responses=error_responses(409))
async def create_event_type(
    body: EventTypeCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE))
) -> EventTypeInfo:
    """Register an event type (name unique in the tenant); ``schema`` is checked as a JSON Schema."""
    spec = EventTypeSpec(body.name, body.description, body.json_schema, body.deprecated)
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _EVENT_TYPES.create(session, actor, spec)
    return event_type_info(row)


@event_types_router.get("", response_model=PageOut[EventTypeInfo])
async def list_event_types(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    deprecated: bool | None = Query(None, description="Only deprecated (true) or current (false) types."),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[EventTypeInfo]:
    """Event types of the tenant, newest first."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await _EVENT_TYPES.list_event_types(
            session, actor, PageRequest(limit, after), deprecated=deprecated
        )
    return PageOut[EventTypeInfo](
        data=[event_type_info(r) for r in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@event_types_router.get("/{event_type_id}", response_model=EventTypeInfo)
async def get_event_type(
    request: Request,
    event_type_id: str = EventTypeId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> EventTypeInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await _EVENT_TYPES.get(session, actor, event_type_id)
    return event_type_info(row)


@event_types_router.patch("/{event_type_id}", response_model=EventTypeInfo)
async def update_event_type(
    body: EventTypeUpdate,
    request: Request,
    event_type_id: str = EventTypeId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> EventTypeInfo:
    """Change the description, schema (``null`` removes it) or deprecation flag."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _EVENT_TYPES.update(session, actor, event_type_id, changes)
    return event_type_info(row)


@event_types_router.post("/{event_type_id}/deprecate", response_model=EventTypeInfo)
async def deprecate_event_type(
    request: Request,
    event_type_id: str = EventTypeId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> EventTypeInfo:
    """Mark the type deprecated (idempotent). Subscriptions and ingest keep working."""
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _EVENT_TYPES.deprecate(session, actor, event_type_id)
    return event_type_info(row)


# -- endpoints -------------------------------------------------------------------------------------


def _changes(body: EndpointUpdate) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "batch_config" and value is not None:
            value = value.model_dump(by_alias=True)
        out[name] = value
    return out


def _secret(revealed: RevealedEndpointSecret) -> EndpointSecret:
    return EndpointSecret(
        endpoint_id=revealed.endpoint_id,
        secret_id=revealed.secret_id,
        key=revealed.value,
        created_at=revealed.created_at,
        previous_expires_at=revealed.previous_expires_at,
    )


@endpoints_router.post("", status_code=201, response_model=WebhookEndpointInfo)
async def create_endpoint(
    body: EndpointCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE))
) -> WebhookEndpointInfo:
    """Create an endpoint and its first signing secret (read it with ``GET .../secret``)."""
    spec = EndpointSpec(
        url=body.url,
        description=body.description,
        channel=body.channel,
        channel_config=body.channel_config,
        event_types=body.event_types,
        filter=body.filter,
        transformation=body.transformation,
        headers=body.headers,
        timeout_seconds=body.timeout_seconds,
        retry_schedule=body.retry_schedule,
        rate_limit_per_second=body.rate_limit_per_second,
        max_in_flight=body.max_in_flight,
        batch_config=body.batch_config.model_dump(by_alias=True) if body.batch_config else None,
        retention=body.retention,
        metadata=body.metadata,
    )
    service = _endpoints(request)
    if spec.channel is not DeliveryChannel.EMAIL:
        await service.vet_url(spec.url)  # DNS before the write transaction opens
    async with get_runtime(request).db.unit_of_work() as session:
        row = await service.create(session, actor, spec)
    return endpoint_info(row)


@endpoints_router.get("", response_model=PageOut[WebhookEndpointInfo])
async def list_endpoints(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    enabled: bool | None = Query(None, description="Only enabled (true) or disabled (false) endpoints."),
    channel: DeliveryChannel | None = Query(None),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[WebhookEndpointInfo]:
    """Endpoints of the tenant, newest first (deleted ones are not listed)."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await _endpoints(request).list_endpoints(
            session, actor, PageRequest(limit, after), enabled=enabled, channel=channel
        )
    return PageOut[WebhookEndpointInfo](
        data=[endpoint_info(r) for r in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@endpoints_router.get("/{endpoint_id}", response_model=WebhookEndpointInfo)
async def get_endpoint(
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> WebhookEndpointInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await _endpoints(request).get(session, actor, endpoint_id)
    return endpoint_info(row)


@endpoints_router.patch("/{endpoint_id}", response_model=WebhookEndpointInfo)
async def update_endpoint(
    body: EndpointUpdate,
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookEndpointInfo:
    """Change what is sent; ``null`` clears optional fields. A new url passes the SSRF guard again."""
    service = _endpoints(request)
    changes = _changes(body)
    if changes.get("url") and changes.get("channel") is not DeliveryChannel.EMAIL:
        await service.vet_url(changes["url"])  # DNS before the write transaction opens
    async with get_runtime(request).db.unit_of_work() as session:
        row = await service.update(session, actor, endpoint_id, changes)
    return endpoint_info(row)


@endpoints_router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_endpoint(
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> Response:
    """Delete the endpoint: it stops receiving, its secrets stop signing, and it is no longer shown."""
    async with get_runtime(request).db.unit_of_work() as session:
        await _endpoints(request).delete(session, actor, endpoint_id)
    return Response(status_code=204)


@endpoints_router.post("/{endpoint_id}/disable", response_model=WebhookEndpointInfo)
async def disable_endpoint(
    request: Request,
    body: EndpointDisable | None = None,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookEndpointInfo:
    """Stop deliveries to the endpoint, recording ``reason``."""
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _endpoints(request).disable(session, actor, endpoint_id, body.reason if body else None)
    return endpoint_info(row)


@endpoints_router.post("/{endpoint_id}/enable", response_model=WebhookEndpointInfo)
async def enable_endpoint(
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookEndpointInfo:
    """Resume deliveries; clears the disabled reason and the failure counters."""
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _endpoints(request).enable(session, actor, endpoint_id)
    return endpoint_info(row)


@endpoints_router.get("/{endpoint_id}/secret", response_model=EndpointSecret)
async def get_endpoint_secret(
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> EndpointSecret:
    """The current signing secret (needs ``webhooks:write``; every read is audited)."""
    async with get_runtime(request).db.unit_of_work() as session:
        revealed = await _endpoints(request).reveal_secret(session, actor, endpoint_id)
    return _secret(revealed)


@endpoints_router.post("/{endpoint_id}/secret/rotate", status_code=201, response_model=EndpointSecret)
async def rotate_endpoint_secret(
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> EndpointSecret:
    """Create a new signing secret; the previous one keeps signing for 24 hours alongside it."""
    async with get_runtime(request).db.unit_of_work() as session:
        revealed = await _endpoints(request).rotate_secret(session, actor, endpoint_id)
    return _secret(revealed)


@endpoints_router.post("/{endpoint_id}/transformation/test", response_model=TransformationTestResult)
async def test_endpoint_transformation(
    body: TransformationTest,
    request: Request,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> TransformationTestResult:
    """Preview what a transformation (``template``, else the endpoint's) makes of a sample event."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        output = await _endpoints(request).test_transformation(
            session,
            actor,
            endpoint_id,
            payload=body.payload,
            event_type=body.event_type,
            metadata=body.metadata,
            template=body.template,
        )
    return TransformationTestResult(output=output)


def _test_result(event_id: str, delivery_id: str, outcome: Outcome | None) -> EndpointTestResult:
    if outcome is None:  # no attempt now (circuit open, or a worker holds it): the queue sends it
        return EndpointTestResult(
            event_id=event_id,
            delivery_id=delivery_id,
            status=DeliveryStatus.PENDING,
            succeeded=False,
            response_status=None,
            error_class=None,
            error_message=None,
            duration_ms=None,
            next_attempt_at=None,
        )
    attempt = outcome.attempt
    return EndpointTestResult(
        event_id=event_id,
        delivery_id=delivery_id,
        status=outcome.status,
        succeeded=outcome.succeeded,
        response_status=attempt.get("response_status"),
        error_class=attempt.get("error_class"),
        error_message=attempt.get("error_message"),
        duration_ms=attempt.get("duration_ms"),
        next_attempt_at=outcome.next_attempt_at if outcome.status is DeliveryStatus.RETRYING else None,
    )


@endpoints_router.post(
    "/{endpoint_id}/test", response_model=EndpointTestResult, responses=error_responses(409)
)
async def test_endpoint(
    request: Request,
    body: EndpointTest | None = None,
    endpoint_id: str = EndpointId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> EndpointTestResult:
    """Send a ``webhook.test`` event to this endpoint only (whatever its subscriptions and filter)
    through the normal delivery path, making the first attempt before answering. 409 while the
    endpoint is disabled."""
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        result = await health.send_test(session, actor, endpoint_id, body.payload if body else None)
    event_id, delivery_id = result.event.id, result.deliveries[0].id
    try:
        outcomes = await deliver_now(
            runtime.db, runtime.keyring, runtime.transport, [delivery_id], smtp=runtime.smtp
        )
    except Exception as exc:  # the delivery is stored: the queue sends it
        log.warning("test_delivery_failed", endpoint_id=endpoint_id, error=str(exc))
        outcomes = []
    return _test_result(event_id, delivery_id, outcomes[0] if outcomes else None)


@endpoints_router.get("/{endpoint_id}/metrics", response_model=WebhookDeliveryMetrics)
async def get_endpoint_metrics(
    request: Request,
    endpoint_id: str = EndpointId,
    since: UtcDatetime | None = Query(None, description="Window start (default: 24 hours before until)."),
    until: UtcDatetime | None = Query(None, description="Window end, exclusive (default: now)."),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> WebhookDeliveryMetrics:
    """Delivery metrics of the endpoint over ``[since, until)`` (at most 90 days): outcomes of the
    deliveries created in the window, latency and errors of the attempts made in it, the queue now."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        return await delivery_metrics.endpoint_metrics(session, actor.tenant_id, endpoint_id, since, until)


router = APIRouter()
router.include_router(event_types_router)
router.include_router(endpoints_router)
