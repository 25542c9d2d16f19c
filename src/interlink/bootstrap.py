"""First start: create the ``default`` tenant and a platform admin key, once."""

from __future__ import annotations

from dataclasses import dataclass

from interlink.core.actor import system_actor
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import Conflict
from interlink.core.ids import new_id
from interlink.core.tenancy import create_tenant, first_tenant_id
from interlink.keys.service import KeySpec
from interlink.runtime import Runtime


@dataclass(frozen=True)
class BootstrapResult:
    tenant_id: str
    key_id: str
    key: str


async def bootstrap_if_empty(runtime: Runtime) -> BootstrapResult | None:
    """When no tenant exists, create ``default`` and an admin platform key (returned once).

    Safe to run from several processes at once: the tenant slug is unique, so only one wins.
    """
    async with runtime.db.unit_of_work(write=False) as session:
        if await first_tenant_id(session) is not None:
            return None
    try:
        async with runtime.db.unit_of_work() as session:
            actor = system_actor(new_id("ten"))  # the system acting in the tenant it creates
            tenant = await create_tenant(
                session, actor, "Default", "default", {"bootstrap": True}, tenant_id=actor.tenant_id
            )
            key, plaintext = await runtime.keys.create(
                session,
                actor,
                KeySpec(
                    name="admin (created at first start)", scopes=[ApiKeyScope.ADMIN.value], kind="platform"
                ),
            )
    except Conflict:
        return None
    return BootstrapResult(tenant_id=tenant.id, key_id=key.id, key=plaintext)
