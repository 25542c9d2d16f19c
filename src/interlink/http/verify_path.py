"""``POST /v1/keys/verify``: the shared implementation and its direct ASGI path.

Host applications call verify on every request they serve, so it is the hottest route of the
service. :class:`KeyVerifyFastPath` answers it without FastAPI's routing, dependency injection and
response validation (which cost about five times the verification itself), calling exactly the
same :func:`authenticate` and :func:`verify_for` as the documented FastAPI route. Only requests
whose body parses and validates are answered here; anything else (malformed JSON, invalid fields,
another content type, an over-long ``X-Tenant-Id``) is passed on, untouched, to the FastAPI route,
which answers with its usual 400/422 problems. Nothing with a side effect happens before that
decision, so no request is authenticated twice.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.core.actor import Actor
from interlink.core.context import current_correlation_id
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError
from interlink.http.auth import authenticate
from interlink.http.errors import interlink_problem
from interlink.http.fast_path import (
    MAX_TENANT_HEADER,
    RouteLabel,
    bearer,
    caller_ip,
    is_json,
    read_request,
    replay,
)
from interlink.keys.schemas import VerifyKeyRequest, VerifyKeyResponse, VerifyRateLimit
from interlink.keys.security import SecurityContext
from interlink.keys.service import VerifyCode
from interlink.runtime import Runtime

VERIFY_PATH = "/v1/keys/verify"


async def verify_for(
    runtime: Runtime, actor: Actor, body: VerifyKeyRequest, *, caller_ip: str | None, user_agent: str | None
) -> VerifyKeyResponse:
    """Verify ``body.key`` on behalf of ``actor`` (the host application's key).

    Platform keys verify keys of any tenant (or only of the tenant they act for); tenant keys only
    their own tenant's. Counts one use of the verified key against its rate limit.
    """
    restrict = None if actor.is_platform and not actor.acts_for_other_tenant else actor.tenant_id
    context = SecurityContext(body.ip or caller_ip, user_agent, current_correlation_id())
    result = await runtime.verifier.verify(
        body.key,
        ip=body.ip,
        context=context,
        required_scopes=[s.value for s in body.scopes],
        restrict_tenant=restrict,
    )
    key = result.key if result.code is not VerifyCode.UNKNOWN else None
    rate = result.rate_limit
    return VerifyKeyResponse(
        valid=result.valid,
        code=result.code.value,
        key_id=key.id if key else None,
        tenant_id=key.tenant_id if key else None,
        name=key.name if key else None,
        kind=key.kind if key else None,
        environment=key.environment if key else None,
        scopes=sorted(key.scopes) if key else None,
        metadata=key.meta if key and result.valid else None,
        expires_at=key.expires_at_dt if key else None,
        missing_scopes=list(result.missing_scopes) or None,
        rate_limit=VerifyRateLimit(
            limit=rate.limit, remaining=rate.remaining, reset_seconds=rate.reset_seconds
        )
        if rate
        else None,
    )


_ROUTE = RouteLabel(VERIFY_PATH)


class KeyVerifyFastPath:
    """ASGI middleware serving ``POST /v1/keys/verify`` directly (see the module docstring)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != VERIFY_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        read = await read_request(scope, receive)
        if read is None:
            return  # the client went away
        body, headers = read
        parsed = self._parse(headers, body)
        if parsed is None:
            await self.app(scope, replay(body, receive), send)
            return
        request_body, key, tenant_header, user_agent = parsed
        scope["route"] = _ROUTE
        ip = caller_ip(scope, headers, self.runtime)
        response: Response
        try:
            actor, rate_headers = await authenticate(
                self.runtime,
                key=key,
                tenant_header=tenant_header,
                scope=ApiKeyScope.KEYS_VERIFY,
                ip=ip,
                user_agent=user_agent,
                method="POST",
                path=VERIFY_PATH,
            )
            answer = await verify_for(self.runtime, actor, request_body, caller_ip=ip, user_agent=user_agent)
            response = Response(
                answer.model_dump_json(by_alias=True), media_type="application/json", headers=rate_headers
            )
        except InterlinkError as exc:
            response = interlink_problem(exc, VERIFY_PATH)
        await response(scope, receive, send)

    @staticmethod
    def _parse(
        headers: dict[bytes, bytes], body: bytes
    ) -> tuple[VerifyKeyRequest, str | None, str | None, str | None] | None:
        """The validated body and auth inputs, or None when the FastAPI route should answer."""
        if not is_json(headers.get(b"content-type", b"")):
            return None
        try:
            request_body = VerifyKeyRequest.model_validate_json(body)
        except ValidationError:
            return None
        tenant = headers.get(b"x-tenant-id")
        if tenant is not None and len(tenant) > MAX_TENANT_HEADER:
            return None
        key = bearer(headers.get(b"authorization"))
        agent = headers.get(b"user-agent")
        return (
            request_body,
            key,
            tenant.decode("latin-1") if tenant is not None else None,
            agent.decode("latin-1") if agent is not None else None,
        )
