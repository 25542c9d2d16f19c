"""SDK resources for ``/v1/events`` and ``/v1/deliveries`` (blocking and asyncio).

``client.events`` and ``client.deliveries`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are the service's own models
(:class:`EventInfo`, :class:`WebhookDeliveryInfo`, :class:`WebhookAttemptInfo`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from interlink.client._base import AsyncRequester, SyncRequester, body, parse, parse_page, query, segment
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


_Sync = SyncRequester
_Async = AsyncRequester


EventItem = EventCreate | Mapping[str, Any]
"""One event of a batch: an :class:`EventCreate`, or a mapping with its fields (snake_case or camelCase)."""

_SNAKE_FIELDS = {"endpoint_ids": "endpointIds", "idempotency_key": "idempotencyKey"}


def _event_body(
    event_type: str,
    payload: Mapping[str, Any],
    endpoint_ids: Sequence[str] | None,
    idempotency_key: str | None,
    priority: PriorityName | str | None,
    immediate: bool,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return body(
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


def _batch_body(events: Sequence[EventItem]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, EventCreate):
            items.append(event.model_dump(mode="json", by_alias=True, exclude_unset=True))
        else:
            items.append(body({_SNAKE_FIELDS.get(k, k): v for k, v in event.items()}, drop_none=True))
    return {"events": items}


def _all_keyed(batch: dict[str, Any]) -> bool:
    """True when every event of a batch body carries an idempotency key (so resending is safe)."""
    return all(item.get("idempotencyKey") for item in batch["events"])


def _delivery_query(
    limit: int,
    after: str | None,
    endpoint_id: str | None,
    event_id: str | None,
    status: DeliveryStatus | str | None,
    since: datetime | None,
    until: datetime | None,
    event_type: str | None = None,
) -> dict[str, str | int]:
    return query(
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


# -- blocking --------------------------------------------------------------------------------------


class Events:
    """``/v1/events``: send events to every matching endpoint, and read them back."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

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
        payload_body = _event_body(
            event_type, payload, endpoint_ids, idempotency_key, priority, immediate, metadata
        )
        response = self._c._request(
            "POST",
            "/v1/events",
            json=payload_body,
            tenant_id=tenant_id,
            retry_safe=idempotency_key is not None,
        )
        return parse(EventInfo, response)

    def send_batch(self, events: Sequence[EventItem], *, tenant_id: str | None = None) -> list[EventInfo]:
        """Accept up to 100 events, all or none (one bad event refuses the batch, naming ``events.<i>``)."""
        batch = _batch_body(events)
        response = self._c._request(
            "POST", "/v1/events/batch", json=batch, tenant_id=tenant_id, retry_safe=_all_keyed(batch)
        )
        return parse(EventBatchResult, response).data

    def get(self, event_id: str, *, tenant_id: str | None = None) -> EventInfo:
        """One event with its deliveries."""
        response = self._c._request("GET", f"/v1/events/{segment(event_id)}", tenant_id=tenant_id)
        return parse(EventInfo, response)

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventInfo]:
        params = query({"limit": limit, "after": after, "type": event_type})
        response = self._c._request("GET", "/v1/events", params=params, tenant_id=tenant_id)
        return parse_page(EventInfo, response)

    def iter_all(
        self, *, event_type: str | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[EventInfo]:
        """Every event (of ``event_type`` when given), newest first, fetching pages as needed."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, event_type=event_type, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor


class Deliveries:
    """``/v1/deliveries``: the delivery log (one event to one endpoint), attempts, manual retry."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

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
        params = _delivery_query(limit, after, endpoint_id, event_id, status, since, until, event_type)
        response = self._c._request("GET", "/v1/deliveries", params=params, tenant_id=tenant_id)
        return parse_page(WebhookDeliveryInfo, response)

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
        after: str | None = None
        while True:
            page = self.list(
                limit=page_size,
                after=after,
                endpoint_id=endpoint_id,
                event_id=event_id,
                status=status,
                since=since,
                until=until,
                event_type=event_type,
                tenant_id=tenant_id,
            )
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        response = self._c._request("GET", f"/v1/deliveries/{segment(delivery_id)}", tenant_id=tenant_id)
        return parse(WebhookDeliveryInfo, response)

    def attempts(
        self, delivery_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookAttemptInfo]:
        """Attempts of one delivery, newest first (request headers with credentials redacted)."""
        response = self._c._request(
            "GET",
            f"/v1/deliveries/{segment(delivery_id)}/attempts",
            params=query({"limit": limit, "after": after}),
            tenant_id=tenant_id,
        )
        return parse_page(WebhookAttemptInfo, response)

    def iter_attempts(
        self, delivery_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[WebhookAttemptInfo]:
        """Every attempt of one delivery, newest first."""
        after: str | None = None
        while True:
            page = self.attempts(delivery_id, limit=page_size, after=after, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def retry(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        """Requeue now (audited); ConflictError while it is being sent or its endpoint is disabled."""
        response = self._c._request(
            "POST", f"/v1/deliveries/{segment(delivery_id)}/retry", tenant_id=tenant_id
        )
        return parse(WebhookDeliveryInfo, response)


# -- asyncio ---------------------------------------------------------------------------------------


class AsyncEvents:
    """``/v1/events`` with ``await`` (same surface as :class:`Events`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

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
        payload_body = _event_body(
            event_type, payload, endpoint_ids, idempotency_key, priority, immediate, metadata
        )
        response = await self._c._request(
            "POST",
            "/v1/events",
            json=payload_body,
            tenant_id=tenant_id,
            retry_safe=idempotency_key is not None,
        )
        return parse(EventInfo, response)

    async def send_batch(
        self, events: Sequence[EventItem], *, tenant_id: str | None = None
    ) -> list[EventInfo]:
        batch = _batch_body(events)
        response = await self._c._request(
            "POST", "/v1/events/batch", json=batch, tenant_id=tenant_id, retry_safe=_all_keyed(batch)
        )
        return parse(EventBatchResult, response).data

    async def get(self, event_id: str, *, tenant_id: str | None = None) -> EventInfo:
        response = await self._c._request("GET", f"/v1/events/{segment(event_id)}", tenant_id=tenant_id)
        return parse(EventInfo, response)

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventInfo]:
        params = query({"limit": limit, "after": after, "type": event_type})
        response = await self._c._request("GET", "/v1/events", params=params, tenant_id=tenant_id)
        return parse_page(EventInfo, response)

    async def iter_all(
        self, *, event_type: str | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[EventInfo]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, event_type=event_type, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor


class AsyncDeliveries:
    """``/v1/deliveries`` with ``await`` (same surface as :class:`Deliveries`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

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
        params = _delivery_query(limit, after, endpoint_id, event_id, status, since, until, event_type)
        response = await self._c._request("GET", "/v1/deliveries", params=params, tenant_id=tenant_id)
        return parse_page(WebhookDeliveryInfo, response)

    async def iter_all(
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
        after: str | None = None
        while True:
            page = await self.list(
                limit=page_size,
                after=after,
                endpoint_id=endpoint_id,
                event_id=event_id,
                status=status,
                since=since,
                until=until,
                event_type=event_type,
                tenant_id=tenant_id,
            )
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        response = await self._c._request(
            "GET", f"/v1/deliveries/{segment(delivery_id)}", tenant_id=tenant_id
        )
        return parse(WebhookDeliveryInfo, response)

    async def attempts(
        self, delivery_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookAttemptInfo]:
        response = await self._c._request(
            "GET",
            f"/v1/deliveries/{segment(delivery_id)}/attempts",
            params=query({"limit": limit, "after": after}),
            tenant_id=tenant_id,
        )
        return parse_page(WebhookAttemptInfo, response)

    async def iter_attempts(
        self, delivery_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookAttemptInfo]:
        after: str | None = None
        while True:
            page = await self.attempts(delivery_id, limit=page_size, after=after, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def retry(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryInfo:
        response = await self._c._request(
            "POST", f"/v1/deliveries/{segment(delivery_id)}/retry", tenant_id=tenant_id
        )
        return parse(WebhookDeliveryInfo, response)
