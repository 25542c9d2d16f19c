"""``/v1/providers``: the provider catalogue (read-only; any valid key may read it).

The catalogue is the process's validated copy (built-in file plus ``INTERLINK_PROVIDERS_FILE``);
it holds no tenant data, so no scope is needed beyond a valid key.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from interlink.connections.catalogue import ProviderFilter
from interlink.connections.schemas import PROVIDER_KEY_PATTERN, IntegrationProviderExtended
from interlink.core.actor import Actor
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus
from interlink.core.errors import NotFound
from interlink.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from interlink.core.schemas import PageOut
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/providers", tags=["providers"], responses=STANDARD_ERRORS)


@router.get("", response_model=PageOut[IntegrationProviderExtended])
async def list_providers(
    request: Request,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    after: str | None = Query(
        None,
        pattern=PROVIDER_KEY_PATTERN,
        description="Cursor: the `nextCursor` (a provider key) of the last page.",
    ),
    category: IntegrationCategory | None = Query(None),
    status: IntegrationProviderStatus | None = Query(None),
    auth_type: AuthenticationType | None = Query(None, alias="authType"),
    q: str | None = Query(
        None, min_length=1, max_length=100, description="Text in the key, name or description."
    ),
    _actor: Actor = Depends(require(None)),
) -> PageOut[IntegrationProviderExtended]:
    """Providers of the catalogue sorted by key (not by time: the catalogue is reference data)."""
    flt = ProviderFilter(category=category, status=status, auth_type=auth_type, q=q)
    page = get_runtime(request).providers.list(flt, limit=limit, after=after)
    return PageOut[IntegrationProviderExtended](
        data=page.items, has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{key}", response_model=IntegrationProviderExtended, responses=error_responses(404))
async def get_provider(
    request: Request,
    key: str = Path(max_length=100),
    _actor: Actor = Depends(require(None)),
) -> IntegrationProviderExtended:
    """One provider: authentication, OAuth2 endpoints, base URLs, limits, compliance, webhooks."""
    provider = get_runtime(request).providers.get(key)
    if provider is None:
        raise NotFound(f"provider {key!r} is not in the catalogue")
    return provider
