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
    AsyncResource,
    Call,
    NotGiven,
    SyncResource,
    apaginate,
    body,
    call,
    camel,
    empty_call,
    item_path,
    model_or_mapping,
    page_call,
    paginate,
    query,
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

EVENT_TYPES = "/v1/event-types"
ENDPOINTS = "/v1/endpoints"


BatchArg = BatchConfig | Mapping[str, Any] | None


def _event_type_body(
    name: str, description: str | None, schema: dict[str, Any] | None, deprecated: bool
) -> dict[str, Any]:
    return body(
        {"name": name, "description": description, "schema": schema, "deprecated": deprecated or None},
        drop_none=True,
    )


def _endpoint_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """camelCase request fields from the SDK's snake_case keyword arguments."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "batch_config":
            value = model_or_mapping(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[camel(key)] = value
    return out


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


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _create_call(fields: dict[str, Any], tenant_id: str | None) -> Call[WebhookEndpointInfo]:
    """Create an endpoint from the snake_case arguments of ``create`` (``None`` left out)."""
    payload = body(_endpoint_fields(fields), drop_none=True)
    return call(WebhookEndpointInfo, "POST", ENDPOINTS, json=payload, tenant_id=tenant_id)


def _update_call(
    endpoint_id: str, changes: dict[str, Any], tenant_id: str | None
) -> Call[WebhookEndpointInfo]:
    """Change the given fields; unknown names raise ``TypeError`` as a wrong keyword would."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise TypeError(f"update() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    payload = body(_endpoint_fields(changes), drop_none=False)
    return call(
        WebhookEndpointInfo, "PATCH", item_path(ENDPOINTS, endpoint_id), json=payload, tenant_id=tenant_id
    )


def _transformation_call(
    endpoint_id: str,
    payload: dict[str, Any],
    event_type: str,
    template: str | None,
    metadata: dict[str, Any] | None,
    tenant_id: str | None,
) -> Call[TransformationTestResult]:
    fields = {"payload": payload, "eventType": event_type, "template": template, "metadata": metadata}
    path = item_path(ENDPOINTS, endpoint_id, "/transformation/test")
    return call(
        TransformationTestResult, "POST", path, json=body(fields, drop_none=True), tenant_id=tenant_id
    )


# -- blocking --------------------------------------------------------------------------------------


