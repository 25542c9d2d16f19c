"""SDK resource for ``/v1/api-requests``: the outbound request log and its metrics.

``client.api_requests`` on :class:`~interlink.client.InterlinkClient` (blocking) and
:class:`~interlink.client.AsyncInterlinkClient` (``await``). Answers are the service's own models
(:class:`ExternalApiRequestInfo`, :class:`ApiMetrics`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from interlink.client._base import AsyncRequester, SyncRequester, parse, parse_page, query, segment
from interlink.client.models import Page
from interlink.outbound.schemas import ApiMetrics, ApiRequestTiming, ExternalApiRequestInfo

__all__ = ["ApiMetrics", "ApiRequestTiming", "ApiRequests", "AsyncApiRequests", "ExternalApiRequestInfo"]


_Sync = SyncRequester
_Async = AsyncRequester


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


class ApiRequests:
    """``/v1/api-requests``: every outbound call (redacted), newest first, and ApiMetrics."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

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
        response = self._c._request("GET", "/v1/api-requests", params=params, tenant_id=tenant_id)
        return parse_page(ExternalApiRequestInfo, response)

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
        after: str | None = None
        while True:
            page = self.list(
                limit=page_size,
                after=after,
                connection_id=connection_id,
                provider_key=provider_key,
                status=status,
                error_class=error_class,
                since=since,
                until=until,
                tenant_id=tenant_id,
            )
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, request_id: str, *, tenant_id: str | None = None) -> ExternalApiRequestInfo:
        response = self._c._request("GET", f"/v1/api-requests/{segment(request_id)}", tenant_id=tenant_id)
        return parse(ExternalApiRequestInfo, response)

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
        response = self._c._request("GET", "/v1/api-requests/metrics", params=params, tenant_id=tenant_id)
        return parse(ApiMetrics, response)


class AsyncApiRequests:
    """``/v1/api-requests`` with ``await`` (same surface as :class:`ApiRequests`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

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
        params = _list_query(limit, after, connection_id, provider_key, status, error_class, since, until)
        response = await self._c._request("GET", "/v1/api-requests", params=params, tenant_id=tenant_id)
        return parse_page(ExternalApiRequestInfo, response)

    async def iter_all(
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
        after: str | None = None
        while True:
            page = await self.list(
                limit=page_size,
                after=after,
                connection_id=connection_id,
                provider_key=provider_key,
                status=status,
                error_class=error_class,
                since=since,
                until=until,
                tenant_id=tenant_id,
            )
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, request_id: str, *, tenant_id: str | None = None) -> ExternalApiRequestInfo:
        response = await self._c._request(
            "GET", f"/v1/api-requests/{segment(request_id)}", tenant_id=tenant_id
        )
        return parse(ExternalApiRequestInfo, response)

    async def metrics(
        self,
        *,
        connection_id: str | None = None,
        provider_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> ApiMetrics:
        params = _metrics_query(connection_id, provider_key, since, until)
        response = await self._c._request(
            "GET", "/v1/api-requests/metrics", params=params, tenant_id=tenant_id
        )
        return parse(ApiMetrics, response)
