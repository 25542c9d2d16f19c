"""SDK resource for ``/v1/providers`` (blocking and asyncio): the provider catalogue.

``client.providers`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are
:class:`~interlink.connections.schemas.IntegrationProviderExtended`, sorted by key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from interlink.client._base import AsyncRequester, SyncRequester, parse, parse_page, query, segment
from interlink.client.models import Page
from interlink.connections.schemas import IntegrationProviderExtended
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus

__all__ = ["AsyncProviders", "IntegrationProviderExtended", "Providers"]


_Sync = SyncRequester
_Async = AsyncRequester


def _params(
    limit: int,
    after: str | None,
    category: IntegrationCategory | str | None,
    status: IntegrationProviderStatus | str | None,
    auth_type: AuthenticationType | str | None,
    q: str | None,
) -> dict[str, str | int]:
    return query(
        {
            "limit": limit,
            "after": after,
            "category": category,
            "status": status,
            "authType": auth_type,
            "q": q,
        }
    )


class Providers:
    """``/v1/providers``: the catalogue of providers Interlink can connect to."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def list(
        self,
        *,
        category: IntegrationCategory | str | None = None,
        status: IntegrationProviderStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        q: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[IntegrationProviderExtended]:
        """One page of providers (sorted by key); ``next_cursor`` is the key to pass as ``after``."""
        params = _params(limit, after, category, status, auth_type, q)
        return parse_page(
            IntegrationProviderExtended, self._c._request("GET", "/v1/providers", params=params)
        )

    def iter_all(
        self,
        *,
        category: IntegrationCategory | str | None = None,
        status: IntegrationProviderStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        q: str | None = None,
        page_size: int = 100,
    ) -> Iterator[IntegrationProviderExtended]:
        """Every matching provider, fetching pages as needed."""
        after: str | None = None
        while True:
            page = self.list(
                category=category, status=status, auth_type=auth_type, q=q, limit=page_size, after=after
            )
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, key: str) -> IntegrationProviderExtended:
        """One provider by key (``NotFoundError`` when it is not in the catalogue)."""
        return parse(IntegrationProviderExtended, self._c._request("GET", f"/v1/providers/{segment(key)}"))


class AsyncProviders:
    """``/v1/providers`` with ``await``."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def list(
        self,
        *,
        category: IntegrationCategory | str | None = None,
        status: IntegrationProviderStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        q: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[IntegrationProviderExtended]:
        params = _params(limit, after, category, status, auth_type, q)
        response = await self._c._request("GET", "/v1/providers", params=params)
        return parse_page(IntegrationProviderExtended, response)

    async def iter_all(
        self,
        *,
        category: IntegrationCategory | str | None = None,
        status: IntegrationProviderStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        q: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[IntegrationProviderExtended]:
        after: str | None = None
        while True:
            page = await self.list(
                category=category, status=status, auth_type=auth_type, q=q, limit=page_size, after=after
            )
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, key: str) -> IntegrationProviderExtended:
        response = await self._c._request("GET", f"/v1/providers/{segment(key)}")
        return parse(IntegrationProviderExtended, response)
