"""``/v1/tenants``: platform keys manage tenants; tenant keys read their own."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from interlink.core import tenancy
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut, TenantCreate, TenantInfo, TenantUpdate
from interlink.http.auth import get_runtime, require, require_platform
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=STANDARD_ERRORS)


@router.post("", status_code=201, response_model=TenantInfo, responses=error_responses(409))
async def create_tenant(
    body: TenantCreate, request: Request, actor: Actor = Depends(require_platform(ApiKeyScope.TENANTS_WRITE))
) -> TenantInfo:
    """Create a tenant (platform keys only)."""
    async with get_runtime(request).db.unit_of_work() as session:
        tenant = await tenancy.create_tenant(session, actor, body.name, body.slug, body.metadata)
    return TenantInfo.model_validate(tenant)


@router.get("", response_model=PageOut[TenantInfo])
async def list_tenants(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    actor: Actor = Depends(require(ApiKeyScope.TENANTS_READ)),
) -> PageOut[TenantInfo]:
    """Every tenant for a platform key; only its own for a tenant key."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await tenancy.list_tenants(session, actor, PageRequest(limit, after))
    return PageOut[TenantInfo](
        data=[TenantInfo.model_validate(t) for t in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/{tenant_id}", response_model=TenantInfo)
async def get_tenant(
    tenant_id: str, request: Request, actor: Actor = Depends(require(ApiKeyScope.TENANTS_READ))
) -> TenantInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        tenant = await tenancy.get_tenant(session, actor, tenant_id)
    return TenantInfo.model_validate(tenant)


@router.patch("/{tenant_id}", response_model=TenantInfo)
async def update_tenant(
    tenant_id: str,
    body: TenantUpdate,
    request: Request,
    actor: Actor = Depends(require_platform(ApiKeyScope.TENANTS_WRITE)),
) -> TenantInfo:
    async with get_runtime(request).db.unit_of_work() as session:
        tenant = await tenancy.update_tenant(session, actor, tenant_id, name=body.name, meta=body.metadata)
    return TenantInfo.model_validate(tenant)
