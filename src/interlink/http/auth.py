"""Authentication and authorisation for every route.

``Authorization: Bearer <key>`` is verified by :class:`~interlink.keys.service.KeyVerifier` with the
scope the route needs. A platform key may name another tenant with ``X-Tenant-Id``; a tenant key
naming any tenant but its own gets 404, as if the tenant did not exist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from fastapi import Depends, Header, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.context import current_correlation_id
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import Forbidden, NotFound, RateLimited, Unauthorized
from interlink.core.ids import is_id
from interlink.core.tenancy import tenant_exists
from interlink.keys.security import SecurityContext, SecurityEventType
from interlink.keys.service import VerifyCode
from interlink.runtime import Runtime

bearer_scheme = HTTPBearer(auto_error=False, description="An Interlink API key: `il_live_...`")

_UNAUTHORIZED_DETAIL = {
    VerifyCode.MALFORMED: "the API key is malformed or its checksum is wrong",
    VerifyCode.UNKNOWN: "the API key is not known",
    VerifyCode.EXPIRED: "the API key has expired",
    VerifyCode.REVOKED: "the API key has been revoked",
}


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_ip(request: Request, runtime: Runtime) -> str | None:
    """The caller's IP; ``X-Forwarded-For`` is believed only from configured trusted proxies."""
    peer = request.client.host if request.client else None
    return resolve_client_ip(peer, request.headers.get("x-forwarded-for"), runtime)


def resolve_client_ip(peer: str | None, forwarded: str | None, runtime: Runtime) -> str | None:
    """The client IP from the peer address and ``X-Forwarded-For`` (trusted proxies only). An
    IPv4-mapped IPv6 address (``::ffff:203.0.113.9``: a server listening on ``::`` and reached over
    IPv4) is given as its IPv4 address, so IPv4 ranges (key IP allowlists, trusted proxies, inbound
    allowlists) match it and the same client has one address whatever socket it came in on."""
    if peer and peer[:7].lower() == "::ffff:":
        peer = _unmapped_text(peer)
    trusted = runtime.trusted_proxy_networks
    if not peer or not trusted:
        return peer
    try:
        if not any(ipaddress.ip_address(peer) in net for net in trusted):
            return peer
    except ValueError:
        return peer
    for hop in reversed([h.strip() for h in (forwarded or "").split(",") if h.strip()]):
        try:
            address = _unmapped(ipaddress.ip_address(hop))
        except ValueError:
            return peer
        if not any(address in net for net in trusted):
            return str(address)
    return peer


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmapped_text(text: str) -> str:
    try:
        return str(_unmapped(ipaddress.ip_address(text)))
    except ValueError:
        return text


async def _resolve_tenant(runtime: Runtime, actor: Actor, requested: str | None) -> Actor:
    if requested is None or requested == actor.home_tenant_id:
        return actor
    if not actor.is_platform or not is_id(requested, "ten"):
        raise NotFound(f"tenant {requested} not found")
    if requested not in runtime.known_tenants:
        async with runtime.db.unit_of_work(write=False) as session:
            if not await tenant_exists(session, requested):
                raise NotFound(f"tenant {requested} not found")
        runtime.known_tenants.add(requested)
    return actor.for_tenant(requested)


