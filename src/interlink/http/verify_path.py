"""``POST /v1/keys/verify``: the shared implementation and its direct route.

Host applications call verify on every request they serve, so it is the hottest route of the
service. :class:`KeyVerifyRoute` answers it as a direct route (:mod:`interlink.http.direct`):
without FastAPI's routing, dependency injection and response validation (which cost about five
times the verification itself), calling exactly the same :func:`authenticate` and
:func:`verify_for` as the documented FastAPI route. Only requests whose body parses and validates
are answered here; anything else (malformed JSON, invalid fields, another content type, an
over-long ``X-Tenant-Id``) goes to the FastAPI route, which answers with its usual 400/422
problems. Nothing with a side effect happens before that decision, so no request is
authenticated twice.
"""

from __future__ import annotations

from interlink.core.actor import Actor
from interlink.core.context import current_correlation_id
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError
from interlink.http.auth import authenticate
from interlink.http.direct import (
    DirectRequest,
    DirectResponse,
    DirectRoute,
    RouteLabel,
    bearer,
    caller_ip,
    tenant_header_fits,
    text_header,
    validated_body,
)
from interlink.http.errors import interlink_problem
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


class KeyVerifyRoute(DirectRoute):
    """``POST /v1/keys/verify`` as a direct route (see the module doc)."""

    label = RouteLabel(VERIFY_PATH)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def matches(self, path: str) -> bool:
        return path == VERIFY_PATH

    async def __call__(self, request: DirectRequest) -> DirectResponse | None:
        body = validated_body(request, VerifyKeyRequest)
        if body is None or not tenant_header_fits(request):
            return None
        ip = caller_ip(request, self.runtime)
        user_agent = text_header(request, b"user-agent")
        try:
            actor, rate_headers = await authenticate(
                self.runtime,
                key=bearer(request.headers.get(b"authorization")),
                tenant_header=text_header(request, b"x-tenant-id"),
                scope=ApiKeyScope.KEYS_VERIFY,
                ip=ip,
                user_agent=user_agent,
                method="POST",
                path=VERIFY_PATH,
            )
            answer = await verify_for(self.runtime, actor, body, caller_ip=ip, user_agent=user_agent)
        except InterlinkError as exc:
            return DirectResponse.of(interlink_problem(exc, VERIFY_PATH))
        return DirectResponse.json(answer.model_dump_json(by_alias=True).encode(), rate_headers)