class EventTypes(SyncResource):
    """``/v1/event-types``: the tenant's registry of event names and payload schemas."""

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
        return self._send(call(EventTypeInfo, "POST", EVENT_TYPES, json=payload, tenant_id=tenant_id))

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        deprecated: bool | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventTypeInfo]:
        params = query({"limit": limit, "after": after, "deprecated": _flag(deprecated)})
        return self._send(page_call(EventTypeInfo, EVENT_TYPES, params, tenant_id))

    def iter_all(
        self, *, deprecated: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[EventTypeInfo]:
        """Every event type, newest first, fetching pages as needed."""
        return paginate(
            lambda after: self.list(limit=page_size, after=after, deprecated=deprecated, tenant_id=tenant_id)
        )

    def get(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        """One event type, by id (``etp_...``) or by name."""
        return self._send(call(EventTypeInfo, "GET", item_path(EVENT_TYPES, id_or_name), tenant_id=tenant_id))

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
        return self._send(
            call(
                EventTypeInfo, "PATCH", item_path(EVENT_TYPES, id_or_name), json=payload, tenant_id=tenant_id
            )
        )

    def deprecate(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        path = item_path(EVENT_TYPES, id_or_name, "/deprecate")
        return self._send(call(EventTypeInfo, "POST", path, tenant_id=tenant_id))


class Endpoints(SyncResource):
    """``/v1/endpoints``: where events go, how they are filtered and shaped, and signing secrets."""

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
        fields = {k: v for k, v in locals().items() if k in _UPDATABLE}
        return self._send(_create_call(fields, tenant_id))

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
        return self._send(page_call(WebhookEndpointInfo, ENDPOINTS, params, tenant_id))

    def iter_all(
        self, *, enabled: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[WebhookEndpointInfo]:
        """Every endpoint, newest first, fetching pages as needed."""
        return paginate(
            lambda after: self.list(limit=page_size, after=after, enabled=enabled, tenant_id=tenant_id)
        )

    def get(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        return self._send(
            call(WebhookEndpointInfo, "GET", item_path(ENDPOINTS, endpoint_id), tenant_id=tenant_id)
        )

    def update(
        self, endpoint_id: str, *, tenant_id: str | None = None, **changes: Any
    ) -> WebhookEndpointInfo:
        """Change the given fields (the keyword names of :meth:`create`); ``None`` clears optional ones."""
        return self._send(_update_call(endpoint_id, changes, tenant_id))

    def delete(self, endpoint_id: str, *, tenant_id: str | None = None) -> None:
        self._send(empty_call("DELETE", item_path(ENDPOINTS, endpoint_id), tenant_id))

    def disable(
        self, endpoint_id: str, *, reason: str | None = None, tenant_id: str | None = None
    ) -> WebhookEndpointInfo:
        payload = body({"reason": reason}, drop_none=True)
        path = item_path(ENDPOINTS, endpoint_id, "/disable")
        return self._send(call(WebhookEndpointInfo, "POST", path, json=payload, tenant_id=tenant_id))

    def enable(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        """Resume deliveries; clears the disabled reason and failure counters."""
        path = item_path(ENDPOINTS, endpoint_id, "/enable")
        return self._send(call(WebhookEndpointInfo, "POST", path, tenant_id=tenant_id))

    def get_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """The current ``whsec_`` signing secret (needs ``webhooks:write``; audited)."""
        path = item_path(ENDPOINTS, endpoint_id, "/secret")
        return self._send(call(EndpointSecret, "GET", path, tenant_id=tenant_id))

    def rotate_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """A new signing secret; the previous one keeps signing for 24 hours."""
        path = item_path(ENDPOINTS, endpoint_id, "/secret/rotate")
        return self._send(call(EndpointSecret, "POST", path, tenant_id=tenant_id))

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
        return self._send(
            _transformation_call(endpoint_id, payload, event_type, template, metadata, tenant_id)
        )

    def test(
        self, endpoint_id: str, payload: dict[str, Any] | None = None, *, tenant_id: str | None = None
    ) -> EndpointTestResult:
        """Send a ``webhook.test`` event to this endpoint only; the answer carries the first attempt."""
        path, test_body = (
            item_path(ENDPOINTS, endpoint_id, "/test"),
            body({"payload": payload}, drop_none=True),
        )
        return self._send(call(EndpointTestResult, "POST", path, json=test_body, tenant_id=tenant_id))

    def metrics(
        self,
        endpoint_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        """Delivery metrics over ``[since, until)`` (default: the last 24 hours; at most 90 days)."""
        path, params = item_path(ENDPOINTS, endpoint_id, "/metrics"), window_params(since, until)
        return self._send(call(WebhookDeliveryMetrics, "GET", path, params=params, tenant_id=tenant_id))


# -- asyncio ---------------------------------------------------------------------------------------


class AsyncEventTypes(AsyncResource):
    """``/v1/event-types`` with ``await`` (same surface as :class:`EventTypes`)."""

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
        return await self._send(call(EventTypeInfo, "POST", EVENT_TYPES, json=payload, tenant_id=tenant_id))

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        deprecated: bool | None = None,
        tenant_id: str | None = None,
    ) -> Page[EventTypeInfo]:
        params = query({"limit": limit, "after": after, "deprecated": _flag(deprecated)})
        return await self._send(page_call(EventTypeInfo, EVENT_TYPES, params, tenant_id))

    def iter_all(
        self, *, deprecated: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[EventTypeInfo]:
        """Every event type, newest first, fetching pages as needed (``async for``)."""
        return apaginate(
            lambda after: self.list(limit=page_size, after=after, deprecated=deprecated, tenant_id=tenant_id)
        )

    async def get(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        """One event type, by id (``etp_...``) or by name."""
        return await self._send(
            call(EventTypeInfo, "GET", item_path(EVENT_TYPES, id_or_name), tenant_id=tenant_id)
        )

    async def update(
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
        return await self._send(
            call(
                EventTypeInfo, "PATCH", item_path(EVENT_TYPES, id_or_name), json=payload, tenant_id=tenant_id
            )
        )

    async def deprecate(self, id_or_name: str, *, tenant_id: str | None = None) -> EventTypeInfo:
        path = item_path(EVENT_TYPES, id_or_name, "/deprecate")
        return await self._send(call(EventTypeInfo, "POST", path, tenant_id=tenant_id))


class AsyncEndpoints(AsyncResource):
    """``/v1/endpoints`` with ``await`` (same surface as :class:`Endpoints`)."""

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
        """Create an endpoint (and its first signing secret: read it with :meth:`get_secret`)."""
        fields = {k: v for k, v in locals().items() if k in _UPDATABLE}
        return await self._send(_create_call(fields, tenant_id))

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
        return await self._send(page_call(WebhookEndpointInfo, ENDPOINTS, params, tenant_id))

    def iter_all(
        self, *, enabled: bool | None = None, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookEndpointInfo]:
        """Every endpoint, newest first, fetching pages as needed (``async for``)."""
        return apaginate(
            lambda after: self.list(limit=page_size, after=after, enabled=enabled, tenant_id=tenant_id)
        )

    async def get(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        return await self._send(
            call(WebhookEndpointInfo, "GET", item_path(ENDPOINTS, endpoint_id), tenant_id=tenant_id)
        )

    async def update(
        self, endpoint_id: str, *, tenant_id: str | None = None, **changes: Any
    ) -> WebhookEndpointInfo:
        """Change the given fields (the keyword names of :meth:`create`); ``None`` clears optional ones."""
        return await self._send(_update_call(endpoint_id, changes, tenant_id))

    async def delete(self, endpoint_id: str, *, tenant_id: str | None = None) -> None:
        await self._send(empty_call("DELETE", item_path(ENDPOINTS, endpoint_id), tenant_id))

    async def disable(
        self, endpoint_id: str, *, reason: str | None = None, tenant_id: str | None = None
    ) -> WebhookEndpointInfo:
        payload = body({"reason": reason}, drop_none=True)
        path = item_path(ENDPOINTS, endpoint_id, "/disable")
        return await self._send(call(WebhookEndpointInfo, "POST", path, json=payload, tenant_id=tenant_id))

    async def enable(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointInfo:
        """Resume deliveries; clears the disabled reason and failure counters."""
        path = item_path(ENDPOINTS, endpoint_id, "/enable")
        return await self._send(call(WebhookEndpointInfo, "POST", path, tenant_id=tenant_id))

    async def get_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """The current ``whsec_`` signing secret (needs ``webhooks:write``; audited)."""
        path = item_path(ENDPOINTS, endpoint_id, "/secret")
        return await self._send(call(EndpointSecret, "GET", path, tenant_id=tenant_id))

    async def rotate_secret(self, endpoint_id: str, *, tenant_id: str | None = None) -> EndpointSecret:
        """A new signing secret; the previous one keeps signing for 24 hours."""
        path = item_path(ENDPOINTS, endpoint_id, "/secret/rotate")
        return await self._send(call(EndpointSecret, "POST", path, tenant_id=tenant_id))

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
        """Run ``template`` (else the endpoint's transformation) on a sample event."""
        return await self._send(
            _transformation_call(endpoint_id, payload, event_type, template, metadata, tenant_id)
        )

    async def test(
        self, endpoint_id: str, payload: dict[str, Any] | None = None, *, tenant_id: str | None = None
    ) -> EndpointTestResult:
        """Send a ``webhook.test`` event to this endpoint only; the answer carries the first attempt."""
        path, test_body = (
            item_path(ENDPOINTS, endpoint_id, "/test"),
            body({"payload": payload}, drop_none=True),
        )
        return await self._send(call(EndpointTestResult, "POST", path, json=test_body, tenant_id=tenant_id))

    async def metrics(
        self,
        endpoint_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> WebhookDeliveryMetrics:
        """Delivery metrics over ``[since, until)`` (default: the last 24 hours; at most 90 days)."""
        path, params = item_path(ENDPOINTS, endpoint_id, "/metrics"), window_params(since, until)
        return await self._send(call(WebhookDeliveryMetrics, "GET", path, params=params, tenant_id=tenant_id))
