"""SDK resources for ``/v1/event-types`` and ``/v1/endpoints`` (blocking and asyncio).

``client.event_types`` and ``client.endpoints`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are the service's own models
(:class:`EventTypeInfo`, :class:`WebhookEndpointInfo`, :class:`EndpointSecret`, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from interlink.client._base import (
    NOT_GIVEN,
    AsyncRequester,
    NotGiven,
    SyncRequester,
    body,
    parse,
    parse_page,
    query,
    segment,
)
from interlink.client._metrics import WebhookDeliveryMetrics, window_params
from interlink.client.models import Page
from interlink.core.enums import DeliveryChannel, RetentionPolicy
from interlink.webhooks.schemas import (
    BatchConfig,
    EndpointSecret,
    EndpointTestResult,
    EventTypeInfo,
    TransformationTestResult,
    WebhookEndpointInfo,
)

__all__ = [
    "AsyncEndpoints",
    "AsyncEventTypes",
    "BatchConfig",
    "EndpointSecret",
    "EndpointTestResult",
    "Endpoints",
    "EventTypeInfo",
    "EventTypes",
    "TransformationTestResult",
    "WebhookEndpointInfo",
]


_Sync = SyncRequester
_Async = AsyncRequester


BatchArg = BatchConfig | Mapping[str, Any] | None


def _batch(value: BatchArg | NotGiven) -> Any:
    if isinstance(value, BatchConfig):
        return value.model_dump(by_alias=True)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _event_type_body(
    name: str, description: str | None, schema: dict[str, Any] | None, deprecated: bool
) -> dict[str, Any]:
    return body(
        {"name": name, "description": description, "schema": schema, "deprecated": deprecated or None},
        drop_none=True,
    )


def _endpoint_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """camelCase request fields from the SDK's snake_case keyword arguments."""
    names = {
        "url": "url",
        "description": "description",
        "channel": "channel",
        "channel_config": "channelConfig",
        "event_types": "eventTypes",
        "filter": "filter",
        "transformation": "transformation",
        "headers": "headers",
        "timeout_seconds": "timeoutSeconds",
        "retry_schedule": "retrySchedule",
        "rate_limit_per_second": "rateLimitPerSecond",
        "max_in_flight": "maxInFlight",
        "batch_config": "batchConfig",
        "retention": "retention",
        "metadata": "metadata",
    }
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "batch_config":
            value = _batch(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[names[key]] = value
    return out


def _transformation_body(
    payload: dict[str, Any], event_type: str, template: str | None, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    return body(
        {"payload": payload, "eventType": event_type, "template": template, "metadata": metadata},
        drop_none=True,
    )


# -- blocking --------------------------------------------------------------------------------------


class EventTypes:
    """``/v1/event-types``: the tenant's registry of event names and payload schemas."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def create(
        self,
        name: str,
        *,
        description: str | None = None,
        schema: dict[str, Any] | None = None,
        deprecated: bool = False,
        tenant_id: str | None = None,
    ) -> EventTypeInfo:
        payload = _event_type_body(name, description, schema, deprecated)
        return parse(
            EventTypeInfo, self._c._request("POST", "/v1/event-types", json=payload, tenant_id=tenant_id)
        )

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        deprecated: bool | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventTypeInfo]:
        params = query({"limit": limit, "after": after, "deprecated": _flag(deprecated)})
        response = self._c._request("GET", "/v1/event-types", params=params, tenant_id=tenant_id)
        return parse_page(EventTypeInfo, response)

    def iter_all(
        self, *, deprecated: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[EventTypeInfo]:
        """Every event type, newest first, fetching pages as needed."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, deprecated=deprecated, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        """One event type, by id (``etp_...``) or by name."""
        response = self._c._request("GET", f"/v1/event-types/{segment(id_or_name)}", tenant_id=tenant_id)
        return parse(EventTypeInfo, response)

    def update(
        self,
        id_or_name: str,
        *,
        description: str | NotGiven | None = NOT_GIVEN,
        schema: dict[str, Any] | NotGiven | None = NOT_GIVEN,
        deprecated: bool | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> EventTypeInfo:
        """Change what is given; ``schema=None`` removes the schema."""
        payload = body(
            {"description": description, "schema": schema, "deprecated": deprecated}, drop_none=False
        )
        response = self._c._request(
            "PATCH", f"/v1/event-types/{segment(id_or_name)}", json=payload, tenant_id=tenant_id
        )
        return parse(EventTypeInfo, response)

    def deprecate(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        response = self._c._request(
            "POST", f"/v1/event-types/{segment(id_or_name)}/deprecate", tenant_id=tenant_id
        )
        return parse(EventTypeInfo, response)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


class Endpoints:
    """``/v1/endpoints``: where events go, how they are filtered and shaped, and signing secrets."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def create(
        self,
        url: str | None = None,
        *,
        channel: DeliveryChannel | str = DeliveryChannel.WEBHOOK,
        channel_config: dict[str, Any] | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        filter: dict[str, Any] | None = None,
        transformation: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_seconds: float | None = None,
        retry_schedule: Sequence[int] | None = None,
        rate_limit_per_second: float | None = None,
        max_in_flight: int | None = None,
        batch_config: BatchArg = None,
        retention: RetentionPolicy | str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> WebhookEndpointInfo:
        """Create an endpoint (and its first signing secret: read it with :meth:`get_secret`)."""
        fields = _endpoint_fields(
            {
                "url": url,
                "channel": channel,
                "channel_config": channel_config,
                "event_types": event_types,
                "description": description,
                "filter": filter,
                "transformation": transformation,
                "headers": headers,
                "timeout_seconds": timeout_seconds,
                "retry_schedule": retry_schedule,
                "rate_limit_per_second": rate_limit_per_second,
                "max_in_flight": max_in_flight,
                "batch_config": batch_config,
                "retention": retention,
                "metadata": metadata,
            }
        )
        response = self._c._request(
            "POST", "/v1/endpoints", json=body(fields, drop_none=True), tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        enabled: bool | None = None,
        channel: DeliveryChannel | str | None = None,
        tenant_id: str | None = None,
    ) -> Page[WebhookEndpointInfo]:
        params = query({"limit": limit, "after": after, "enabled": _flag(enabled), "channel": channel})
        response = self._c._request("GET", "/v1/endpoints", params=params, tenant_id=tenant_id)
        return parse_page(WebhookEndpointInfo, response)

    def iter_all(
        self, *, enabled: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[WebhookEndpointInfo]:
        """Every endpoint, newest first, fetching pages as needed."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, enabled=enabled, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        response = self._c._request("GET", f"/v1/endpoints/{segment(endpoint_id)}", tenant_id=tenant_id)
        return parse(WebhookEndpointInfo, response)

    def update(
        self, endpoint_id: str, *, tenant_id: str | None = None, **changes: Any
    ) -> WebhookEndpointInfo:
        """Change the given fields (the keyword names of :meth:`create`); ``None`` clears optional ones."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise TypeError(f"update() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        payload = body(_endpoint_fields(changes), drop_none=False)
        response = self._c._request(
            "PATCH", f"/v1/endpoints/{segment(endpoint_id)}", json=payload, tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    def delete(self, endpoint_id: str, *, tenant_id: str | None = None) -> None:
        self._c._request("DELETE", f"/v1/endpoints/{segment(endpoint_id)}", tenant_id=tenant_id)

    def disable(
        self, endpoint_id: str, *, reason: str | None = None, tenant_id: str | None = None
    ) -> WebhookEndpointInfo:
        payload = body({"reason": reason}, drop_none=True)
        response = self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/disable", json=payload, tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    def enable(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        """Resume deliveries; clears the disabled reason and failure counters."""
        response = self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/enable", tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    def get_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """The current ``whsec_`` signing secret (needs ``webhooks:write``; audited)."""
        response = self._c._request(
            "GET", f"/v1/endpoints/{segment(endpoint_id)}/secret", tenant_id=tenant_id
        )
        return parse(EndpointSecret, response)

    def rotate_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """A new signing secret; the previous one keeps signing for 24 hours."""
        response = self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/secret/rotate", tenant_id=tenant_id
        )
        return parse(EndpointSecret, response)

    def test_transformation(
        self,
        endpoint_id: str,
        payload: dict[str, Any],
        event_type: str,
        *,
        template: str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> TransformationTestResult:
        """Run ``template`` (else the endpoint's transformation) on a sample event."""
        response = self._c._request(
            "POST",
            f"/v1/endpoints/{segment(endpoint_id)}/transformation/test",
            json=_transformation_body(payload, event_type, template, metadata),
            tenant_id=tenant_id,
        )
        return parse(TransformationTestResult, response)

    def test(
        self, endpoint_id: str, payload: dict[str, Any] | None = None, *, tenant_id: str | None = None
    ) -> EndpointTestResult:
        """Send a ``webhook.test`` event to this endpoint only; the answer carries the first attempt."""
        response = self._c._request(
            "POST",
            f"/v1/endpoints/{segment(endpoint_id)}/test",
            json=body({"payload": payload}, drop_none=True),
            tenant_id=tenant_id,
        )
        return parse(EndpointTestResult, response)

    def metrics(
        self,
        endpoint_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        """Delivery metrics over ``[since, until)`` (default: the last 24 hours; at most 90 days)."""
        response = self._c._request(
            "GET",
            f"/v1/endpoints/{segment(endpoint_id)}/metrics",
            params=window_params(since, until),
            tenant_id=tenant_id,
        )
        return parse(WebhookDeliveryMetrics, response)


_UPDATABLE = frozenset(
    {
        "url",
        "description",
        "channel",
        "channel_config",
        "event_types",
        "filter",
        "transformation",
        "headers",
        "timeout_seconds",
        "retry_schedule",
        "rate_limit_per_second",
        "max_in_flight",
        "batch_config",
        "retention",
        "metadata",
    }
)


# -- asyncio ---------------------------------------------------------------------------------------


class AsyncEventTypes:
    """``/v1/event-types`` with ``await`` (same surface as :class:`EventTypes`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def create(
        self,
        name: str,
        *,
        description: str | None = None,
        schema: dict[str, Any] | None = None,
        deprecated: bool = False,
        tenant_id: str | None = None,
    ) -> EventTypeInfo:
        payload = _event_type_body(name, description, schema, deprecated)
        response = await self._c._request("POST", "/v1/event-types", json=payload, tenant_id=tenant_id)
        return parse(EventTypeInfo, response)

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        deprecated: bool | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventTypeInfo]:
        params = query({"limit": limit, "after": after, "deprecated": _flag(deprecated)})
        response = await self._c._request("GET", "/v1/event-types", params=params, tenant_id=tenant_id)
        return parse_page(EventTypeInfo, response)

    async def iter_all(
        self, *, deprecated: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[EventTypeInfo]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, deprecated=deprecated, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        response = await self._c._request(
            "GET", f"/v1/event-types/{segment(id_or_name)}", tenant_id=tenant_id
        )
        return parse(EventTypeInfo, response)

    async def update(
        self,
        id_or_name: str,
        *,
        description: str | NotGiven | None = NOT_GIVEN,
        schema: dict[str, Any] | NotGiven | None = NOT_GIVEN,
        deprecated: bool | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> EventTypeInfo:
        payload = body(
            {"description": description, "schema": schema, "deprecated": deprecated}, drop_none=False
        )
        response = await self._c._request(
            "PATCH", f"/v1/event-types/{segment(id_or_name)}", json=payload, tenant_id=tenant_id
        )
        return parse(EventTypeInfo, response)

    async def deprecate(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        response = await self._c._request(
            "POST", f"/v1/event-types/{segment(id_or_name)}/deprecate", tenant_id=tenant_id
        )
        return parse(EventTypeInfo, response)


class AsyncEndpoints:
    """``/v1/endpoints`` with ``await`` (same surface as :class:`Endpoints`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def create(
        self,
        url: str | None = None,
        *,
        channel: DeliveryChannel | str = DeliveryChannel.WEBHOOK,
        channel_config: dict[str, Any] | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        filter: dict[str, Any] | None = None,
        transformation: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_seconds: float | None = None,
        retry_schedule: Sequence[int] | None = None,
        rate_limit_per_second: float | None = None,
        max_in_flight: int | None = None,
        batch_config: BatchArg = None,
        retention: RetentionPolicy | str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> WebhookEndpointInfo:
        fields = _endpoint_fields(
            {
                "url": url,
                "channel": channel,
                "channel_config": channel_config,
                "event_types": event_types,
                "description": description,
                "filter": filter,
                "transformation": transformation,
                "headers": headers,
                "timeout_seconds": timeout_seconds,
                "retry_schedule": retry_schedule,
                "rate_limit_per_second": rate_limit_per_second,
                "max_in_flight": max_in_flight,
                "batch_config": batch_config,
                "retention": retention,
                "metadata": metadata,
            }
        )
        response = await self._c._request(
            "POST", "/v1/endpoints", json=body(fields, drop_none=True), tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        enabled: bool | None = None,
        channel: DeliveryChannel | str | None = None,
        tenant_id: str | None = None,
    ) -> Page[WebhookEndpointInfo]:
        params = query({"limit": limit, "after": after, "enabled": _flag(enabled), "channel": channel})
        response = await self._c._request("GET", "/v1/endpoints", params=params, tenant_id=tenant_id)
        return parse_page(WebhookEndpointInfo, response)

    async def iter_all(
        self, *, enabled: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookEndpointInfo]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, enabled=enabled, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        response = await self._c._request("GET", f"/v1/endpoints/{segment(endpoint_id)}", tenant_id=tenant_id)
        return parse(WebhookEndpointInfo, response)

    async def update(
        self, endpoint_id: str, *, tenant_id: str | None = None, **changes: Any
    ) -> WebhookEndpointInfo:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise TypeError(f"update() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        payload = body(_endpoint_fields(changes), drop_none=False)
        response = await self._c._request(
            "PATCH", f"/v1/endpoints/{segment(endpoint_id)}", json=payload, tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    async def delete(self, endpoint_id: str, *, tenant_id: str | None = None) -> None:
        await self._c._request("DELETE", f"/v1/endpoints/{segment(endpoint_id)}", tenant_id=tenant_id)

    async def disable(
        self, endpoint_id: str, *, reason: str | None = None, tenant_id: str | None = None
    ) -> WebhookEndpointInfo:
        payload = body({"reason": reason}, drop_none=True)
        response = await self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/disable", json=payload, tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    async def enable(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        response = await self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/enable", tenant_id=tenant_id
        )
        return parse(WebhookEndpointInfo, response)

    async def get_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        response = await self._c._request(
            "GET", f"/v1/endpoints/{segment(endpoint_id)}/secret", tenant_id=tenant_id
        )
        return parse(EndpointSecret, response)

    async def rotate_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        response = await self._c._request(
            "POST", f"/v1/endpoints/{segment(endpoint_id)}/secret/rotate", tenant_id=tenant_id
        )
        return parse(EndpointSecret, response)

    async def test_transformation(
        self,
        endpoint_id: str,
        payload: dict[str, Any],
        event_type: str,
        *,
        template: str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> TransformationTestResult:
        response = await self._c._request(
            "POST",
            f"/v1/endpoints/{segment(endpoint_id)}/transformation/test",
            json=_transformation_body(payload, event_type, template, metadata),
            tenant_id=tenant_id,
        )
        return parse(TransformationTestResult, response)

    async def test(
        self, endpoint_id: str, payload: dict[str, Any] | None = None, *, tenant_id: str | None = None
    ) -> EndpointTestResult:
        response = await self._c._request(
            "POST",
            f"/v1/endpoints/{segment(endpoint_id)}/test",
            json=body({"payload": payload}, drop_none=True),
            tenant_id=tenant_id,
        )
        return parse(EndpointTestResult, response)

    async def metrics(
        self,
        endpoint_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        """Delivery metrics over ``[since, until)`` (default: the last 24 hours; at most 90 days)."""
        response = await self._c._request(
            "GET",
            f"/v1/endpoints/{segment(endpoint_id)}/metrics",
            params=window_params(since, until),
            tenant_id=tenant_id,
        )
        return parse(WebhookDeliveryMetrics, response)
