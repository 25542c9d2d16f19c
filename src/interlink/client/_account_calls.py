"""The requests of tenants, keys, audit and security events and secrets, as :class:`Call` s.

Pure functions shared by the blocking resources (:mod:`interlink.client._sync`) and their asyncio
twins (:mod:`interlink.client._async`), which only send what these build.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from interlink.client._base import (
    Call,
    NotGiven,
    body,
    call,
    item_path,
    page_call,
    query,
    rate_limit_body,
    scope_list,
)
from interlink.client.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiSecurityAuditEvent,
    AuditEventInfo,
    Page,
    SecretInfo,
)
from interlink.core.enums import ApiKeyScope, IntegrationEnvironment, TokenType

TENANTS = "/v1/tenants"
KEYS = "/v1/keys"
SECRETS = "/v1/secrets"


def create_key(
    name: str,
    scopes: Sequence[ApiKeyScope | str],
    kind: str,
    environment: IntegrationEnvironment | str | None,
    expires_at: datetime | None,
    metadata: dict[str, Any] | None,
    allowed_ips: Sequence[str] | None,
    rate_limit: int | None,
    rate_limit_period_seconds: int | None,
    tenant_id: str | None,
) -> Call[ApiKeyCreated]:
    payload = body(
        {
            "name": name,
            "scopes": scope_list(scopes),
            "kind": kind,
            "environment": environment,
            "expiresAt": expires_at,
            "metadata": metadata,
            "allowedIps": list(allowed_ips) if allowed_ips is not None else None,
            "rateLimit": rate_limit_body(rate_limit, rate_limit_period_seconds),
        },
        drop_none=True,
    )
    return call(ApiKeyCreated, "POST", KEYS, json=payload, tenant_id=tenant_id)


def update_key(
    key_id: str,
    name: str | NotGiven,
    scopes: Sequence[ApiKeyScope | str] | NotGiven,
    expires_at: datetime | NotGiven | None,
    metadata: dict[str, Any] | NotGiven,
    allowed_ips: Sequence[str] | NotGiven,
    rate_limit: int | NotGiven | None,
    rate_limit_period_seconds: int | None,
    tenant_id: str | None,
) -> Call[ApiKeyInfo]:
    payload = body(
        {
            "name": name,
            "scopes": scope_list(scopes) if not isinstance(scopes, NotGiven) else scopes,
            "expiresAt": expires_at,
            "metadata": metadata,
            "allowedIps": list(allowed_ips) if not isinstance(allowed_ips, NotGiven) else allowed_ips,
            "rateLimit": rate_limit_body(rate_limit, rate_limit_period_seconds),
        },
        drop_none=False,
    )
    return call(ApiKeyInfo, "PATCH", item_path(KEYS, key_id), json=payload, tenant_id=tenant_id)


def list_audit_events(
    limit: int,
    after: str | None,
    action: str | None,
    resource_type: str | None,
    resource_id: str | None,
    actor_key_id: str | None,
    correlation_id: str | None,
    since: datetime | None,
    until: datetime | None,
    tenant_id: str | None,
) -> Call[Page[AuditEventInfo]]:
    params = query(
        {
            "limit": limit,
            "after": after,
            "action": action,
            "resourceType": resource_type,
            "resourceId": resource_id,
            "actorKeyId": actor_key_id,
            "correlationId": correlation_id,
            "since": since,
            "until": until,
        }
    )
    return page_call(AuditEventInfo, "/v1/audit-events", params, tenant_id)


def list_security_events(
    limit: int,
    after: str | None,
    event_type: str | None,
    key_id: str | None,
    source_ip: str | None,
    min_risk: int | None,
    since: datetime | None,
    until: datetime | None,
    tenant_id: str | None,
) -> Call[Page[ApiSecurityAuditEvent]]:
    params = query(
        {
            "limit": limit,
            "after": after,
            "eventType": event_type,
            "keyId": key_id,
            "sourceIp": source_ip,
            "minRisk": min_risk,
            "since": since,
            "until": until,
        }
    )
    return page_call(ApiSecurityAuditEvent, "/v1/security-events", params, tenant_id)


def create_secret(
    name: str,
    value: str,
    token_type: TokenType | str,
    owner_type: str | None,
    owner_id: str | None,
    metadata: dict[str, Any] | None,
    rotate_by: datetime | None,
    expires_at: datetime | None,
    tenant_id: str | None,
) -> Call[SecretInfo]:
    payload = body(
        {
            "name": name,
            "value": value,
            "tokenType": token_type,
            "ownerType": owner_type,
            "ownerId": owner_id,
            "metadata": metadata,
            "rotateBy": rotate_by,
            "expiresAt": expires_at,
        },
        drop_none=True,
    )
    return call(SecretInfo, "POST", SECRETS, json=payload, tenant_id=tenant_id)
