"""``POST /v1/connections/{id}/proxy``: the shared implementation and its direct route.

The proxy is on the request path of the host application's own calls to providers, so it is a hot
route. :class:`ConnectionProxyRoute` answers it as a direct route (:mod:`interlink.http.direct`):
without FastAPI's routing (which walks every router of the app), dependency injection and
response-model validation, calling exactly the same :func:`~interlink.http.auth.authenticate`
(scope ``connections:write``) and :func:`proxy_for` as the documented FastAPI route. Only requests
whose body parses and validates as :class:`ProxyCall` and whose connection id and ``X-Tenant-Id``
are within bounds are answered here; anything else goes to the FastAPI route, which answers with
its usual 400/422 problems. Nothing with a side effect happens before that decision.

**The passthrough form**, ``/v1/connections/{id}/proxy/{path}`` (GET, HEAD, OPTIONS, POST, PUT, PATCH,
DELETE), is
the same call made the way the host would make it to the provider itself: the method, ``{path}``
(joined to the connection's base URL, percent escapes kept), the query string (as it came, less a
parameter the connection's credentials set), the body as bytes and a few headers are passed on,
and the provider's answer comes back as it is. Its contracts:

* Passed on: ``Content-Type``, ``Accept`` and ``Accept-Language``, and every header named
  ``Interlink-Proxy-<Name>`` as ``<Name>`` (the lines of a repeated one joined with ``", "``, in
  order), with ``Idempotency-Key`` (its first line). Nothing
  else of the caller's, the Interlink key in ``Authorization`` least of all. Hop-by-hop and framing
  names are refused (422) as in the JSON form, and the connection's credentials win.
* Controls: ``Interlink-Max-Attempts`` (1-5, default 3) and ``Interlink-Timeout-Seconds`` (per
  attempt, a decimal number, at most 120); an invalid value is a 422 naming the header. A query
  string that is not ASCII (not percent-encoded), or holds ``#``, is a 422 naming ``query``.
* The answer: the provider's status, headers and body (decoded when it came compressed), without
  hop-by-hop and framing headers, ``Set-Cookie`` and any ``Interlink-*``, ``X-Correlation-Id`` or
  ``Date`` of the provider's (the server sends its own); plus ``Interlink-Request-Id`` (the
  request log row), ``Interlink-Attempts``, ``Interlink-Duration-Ms``, the key's rate-limit
  headers as ``Interlink-RateLimit-*`` (the provider's own ``RateLimit-*`` pass unchanged) and
  ``X-Correlation-Id``. An answer to HEAD has no body and keeps the provider's ``Content-Length``
  (the length its GET would have), unless the provider's answer was compressed: the GET through
  the proxy comes decoded, of another length, so then there is none.
* An answer larger than the connection's response limit is not passed on cut short: 502 with
  ``errorClass: too_large``; a status outside 200-599 is a 502 too (``errorClass: other``). No
  answer at all is 502/503/504 as in the JSON form. Interlink's own answers (these, and
  401/403/404/422/429) are ``application/problem+json``.
* :class:`ConnectionPassthroughRoute` serves it directly unless the path holds a percent escape, the
  body is chunked or above the body limit, or ``X-Tenant-Id`` is too long; the framework route
  (``proxy_passthrough`` in :mod:`interlink.http.routers.connections`) serves those with the same
  :func:`passthrough_answer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic_core import PydanticSerializationError, to_json
from starlette.responses import Response

from interlink.connections import proxy
from interlink.connections.connection_schemas import ProxyCall
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError, UpstreamFailed, ValidationFailed
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
from interlink.outbound.response import ApiResponse
from interlink.runtime import Runtime

PREFIX: Final = "/v1/connections/"
SUFFIX: Final = "/proxy"
MAX_CONNECTION_ID: Final = 64
"""As the route's ``connection_id`` path parameter (``max_length=64``)."""
PASSTHROUGH_MARK: Final = "/proxy/"
PASSTHROUGH_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
PASSED_ON_HEADERS: Final = frozenset({b"content-type", b"accept", b"accept-language"})
PASSED_ON_PREFIX: Final = b"interlink-proxy-"
MAX_ATTEMPTS_HEADER: Final = "Interlink-Max-Attempts"
TIMEOUT_HEADER: Final = "Interlink-Timeout-Seconds"
_DECIMAL: Final = re.compile(rb"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_SET_BY_INTERLINK: Final = frozenset({"x-correlation-id", "date"})
"""Provider headers the passthrough answer does not pass on, as the server sets its own."""


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


async def authenticated(runtime: Runtime, request: DirectRequest) -> tuple[Actor, dict[str, str]]:
    """:func:`~interlink.http.auth.authenticate` for a proxy call (scope ``connections:write``):
    the actor and the key's rate-limit headers."""
    return await authenticate(
        runtime,
        key=bearer(request.headers.get(b"authorization")),
        tenant_header=text_header(request, b"x-tenant-id"),
        scope=ApiKeyScope.CONNECTIONS_WRITE,
        ip=caller_ip(request, runtime),
        user_agent=text_header(request, b"user-agent"),
        method=request.method,
        path=request.path,
    )


def answer_json(answer: dict[str, Any]) -> bytes:
    """``answer`` (from :func:`proxy_for`) as JSON. The provider's JSON may hold a lone surrogate
    escape (``"\\ud800"``), which only the standard library writes back (as that escape)."""
    try:
        return to_json(answer)
    except PydanticSerializationError:
        return json.dumps(answer, separators=(",", ":")).encode()


def answer_response(answer: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The JSON response of ``answer`` (from :func:`proxy_for`)."""
    return Response(answer_json(answer), media_type="application/json", headers=headers)


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
            actor, rate_headers = await authenticated(self.runtime, request)
            answer = await proxy_for(self.runtime, actor, connection_id, call)
        except InterlinkError as exc:
            return DirectResponse.of(interlink_problem(exc, request.path))
        return DirectResponse.json(answer_json(answer), rate_headers)


# -- the passthrough form ------------------------------------------------------------------------


def passthrough_target(path: str) -> tuple[str, str] | None:
    """The connection id and the provider path (``/`` and what follows ``/proxy/``) of
    ``/v1/connections/{id}/proxy/{path}``; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    connection_id, mark, rest = path[len(PREFIX) :].partition(PASSTHROUGH_MARK)
    if not mark or not connection_id or "/" in connection_id or len(connection_id) > MAX_CONNECTION_ID:
        return None
    return connection_id, "/" + rest


def passthrough_call(
    method: str,
    provider_path: str,
    query: bytes,
    headers: Mapping[bytes, bytes],
    body: bytes,
    header_lines: Iterable[tuple[bytes, bytes]] = (),
) -> proxy.ProxyRequest:
    """The proxy call a passthrough request makes (see the module doc); ValidationFailed naming
    the header for an invalid control header. ``headers`` holds the first line of each header,
    ``header_lines`` every line (the passed-on headers are read from it when given)."""
    passed: dict[str, str] = {}
    for raw_name, raw_value in header_lines or headers.items():
        if raw_name in PASSED_ON_HEADERS:
            name = raw_name.decode("latin-1")
        elif raw_name.startswith(PASSED_ON_PREFIX):
            name = raw_name[len(PASSED_ON_PREFIX) :].decode("latin-1")
        else:
            continue
        value = raw_value.decode("latin-1")
        passed[name] = f"{passed[name]}, {value}" if name in passed else value  # RFC 9110, 5.3
    key = headers.get(b"idempotency-key")
    return proxy.ProxyRequest(
        method=method,
        # Braces would read as the outbound builder's {parameter} placeholders.
        path=provider_path.replace("{", "%7B").replace("}", "%7D"),
        raw_query=_raw_query(query),
        headers=passed,
        body=body if body else proxy.NO_BODY,
        idempotency_key=key.decode("latin-1") if key is not None else None,
        max_attempts=_max_attempts(headers.get(MAX_ATTEMPTS_HEADER.lower().encode())),
        timeout_seconds=_timeout(headers.get(TIMEOUT_HEADER.lower().encode())),
    )


def _raw_query(raw: bytes) -> str:
    """The query string as it came; ValidationFailed when it is not ASCII (not percent-encoded)."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationFailed("the query string must be percent-encoded ASCII", field="query") from None


def _max_attempts(value: bytes | None) -> int:
    if value is None:
        return 3
    attempts = int(value) if value.isdigit() and len(value) < 3 else 0
    if not 1 <= attempts <= proxy.MAX_ATTEMPTS:
        raise ValidationFailed(
            f"{MAX_ATTEMPTS_HEADER} must be a whole number from 1 to {proxy.MAX_ATTEMPTS}",
            field=MAX_ATTEMPTS_HEADER,
        )
    return attempts


def _timeout(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        # Digits and one dot only: float() would also take "1_0", " 10 ", "1e1" and "inf".
        seconds = float(value) if _DECIMAL.fullmatch(value) else -1.0
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= proxy.MAX_TIMEOUT_SECONDS:
        raise ValidationFailed(
            f"{TIMEOUT_HEADER} must be a number of seconds above 0 and at most {proxy.MAX_TIMEOUT_SECONDS:g}",
            field=TIMEOUT_HEADER,
        )
    return seconds


def passthrough_answer(
    response: ApiResponse, rate_headers: Mapping[str, str], method: str = "GET"
) -> DirectResponse:
    """The provider's answer to ``method`` as the passthrough form returns it (see the module
    doc)."""
    if not 200 <= response.status <= 599:  # 1xx are interim (the wire skips them); 6xx-9xx invalid
        extra = {"errorClass": "other", "attempts": response.attempts, "providerStatus": response.status}
        if response.request_id:
            extra["requestId"] = response.request_id
        raise UpstreamFailed(f"the provider answered with HTTP status {response.status}", extra=extra)
    if response.truncated:
        extra = {"errorClass": "too_large", "attempts": response.attempts}
        if response.request_id:
            extra["requestId"] = response.request_id
        raise UpstreamFailed(
            "the provider's answer is larger than the connection's response limit; "
            "the proxy does not pass on a body cut short",
            extra=extra,
        )
    headers = [
        (name.encode("latin-1"), value.encode())  # read as UTF-8 (transport): the same bytes back
        for name, value in proxy.response_headers(response)
        if not name.startswith("interlink-") and name not in _SET_BY_INTERLINK
    ]
    if method == "HEAD":
        headers.extend(_head_length(response))
    headers.append((b"interlink-attempts", str(response.attempts).encode()))
    headers.append((b"interlink-duration-ms", b"%.3f" % response.duration_ms))
    if response.request_id:
        headers.append((b"interlink-request-id", response.request_id.encode()))
    for name, value in rate_headers.items():
        headers.append((b"interlink-" + name.lower().encode("latin-1"), value.encode("latin-1")))
    return DirectResponse(response.status, response.content, headers)


def _head_length(response: ApiResponse) -> list[tuple[bytes, bytes]]:
    """The provider's ``Content-Length`` of an answer to HEAD, when it holds for the GET through
    the proxy: a number, and the answer not compressed (the proxy passes bodies on decoded)."""
    length = response.headers.get("content-length", "").strip()
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if not (length.isascii() and length.isdigit()) or len(length) > 18 or encoding not in ("", "identity"):
        return []
    return [(b"content-length", str(int(length)).encode())]


async def passthrough_for(
    runtime: Runtime, request: DirectRequest, connection_id: str, provider_path: str
) -> DirectResponse:
    """Authenticate ``request`` (scope ``connections:write``), make its call through the connection
    and return the provider's answer; InterlinkError for every answer of Interlink's own."""
    actor, rate_headers = await authenticated(runtime, request)
    call = passthrough_call(
        request.method, provider_path, request.query, request.headers, request.body, request.header_lines
    )
    try:
        response = await proxy.call(runtime.connection_clients, actor, connection_id, call)
    except ValidationFailed as exc:  # the JSON form's name of the header, as the caller sent it
        errors = exc.extra.get("errors") or [{}]
        if errors[0].get("field") != "idempotencyKey":
            raise
        detail = exc.detail.replace("idempotency_key", "Idempotency-Key")
        raise ValidationFailed(detail, field="Idempotency-Key") from None
    return passthrough_answer(response, rate_headers, request.method)


class ConnectionPassthroughRoute(DirectRoute):
    """``/v1/connections/{id}/proxy/{path}`` as a direct route (see the module doc)."""

    label = RouteLabel(PREFIX + "{connection_id}" + PASSTHROUGH_MARK + "{path:path}")  # as the route
    methods = PASSTHROUGH_METHODS
    raw_path = True

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def matches(self, path: str) -> bool:
        return passthrough_target(path) is not None

    async def __call__(self, request: DirectRequest) -> DirectResponse | None:
        target = passthrough_target(request.path)
        if target is None or not tenant_header_fits(request):
            return None
        try:
            return await passthrough_for(self.runtime, request, *target)
        except InterlinkError as exc:
            return DirectResponse.of(interlink_problem(exc, request.path))
