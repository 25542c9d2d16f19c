"""Tenants. Platform keys create and list them; a tenant key sees only its own tenant."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from interlink.core.ids import new_id
from interlink.core.models import Tenant
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$|^[a-z0-9]$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]
    return slug or "tenant"


def _snapshot(tenant: Tenant) -> dict[str, Any]:
    return {"name": tenant.name, "slug": tenant.slug, "metadata": tenant.meta}


async def create_tenant(
    session: AsyncSession,
    actor: Actor,
    name: str,
    slug: str | None = None,
    meta: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
) -> Tenant:
    """Create a tenant (platform keys only). ``tenant_id`` fixes the id in advance (bootstrap)."""
    if not actor.is_platform:
        raise Forbidden("only platform keys can create tenants")
    slug = slug or slugify(name)
    if not SLUG_RE.match(slug):
        raise ValidationFailed("slug must be lowercase letters, digits and dashes", field="slug")
    now = utcnow()
    tenant = Tenant(
        id=tenant_id or new_id("ten"), name=name, slug=slug, meta=meta or {}, created_at=now, updated_at=now
    )
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a tenant with slug {slug!r} exists already") from exc
    audit.record(
        session,
        actor,
        "tenant.created",
        "tenant",
        tenant.id,
        audit.diff({}, _snapshot(tenant)),
        tenant_id=tenant.id,
    )
    return tenant


async def get_tenant(session: AsyncSession, actor: Actor, tenant_id: str) -> Tenant:
    """A tenant the actor may see: any for platform keys, only its own for tenant keys."""
    if not actor.is_platform and tenant_id != actor.tenant_id:
        raise NotFound(f"tenant {tenant_id} not found")
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return tenant


async def tenant_exists(session: AsyncSession, tenant_id: str) -> bool:
    return (await session.scalar(sa.select(Tenant.id).where(Tenant.id == tenant_id))) is not None


async def list_tenants(session: AsyncSession, actor: Actor, page: PageRequest) -> Page[Tenant]:
    """Every tenant for platform keys; just the caller's own for tenant keys."""
    stmt = sa.select(Tenant)
    if not actor.is_platform:
        stmt = stmt.where(Tenant.id == actor.tenant_id)
    rows = (await session.scalars(paginate_query(stmt, Tenant.id, page))).all()
    return make_page(rows, page, lambda t: t.id)


async def update_tenant(
    session: AsyncSession, actor: Actor, tenant_id: str, *, name: str | None, meta: dict[str, Any] | None
) -> Tenant:
    """Rename a tenant or replace its metadata."""
    if not actor.is_platform:
        raise Forbidden("only platform keys can change tenants")
    tenant = await get_tenant(session, actor, tenant_id)
    before = _snapshot(tenant)
    if name is not None:
        tenant.name = name
    if meta is not None:
        tenant.meta = meta
    tenant.updated_at = utcnow()
    audit.record(
        session,
        actor,
        "tenant.updated",
        "tenant",
        tenant.id,
        audit.diff(before, _snapshot(tenant)),
        tenant_id=tenant.id,
    )
    return tenant


async def first_tenant_id(session: AsyncSession) -> str | None:
    return await session.scalar(sa.select(Tenant.id).order_by(Tenant.id).limit(1))
