"""API key types of the guide (ApiKeyInfo, ApiSecurityAuditEvent) and their requests."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator

from interlink.core.enums import ApiKeyScope, ApiKeyStatus, IntegrationEnvironment
from interlink.core.schemas import ApiModel, RequestModel


class RateLimitConfig(RequestModel):
    """At most ``limit`` uses per ``periodSeconds`` (sliding window)."""

    limit: int = Field(ge=1, le=1_000_000_000)
    period_seconds: int = Field(default=60, ge=1, le=86_400)


class RateLimitInfo(ApiModel):
    limit: int
    period_seconds: int


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[ApiKeyScope] = Field(min_length=1, max_length=len(ApiKeyScope))
    kind: Literal["tenant", "platform"] = "tenant"
    environment: IntegrationEnvironment | None = None
    expires_at: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    allowed_ips: list[str] = Field(default_factory=list, max_length=100)
    rate_limit: RateLimitConfig | None = None


class ApiKeyUpdate(RequestModel):
    """Change a key. Send ``expiresAt: null`` or ``rateLimit: null`` to remove them."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[ApiKeyScope] | None = Field(default=None, min_length=1, max_length=len(ApiKeyScope))
    expires_at: AwareDatetime | None = None
    metadata: dict[str, Any] | None = None
    allowed_ips: list[str] | None = Field(default=None, max_length=100)
    rate_limit: RateLimitConfig | None = None


class ApiKeyRotate(RequestModel):
    grace_period_seconds: int | None = Field(default=None, ge=0, le=2_592_000)


class ApiKeyRevoke(RequestModel):
    reason: str | None = Field(default=None, max_length=500)


class ApiKeyInfo(ApiModel):
    """A key as stored: never the key itself, only its display ``prefix``."""

    id: str
    tenant_id: str
    kind: str
    name: str
    prefix: str
    environment: IntegrationEnvironment
    scopes: list[str]
    status: ApiKeyStatus
    expires_at: datetime | None
    grace_until: datetime | None
    rotated_from_id: str | None
    rotated_to_id: str | None
    revoked_at: datetime | None
    revoked_reason: str | None
    last_used_at: datetime | None
    last_used_ip: str | None
    usage_count: int
    metadata: dict[str, Any]
    allowed_ips: list[str]
    rate_limit: RateLimitInfo | None
    created_by_key_id: str | None
    created_at: datetime
    updated_at: datetime


class ApiKeyCreated(ApiKeyInfo):
    """Returned once, on creation or rotation: ``key`` is never shown again."""

    key: str


class ApiKeyRotated(ApiModel):
    old_key: ApiKeyInfo
    new_key: ApiKeyCreated


class VerifyKeyRequest(RequestModel):
    key: str = Field(min_length=1, max_length=512)
    scopes: list[ApiKeyScope] = Field(default_factory=list, max_length=len(ApiKeyScope))
    ip: str | None = Field(
        default=None, max_length=64, description="The end client's IP address, for allowed ranges."
    )

    @field_validator("ip")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError as exc:
            raise ValueError("must be an IPv4 or IPv6 address") from exc


class VerifyRateLimit(ApiModel):
    limit: int
    remaining: int
    reset_seconds: int


class VerifyKeyResponse(ApiModel):
    valid: bool
    code: str
    key_id: str | None = None
    tenant_id: str | None = None
    name: str | None = None
    kind: str | None = None
    environment: str | None = None
    scopes: list[str] | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None
    missing_scopes: list[str] | None = None
    rate_limit: VerifyRateLimit | None = None


class ApiSecurityAuditEvent(ApiModel):
    """A security-relevant act with a key; ``riskScore`` is documented in keys/security.py."""

    id: str
    tenant_id: str | None
    key_id: str | None
    key_prefix: str | None
    event_type: str
    reason: str | None
    source_ip: str | None
    user_agent: str | None
    correlation_id: str | None
    risk_score: int
    details: dict[str, Any]
    occurred_at: datetime


def key_info(row: Any, status: ApiKeyStatus) -> dict[str, Any]:
    """Fields of :class:`ApiKeyInfo` from an ``ApiKey`` row and its effective status."""
    return {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "kind": row.kind,
        "name": row.name,
        "prefix": row.prefix,
        "environment": row.environment,
        "scopes": list(row.scopes),
        "status": status,
        "expires_at": row.expires_at,
        "grace_until": row.grace_until,
        "rotated_from_id": row.rotated_from_id,
        "rotated_to_id": row.rotated_to_id,
        "revoked_at": row.revoked_at,
        "revoked_reason": row.revoked_reason,
        "last_used_at": row.last_used_at,
        "last_used_ip": row.last_used_ip,
        "usage_count": row.usage_count,
        "metadata": row.meta,
        "allowed_ips": list(row.allowed_ips),
        "rate_limit": (
            RateLimitInfo(limit=row.rate_limit, period_seconds=row.rate_limit_period_seconds)
            if row.rate_limit is not None and row.rate_limit_period_seconds is not None
            else None
        ),
        "created_by_key_id": row.created_by_key_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
