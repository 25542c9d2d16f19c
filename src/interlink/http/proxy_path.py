"""``POST /v1/connections/{id}/proxy``: the shared implementation and its direct route.

The proxy is on the request path of the host application's own calls to providers, so it is a hot
route. :class:`ConnectionProxyRoute` answers it as a direct route (:mod:`interlink.http.direct`):
without FastAPI's routing (which walks every router of the app), dependency injection and
response-model validation, calling exactly the same :func:`~interlink.http.auth.authenticate`
(scope ``connections:write``) and :func:`proxy_for` as the documented FastAPI route. Only requests
whose body parses and validates as :class:`ProxyCall` and whose connection id and ``X-Tenant-Id``
are within bounds are answered here; anything else goes to the FastAPI route, which answers with
its usual 400/422 problems. Nothing with a side effect happens before that decision.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic_core import to_json
from starlette.responses import Response

from interlink.connections import proxy
from interlink.connections.connection_schemas import ProxyCall
from interlink.core.actor import Actor
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
from interlink.runtime import Runtime

PREFIX: Final = "/v1/connections/"
SUFFIX: Final = "/proxy"
MAX_CONNECTION_ID: Final = 64
"""As the route's ``connection_id`` path parameter (``max_length=64``)."""


async def proxy_for(runtime: Runtime, actor: Actor, connection_id: str, body: ProxyCall) -> dict[str, Any]:
    """Send ``body`` through the connection and describe the provider's answer (see
    :mod:`interlink.connections.proxy` for the contracts): the JSON object of :class:`ProxyAnswer`."""
    call = proxy.ProxyRequest(
        method=body.method,
        path=body.path,
        query=body.query,
        headers=body.headers,
        body=body.body if "body" in body.model_fields_set else proxy.NO_BODY,
        form=body.form,
        idempotency_key=body.idempotency_key,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
    )
    result = await proxy.send(runtime.connection_clients, actor, connection_id, call)
    response = result.response
    timing = response.timing
    limit = response.rate_limit
    # Built as the JSON object itself: every value comes from our own typed objects, so building
    # the model (and validating it again) would only cost time. A test holds it to ProxyAnswer.
    return {
        "status": response.status,
        "ok": response.ok,
        "headers": result.headers,
        "data": result.data,
        "bodyBase64": result.body_base64,
        "truncated": response.truncated,
        "errorClass": response.error_class,
        "requestId": response.request_id,
        "attempts": response.attempts,
        "durationMs": round(response.duration_ms, 3),
        "retryAfterSeconds": response.retry_after_seconds,
        "timing": {  # to the microsecond, as durationMs
            "dnsMs": round(timing.dns_ms, 3),
            "connectMs": round(timing.connect_ms, 3),
            "tlsMs": round(timing.tls_ms, 3),
            "firstByteMs": round(timing.first_byte_ms, 3),
            "totalMs": round(timing.total_ms, 3),
            "reused": timing.reused,
        },
        "rateLimit": None
        if limit is None
        else {"limit": limit.limit, "remaining": limit.remaining, "resetSeconds": limit.reset_seconds},
    }


def answer_response(answer: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The JSON response of ``answer`` (from :func:`proxy_for`)."""
    return Response(to_json(answer), media_type="application/json", headers=headers)


def connection_id_of(path: str) -> str | None:
    """The ``{id}`` of ``/v1/connections/{id}/proxy`` (None for any other path)."""
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    connection_id = path[len(PREFIX) : -len(SUFFIX)]
    if not connection_id or "/" in connection_id or len(connection_id) > MAX_CONNECTION_ID:
        return None
    return connection_id


class ConnectionProxyRoute(DirectRoute):
    """``POST /v1/connections/{id}/proxy`` as a direct route (see the module doc)."""

    label = RouteLabel(PREFIX + "{connection_id}" + SUFFIX)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def matches(self, path: str) -> bool:
        return connection_id_of(path) is not None

    async def __call__(self, request: DirectRequest) -> DirectResponse | None:
        connection_id = connection_id_of(request.path)
        call = validated_body(request, ProxyCall)
        if connection_id is None or call is None or not tenant_header_fits(request):
            return None
        try:
            actor, rate_headers = await authenticate(
                self.runtime,
                key=bearer(request.headers.get(b"authorization")),
                tenant_header=text_header(request, b"x-tenant-id"),
                scope=ApiKeyScope.CONNECTIONS_WRITE,
                ip=caller_ip(request, self.runtime),
                user_agent=text_header(request, b"user-agent"),
                method="POST",
                path=request.path,
            )
            answer = await proxy_for(self.runtime, actor, connection_id, call)
        except InterlinkError as exc:
            return DirectResponse.of(interlink_problem(exc, request.path))
        return DirectResponse.json(to_json(answer), rate_headers)
