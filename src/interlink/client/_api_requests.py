"""SDK resource for ``/v1/api-requests``: the outbound request log and its metrics.

``client.api_requests`` on :class:`~interlink.client.InterlinkClient` (blocking) and
:class:`~interlink.client.AsyncInterlinkClient` (``await``). Answers are the service's own models
(:class:`ExternalApiRequestInfo`, :class:`ApiMetrics`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from interlink.client._base import (
    AsyncResource,
    SyncResource,
    apaginate,
    call,
    item_path,
    page_call,
    paginate,
    query,
)
from interlink.client.models import Page
from interlink.outbound.schemas import ApiMetrics, ApiRequestTiming, ExternalApiRequestInfo

__all__ = ["ApiMetrics", "ApiRequestTiming", "ApiRequests", "AsyncApiRequests", "ExternalApiRequestInfo"]

PATH = "/v1/api-requests"


def _list_query(
    limit: int,
    after: str | None,
    connection_id: str | None,
    provider_key: str | None,
    status: int | None,
    error_class: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, str | int]:
    return query(
        {
            "limit": limit,
            "after": after,
            "connectionId": connection_id,
            "providerKey": provider_key,
            "status": status,
            "errorClass": error_class,
            "since": since,
            "until": until,
        }
    )


def _metrics_query(
    connection_id: str | None, provider_key: str | None, since: datetime | None, until: datetime | None
) -> dict[str, str | int]:
    return query({"connectionId": connection_id, "providerKey": provider_key, "since": since, "until": until})


class ApiRequests(SyncResource):
    """``/v1/api-requests``: every outbound call (redacted), newest first, and ApiMetrics."""

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        connection_id: str | None = None,
        provider_key: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> Page[ExternalApiRequestInfo]:
        """Calls, newest first. ``error_class="none"`` keeps only successes; ``since``/``until``
        bound the start time."""
        params = _list_query(limit, after, connection_id, provider_key, status, error_class, since, until)
        return self._send(page_call(ExternalApiRequestInfo, PATH, params, tenant_id))

    def iter_all(
        self,
        *,
        connection_id: str | None = None,
        provider_key: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[ExternalApiRequestInfo]:
        """Every matching call (same filters as :meth:`list`), fetching pages as needed."""
        return paginate(lambda after: self.list(
            limit=page_size, after=after, connection_id=connection_id, provider_key=provider_key,
            status=status, error_class=error_class, since=since, until=until, tenant_id=tenant_id,
        ))  # fmt: skip

    def get(self, request_id: str, *, tenant_id: str | None = None) -> ExternalApiRequestInfo:
        return self._send(
            call(ExternalApiRequestInfo, "GET", item_path(PATH, request_id), tenant_id=tenant_id)
        )

    def metrics(
        self,
        *,
        connection_id: str | None = None,
        provider_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> ApiMetrics:
        """ApiMetrics over ``[since, until)`` (default: the last 24 hours)."""
        params = _metrics_query(connection_id, provider_key, since, until)
        return self._send(call(ApiMetrics, "GET", f"{PATH}/metrics", params=params, tenant_id=tenant_id))


class AsyncApiRequests(AsyncResource):
    """``/v1/api-requests`` with ``await`` (same surface as :class:`ApiRequests`)."""

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        connection_id: str | None = None,
        provider_key: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> Page[ExternalApiRequestInfo]:
        """As :meth:`ApiRequests.list`, awaited."""
        params = _list_query(limit, after, connection_id, provider_key, status, error_class, since, until)
        return await self._send(page_call(ExternalApiRequestInfo, PATH, params, tenant_id))

    def iter_all(
        self,
        *,
        connection_id: str | None = None,
        provider_key: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> AsyncIterator[ExternalApiRequestInfo]:
        """Every matching call (same filters as :meth:`list`), fetching pages as needed (``async for``)."""
        return apaginate(lambda after: self.list(
            limit=page_size, after=after, connection_id=connection_id, provider_key=provider_key,
            status=status, error_class=error_class, since=since, until=until, tenant_id=tenant_id,
        ))  # fmt: skip

    async def get(self, request_id: str, *, tenant_id: str | None = None) -> ExternalApiRequestInfo:
        return await self._send(
            call(ExternalApiRequestInfo, "GET", item_path(PATH, request_id), tenant_id=tenant_id)
        )

    async def metrics(
        self,
        *,
        connection_id: str | None = None,
        provider_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> ApiMetrics:
        """ApiMetrics over ``[since, until)`` (default: the last 24 hours)."""
        params = _metrics_query(connection_id, provider_key, since, until)
        return await self._send(
            call(ApiMetrics, "GET", f"{PATH}/metrics", params=params, tenant_id=tenant_id)
        )
