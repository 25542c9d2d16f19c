"""SDK resources for ``/v1/events`` and ``/v1/deliveries`` (blocking and asyncio).

``client.events`` and ``client.deliveries`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are the service's own models
(:class:`EventInfo`, :class:`WebhookDeliveryInfo`, :class:`WebhookAttemptInfo`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from interlink.client._base import (
    AsyncResource,
    Call,
    SyncResource,
    apaginate,
    body,
    call,
    item_path,
    page_call,
    paginate,
    parse,
    query,
)
from interlink.client.models import Page
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.delivery_schemas import (
    DeliveryBrief,
    EventBatchResult,
    EventCreate,
    EventInfo,
    PriorityName,
    WebhookAttemptInfo,
    WebhookDeliveryInfo,
)

__all__ = [
    "AsyncDeliveries",
    "AsyncEvents",
    "Deliveries",
    "DeliveryBrief",
    "EventCreate",
    "EventInfo",
    "EventItem",
    "Events",
    "PriorityName",
    "WebhookAttemptInfo",
    "WebhookDeliveryInfo",
]

EVENTS = "/v1/events"
DELIVERIES = "/v1/deliveries"


EventItem = EventCreate | Mapping[str, Any]
"""One event of a batch: an :class:`EventCreate`, or a mapping with its fields (snake_case or camelCase)."""

_SNAKE_FIELDS = {"endpoint_ids": "endpointIds", "idempotency_key": "idempotencyKey"}


def _send_call(
    event_type: str,
    payload: Mapping[str, Any],
    endpoint_ids: Sequence[str] | None,
    idempotency_key: str | None,
    priority: PriorityName | str | None,
    immediate: bool,
    metadata: Mapping[str, Any] | None,
    tenant_id: str | None,
) -> Call[EventInfo]:
    """Send one event; safe to re-send when it carries an idempotency key."""
    event = body(
        {
            "type": event_type,
            "payload": dict(payload),
            "endpointIds": list(endpoint_ids) if endpoint_ids is not None else None,
            "idempotencyKey": idempotency_key,
            "priority": priority,
            "immediate": immediate or None,
            "metadata": dict(metadata) if metadata is not None else None,
        },
        drop_none=True,
    )
    return call(
        EventInfo, "POST", EVENTS, json=event, tenant_id=tenant_id, retry_safe=idempotency_key is not None
    )


def _batch_call(events: Sequence[EventItem], tenant_id: str | None) -> Call[list[EventInfo]]:
    """Send a batch; safe to re-send when every event carries an idempotency key."""
    items: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, EventCreate):
            items.append(event.model_dump(mode="json", by_alias=True, exclude_unset=True))
        else:
            items.append(body({_SNAKE_FIELDS.get(k, k): v for k, v in event.items()}, drop_none=True))
    keyed = all(item.get("idempotencyKey") for item in items)
    return Call(
        "POST",
        f"{EVENTS}/batch",
        _batch_events,
        json={"events": items},
        tenant_id=tenant_id,
        retry_safe=keyed,
    )


def _batch_events(response: httpx.Response) -> list[EventInfo]:
    return parse(EventBatchResult, response).data


def _deliveries_call(
    limit: int,
    after: str | None,
    endpoint_id: str | None,
    event_id: str | None,
    status: DeliveryStatus | str | None,
    since: datetime | None,
    until: datetime | None,
    event_type: str | None,
    tenant_id: str | None,
) -> Call[Page[WebhookDeliveryInfo]]:
    params = query(
        {
            "limit": limit,
            "after": after,
            "endpointId": endpoint_id,
            "eventId": event_id,
            "status": status,
            "since": since,
            "until": until,
            "eventType": event_type,
        }
    )
    return page_call(WebhookDeliveryInfo, DELIVERIES, params, tenant_id)


# -- blocking --------------------------------------------------------------------------------------


class Events(SyncResource):
    """``/v1/events``: send events to every matching endpoint, and read them back."""

    def send(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        endpoint_ids: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        priority: PriorityName | str | None = None,
        immediate: bool = False,
        metadata: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> EventInfo:
        """Accept an event and fan it out; ``result.deliveries`` lists what was queued.

        With an ``idempotency_key`` seen in the last 24 hours the first event comes back with
        ``created=False`` and nothing is sent again. ``immediate`` makes the first attempt of each
        delivery before answering.
        """
        return self._send(_send_call(
            event_type, payload, endpoint_ids, idempotency_key, priority, immediate, metadata, tenant_id
        ))  # fmt: skip

    def send_batch(self, events: Sequence[EventItem], *, tenant_id: str | None = None) -> list[EventInfo]:
        """Accept up to 100 events, all or none (one bad event refuses the batch, naming ``events.<i>``)."""
        return self._send(_batch_call(events, tenant_id))

    def get(self, event_id: str, *, tenant_id: str | None = None) -> EventInfo:
        """One event with its deliveries."""
        return self._send(call(EventInfo, "GET", item_path(EVENTS, event_id), tenant_id=tenant_id))

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventInfo]:
        params = query({"limit": limit, "after": after, "type": event_type})
        return self._send(page_call(EventInfo, EVENTS, params, tenant_id))

    def iter_all(
        self, *, event_type: str | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[EventInfo]:
        """Every event (of ``event_type`` when given), newest first, fetching pages as needed."""
        return paginate(
            lambda after: self.list(limit=page_size, after=after, event_type=event_type, tenant_id=tenant_id)
        )


class Deliveries(SyncResource):
    """``/v1/deliveries``: the delivery log (one event to one endpoint), attempts, manual retry."""

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[WebhookDeliveryInfo]:
        """Deliveries, newest first; ``since``/``until`` bound their creation time; ``event_type``
        keeps deliveries of events of that type."""
        return self._send(_deliveries_call(
            limit, after, endpoint_id, event_id, status, since, until, event_type, tenant_id
        ))  # fmt: skip

    def iter_all(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[WebhookDeliveryInfo]:
        """Every matching delivery (same filters as :meth:`list`), fetching pages as needed."""
        return paginate(lambda after: self.list(
            limit=page_size, after=after, endpoint_id=endpoint_id, event_id=event_id, status=status,
            since=since, until=until, event_type=event_type, tenant_id=tenant_id,
        ))  # fmt: skip

    def get(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        return self._send(
            call(WebhookDeliveryInfo, "GET", item_path(DELIVERIES, delivery_id), tenant_id=tenant_id)
        )

    def attempts(
        self, delivery_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookAttemptInfo]:
        """Attempts of one delivery, newest first (request headers with credentials redacted)."""
        path, params = (
            item_path(DELIVERIES, delivery_id, "/attempts"),
            query({"limit": limit, "after": after}),
        )
        return self._send(page_call(WebhookAttemptInfo, path, params, tenant_id))

    def iter_attempts(
        self, delivery_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[WebhookAttemptInfo]:
        """Every attempt of one delivery, newest first."""
        return paginate(
            lambda after: self.attempts(delivery_id, limit=page_size, after=after, tenant_id=tenant_id)
        )

    def retry(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        """Requeue now (audited); ConflictError while it is being sent or its endpoint is disabled."""
        path = item_path(DELIVERIES, delivery_id, "/retry")
        return self._send(call(WebhookDeliveryInfo, "POST", path, tenant_id=tenant_id))


# -- asyncio ---------------------------------------------------------------------------------------


class AsyncEvents(AsyncResource):
    """``/v1/events`` with ``await`` (same surface as :class:`Events`)."""

    async def send(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        endpoint_ids: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        priority: PriorityName | str | None = None,
        immediate: bool = False,
        metadata: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> EventInfo:
        """As :meth:`Events.send`, awaited."""
        return await self._send(_send_call(
            event_type, payload, endpoint_ids, idempotency_key, priority, immediate, metadata, tenant_id
        ))  # fmt: skip

    async def send_batch(
        self, events: Sequence[EventItem], *, tenant_id: str | None = None
    ) -> list[EventInfo]:
        """Accept up to 100 events, all or none (one bad event refuses the batch, naming ``events.<i>``)."""
        return await self._send(_batch_call(events, tenant_id))

    async def get(self, event_id: str, *, tenant_id: str | None = None) -> EventInfo:
        """One event with its deliveries."""
        return await self._send(call(EventInfo, "GET", item_path(EVENTS, event_id), tenant_id=tenant_id))

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventInfo]:
        params = query({"limit": limit, "after": after, "type": event_type})
        return await self._send(page_call(EventInfo, EVENTS, params, tenant_id))

    def iter_all(
        self, *, event_type: str | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[EventInfo]:
        """Every event (of ``event_type`` when given), newest first, fetching pages as needed."""
        return apaginate(
            lambda after: self.list(limit=page_size, after=after, event_type=event_type, tenant_id=tenant_id)
        )


class AsyncDeliveries(AsyncResource):
    """``/v1/deliveries`` with ``await`` (same surface as :class:`Deliveries`)."""

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[WebhookDeliveryInfo]:
        """As :meth:`Deliveries.list`, awaited."""
        return await self._send(_deliveries_call(
            limit, after, endpoint_id, event_id, status, since, until, event_type, tenant_id
        ))  # fmt: skip

    def iter_all(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> AsyncIterator[WebhookDeliveryInfo]:
        """Every matching delivery (same filters as :meth:`list`), fetching pages as needed."""
        return apaginate(lambda after: self.list(
            limit=page_size, after=after, endpoint_id=endpoint_id, event_id=event_id, status=status,
            since=since, until=until, event_type=event_type, tenant_id=tenant_id,
        ))  # fmt: skip

    async def get(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        return await self._send(
            call(WebhookDeliveryInfo, "GET", item_path(DELIVERIES, delivery_id), tenant_id=tenant_id)
        )

    async def attempts(
        self, delivery_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookAttemptInfo]:
        """Attempts of one delivery, newest first (request headers with credentials redacted)."""
        path, params = (
            item_path(DELIVERIES, delivery_id, "/attempts"),
            query({"limit": limit, "after": after}),
        )
        return await self._send(page_call(WebhookAttemptInfo, path, params, tenant_id))

    def iter_attempts(
        self, delivery_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookAttemptInfo]:
        """Every attempt of one delivery, newest first."""
        return apaginate(
            lambda after: self.attempts(delivery_id, limit=page_size, after=after, tenant_id=tenant_id)
        )

    async def retry(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        """Requeue now (audited); ConflictError while it is being sent or its endpoint is disabled."""
        path = item_path(DELIVERIES, delivery_id, "/retry")
        return await self._send(call(WebhookDeliveryInfo, "POST", path, tenant_id=tenant_id))
