"""Who is acting: the authenticated key, its home tenant, and the tenant it acts for."""

from __future__ import annotations

from dataclasses import dataclass, field

from interlink.core.enums import ApiKeyScope


@dataclass(frozen=True)
class Actor:
    """The principal of a request or job.

    ``tenant_id`` is the tenant every query is scoped to. For a platform key naming another tenant
    (``X-Tenant-Id``) it differs from ``home_tenant_id``; audit rows then carry both.
    """

    tenant_id: str
    key_id: str | None
    home_tenant_id: str
    kind: str = "tenant"
    scopes: frozenset[str] = field(default_factory=frozenset)
    actor_type: str = "api_key"
    source_ip: str | None = None
    user_agent: str | None = None
    correlation_id: str | None = None

    @property
    def is_platform(self) -> bool:
        return self.kind == "platform"

    @property
    def acts_for_other_tenant(self) -> bool:
        return self.tenant_id != self.home_tenant_id

    def has_scope(self, scope: ApiKeyScope | str) -> bool:
        return ApiKeyScope.ADMIN.value in self.scopes or str(scope) in self.scopes

    def for_tenant(self, tenant_id: str) -> Actor:
        """The same principal acting for another tenant."""
        return Actor(
            tenant_id=tenant_id,
            key_id=self.key_id,
            home_tenant_id=self.home_tenant_id,
            kind=self.kind,
            scopes=self.scopes,
            actor_type=self.actor_type,
            source_ip=self.source_ip,
            user_agent=self.user_agent,
            correlation_id=self.correlation_id,
        )


def system_actor(tenant_id: str, *, correlation_id: str | None = None) -> Actor:
    """The service itself (bootstrap, CLI maintenance, scheduled jobs)."""
    return Actor(
        tenant_id=tenant_id,
        key_id=None,
        home_tenant_id=tenant_id,
        kind="platform",
        scopes=frozenset({ApiKeyScope.ADMIN.value}),
        actor_type="system",
        correlation_id=correlation_id,
    )