async def authenticate(
    runtime: Runtime,
    *,
    key: str | None,
    tenant_header: str | None,
    scope: ApiKeyScope | None,
    ip: str | None,
    user_agent: str | None,
    method: str,
    path: str,
) -> tuple[Actor, dict[str, str]]:
    """Verify the presented key for ``scope`` (``None``: any valid key) and resolve the tenant acted for.

    Returns the actor and the ``RateLimit-*`` headers to send (empty for unlimited keys). Raises
    401 (missing, malformed, unknown, expired, revoked), 403 (ip_denied, insufficient_scope),
    429 (rate_limited) or 404 (a tenant the key may not act for). Every failure is a security
    event; a platform key reading another tenant's data writes a ``platform.accessed`` audit row.
    """
    context = SecurityContext(ip, user_agent, current_correlation_id())
    if key is None:
        await runtime.security.failure(
            SecurityEventType.AUTH_FAILED,
            tenant_id=None,
            key_id=None,
            key_prefix=None,
            context=context,
            reason="missing",
        )
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'", reason="missing")
    required = (scope.value,) if scope is not None else ()
    result = await runtime.verifier.verify(key, ip=ip, context=context, required_scopes=required)
    rate_headers = result.rate_limit.headers if result.rate_limit is not None else {}
    if result.code in _UNAUTHORIZED_DETAIL:
        raise Unauthorized(_UNAUTHORIZED_DETAIL[result.code], reason=result.code.value)
    if result.code is VerifyCode.IP_DENIED:
        raise Forbidden("this key may not be used from your IP address", extra={"reason": "ip_denied"})
    if result.code is VerifyCode.INSUFFICIENT_SCOPE:
        lacking = scope.value if scope is not None else "?"
        raise Forbidden(f"this key lacks the scope {lacking!r}", extra={"reason": "insufficient_scope"})
    if result.code is VerifyCode.RATE_LIMITED:
        assert result.rate_limit is not None
        raise RateLimited(
            "rate limit exceeded for this key",
            retry_after=max(1, result.rate_limit.reset_seconds),
            headers=rate_headers,
        )
    cached = result.key
    assert cached is not None
    actor = Actor(
        tenant_id=cached.tenant_id,
        key_id=cached.id,
        home_tenant_id=cached.tenant_id,
        kind=cached.kind,
        scopes=cached.scopes,
        source_ip=ip,
        user_agent=user_agent,
        correlation_id=context.correlation_id,
    )
    actor = await _resolve_tenant(runtime, actor, tenant_header)
    if actor.acts_for_other_tenant and method in ("GET", "HEAD"):
        path = path.replace("\x00", "\ufffd")  # %00 in the URL: no database stores a NUL in text
        async with runtime.db.unit_of_work() as session:
            audit.record(
                session,
                actor,
                "platform.accessed",
                "route",
                path[:80],  # resource_id holds 80 characters; the full path is in the changes
                {"method": {"old": None, "new": method}, "path": {"old": None, "new": path[:2000]}},
            )
    return actor, rate_headers


def require(scope: ApiKeyScope | None) -> Callable[..., Awaitable[Actor]]:
    """A dependency that authenticates the caller and checks it holds ``scope``.

    ``None`` accepts any valid key whatever its scopes (service-wide reference data such as the
    provider catalogue); the key's status, IP ranges and rate limit still apply.
    """

    async def dependency(
        request: Request,
        response: Response,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        x_tenant_id: str | None = Header(
            default=None, max_length=64, description="Platform keys: the tenant to act for."
        ),
    ) -> Actor:
        runtime = get_runtime(request)
        actor, rate_headers = await authenticate(
            runtime,
            key=credentials.credentials if credentials is not None else None,
            tenant_header=x_tenant_id,
            scope=scope,
            ip=client_ip(request, runtime),
            user_agent=request.headers.get("user-agent"),
            method=request.method,
            path=request.url.path,
        )
        response.headers.update(rate_headers)
        return actor

    return dependency


def require_platform(scope: ApiKeyScope) -> Callable[..., Awaitable[Actor]]:
    """Like :func:`require`, and the key must be a platform key.

    A tenant key gets 404 when the path names another tenant (``tenant_id``), 403 otherwise.
    """
    base = require(scope)

    async def dependency(request: Request, actor: Actor = Depends(base)) -> Actor:
        if not actor.is_platform:
            named = request.path_params.get("tenant_id")
            if named is not None and named != actor.tenant_id:
                # Another tenant does not exist for a tenant key, whatever the operation.
                raise NotFound(f"tenant {named} not found")
            raise Forbidden("this operation needs a platform key", extra={"reason": "platform_only"})
        return actor

    return dependency
