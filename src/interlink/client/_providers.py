"""SDK resource for ``/v1/providers`` (blocking and asyncio): the provider catalogue.

``client.providers`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are
:class:`~interlink.connections.schemas.IntegrationProviderExtended`, sorted by key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
from interlink.connections.schemas import IntegrationProviderExtended
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus

__all__ = ["AsyncProviders", "IntegrationProviderExtended", "Providers"]

PATH = "/v1/providers"


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


class Providers(SyncResource):
    """``/v1/providers``: the catalogue of providers Interlink can connect to."""

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
        return self._send(page_call(IntegrationProviderExtended, PATH, params))

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
        return paginate(lambda after: self.list(
            category=category, status=status, auth_type=auth_type, q=q, limit=page_size, after=after
        ))  # fmt: skip

    def get(self, key: str) -> IntegrationProviderExtended:
        """One provider by key (``NotFoundError`` when it is not in the catalogue)."""
        return self._send(call(IntegrationProviderExtended, "GET", item_path(PATH, key)))


class AsyncProviders(AsyncResource):
    """``/v1/providers`` with ``await`` (same surface as :class:`Providers`)."""

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
        """One page of providers (sorted by key); ``next_cursor`` is the key to pass as ``after``."""
        params = _params(limit, after, category, status, auth_type, q)
        return await self._send(page_call(IntegrationProviderExtended, PATH, params))

    def iter_all(
        self,
        *,
        category: IntegrationCategory | str | None = None,
        status: IntegrationProviderStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        q: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[IntegrationProviderExtended]:
        """Every matching provider, fetching pages as needed (``async for``)."""
        return apaginate(lambda after: self.list(
            category=category, status=status, auth_type=auth_type, q=q, limit=page_size, after=after
        ))  # fmt: skip

    async def get(self, key: str) -> IntegrationProviderExtended:
        """One provider by key (``NotFoundError`` when it is not in the catalogue)."""
        return await self._send(call(IntegrationProviderExtended, "GET", item_path(PATH, key)))
