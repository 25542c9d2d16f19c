"""The proxy: the host app calls a provider through a connection (``POST /v1/connections/{id}/proxy``).

The caller names a method, a path relative to the connection's base URL, query parameters,
headers and a JSON or form body; Interlink injects the connection's credentials and sends the
call through :class:`~interlink.connections.client.ConnectionClient` (request log, retries,
rate limits, circuit breaker, refresh on 401).

Contracts:

* ``path`` starts with ``/`` and is joined to the base URL; it cannot name another host (a path
  starting ``//`` is still a path on the provider's host). ``.`` and ``..`` segments are refused,
  percent-escaped ones (``%2E%2E``) too: they would leave the base URL's path on the provider.
* Hop-by-hop and framing headers (``Host``, ``Connection``, ``Content-Length``, ``Transfer-Encoding``,
  ``TE``, ``Trailer``, ``Upgrade``, ``Keep-Alive``, ``Proxy-*``) are refused (422); the connection's
  credential headers replace any of the same name.
* ``maxAttempts`` (1-5, default 3) bounds retries; POST and PATCH are retried only with an
  ``idempotencyKey``. ``timeoutSeconds`` (default 30, at most 120) is per attempt.
* **Any answer of the provider**, 4xx and 5xx included, is returned as :class:`ProxyResult`
  (HTTP 200 from Interlink, the provider's status in ``status``). No answer at all raises
  :class:`~interlink.core.errors.UpstreamFailed`: 504 for a timeout; 503 with ``Retry-After`` when
  Interlink held the call back (client-side rate limit, a provider 429 block still running, open
  circuit, exhausted retry budget); 502 otherwise (DNS, connect, TLS, a refused address). The
  problem carries ``errorClass``, ``attempts`` and the request log id.
* Response headers are returned without hop-by-hop headers and ``Set-Cookie``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from interlink.connections.client import ConnectionClients
from interlink.core.actor import Actor
from interlink.core.errors import UpstreamFailed, ValidationFailed
from interlink.outbound.config import RetryPolicy
from interlink.outbound.request import NO_BODY, ApiEndpointConfig, ApiRequestBuilder, QueryValue
from interlink.outbound.response import ApiResponse, OutboundError

MAX_ATTEMPTS: Final = 5
MAX_TIMEOUT_SECONDS: Final = 120.0
REFUSED_REQUEST_HEADERS: Final = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "te", "trailer", "upgrade", "keep-alive"}
)
DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "set-cookie",
        "content-length",
        "content-encoding",
    }
)
__all__ = ["NO_BODY", "ProxyRequest", "ProxyResult", "call", "check", "response_headers", "result", "send"]

_HELD_BACK: Final = frozenset({"rate_limited", "circuit_open", "budget_exhausted"})

_POLICIES: dict[int, RetryPolicy] = {n: RetryPolicy(max_attempts=n) for n in range(1, MAX_ATTEMPTS + 1)}


@dataclass(slots=True)
class ProxyRequest:
    method: str
    path: str
    query: Mapping[str, QueryValue] | None = None
    headers: Mapping[str, str] | None = None
    body: Any = NO_BODY
    """A JSON value; ``NO_BODY`` for none."""
    form: Mapping[str, QueryValue] | None = None
    idempotency_key: str | None = None
    max_attempts: int = 3
    timeout_seconds: float | None = None
    raw_query: str = ""
    """A query string passed on as it came (the passthrough form), before ``query``."""


@dataclass(slots=True)
class ProxyResult:
    response: ApiResponse
    headers: dict[str, str]
    data: Any
    """The decoded JSON or text body; ``None`` for an empty or binary body."""
    body_base64: str | None
    """A binary body (neither JSON nor text), base64-encoded."""


def check(request: ProxyRequest) -> ApiRequestBuilder:
    """Validate ``request``'s shape (ValidationFailed naming the field) and make the outbound
    request. Query, headers and body values are checked when the client builds it, still before
    anything is sent (:func:`send` renames those fields the same way)."""
    if not request.path.startswith("/"):
        raise ValidationFailed(
            "path must start with / (it is joined to the connection's base URL)", field="path"
        )
    if _has_dot_segment(request.path.split("?", 1)[0]):
        raise ValidationFailed("path must not contain . or .. segments (escaped or not)", field="path")
    if not 1 <= request.max_attempts <= MAX_ATTEMPTS:
        raise ValidationFailed(f"maxAttempts must be between 1 and {MAX_ATTEMPTS}", field="maxAttempts")
    timeout = request.timeout_seconds
    if timeout is not None and not (0 < timeout <= MAX_TIMEOUT_SECONDS and math.isfinite(timeout)):
        raise ValidationFailed(
            f"timeoutSeconds must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}", field="timeoutSeconds"
        )
    if request.form is not None and request.body is not NO_BODY:
        raise ValidationFailed("send either body (JSON) or form, not both", field="form")
    for name in request.headers or {}:
        lowered = name.lower()
        if lowered in REFUSED_REQUEST_HEADERS or lowered.startswith("proxy-"):
            raise ValidationFailed(
                f"header {name} is set by Interlink, not the caller", field=f"headers.{name}"
            )
    try:
        return ApiRequestBuilder(
            ApiEndpointConfig(path=request.path, method=request.method, name="proxy"),
            query=request.query or {},
            headers=request.headers or {},
            body=request.body,
            form=request.form,
            idempotency_key=request.idempotency_key,
            timeout_seconds=timeout,
            raw_query=request.raw_query,
        )
    except ValidationFailed as exc:
        raise _renamed(exc) from None


def _has_dot_segment(path: str) -> bool:
    """``path`` has a ``.`` or ``..`` segment, written as it is or percent-escaped (``%2E``)."""
    if "." not in path and "%" not in path:  # neither form can be there: the common case
        return False
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def _renamed(exc: ValidationFailed) -> ValidationFailed:
    """Field names of the outbound builder in the proxy body's camelCase."""
    errors = exc.extra.get("errors") or []
    field = errors[0]["field"] if errors else None
    if field == "idempotency_key":
        field = "idempotencyKey"
    elif field == "timeout_seconds":
        field = "timeoutSeconds"
    return ValidationFailed(exc.detail, field=field)


async def call(
    clients: ConnectionClients, actor: Actor, connection_id: str, request: ProxyRequest
) -> ApiResponse:
    """Check ``request``, then call the provider through the connection: the provider's answer,
    whatever its status, or :class:`UpstreamFailed` when there was none (see the module doc)."""
    builder = check(request)
    client = await clients.open(
        actor, connection_id, retry=_POLICIES[request.max_attempts], timeout_seconds=request.timeout_seconds
    )
    try:
        return await client.request(builder)
    except ValidationFailed as exc:
        raise _renamed(exc) from None
    except OutboundError as exc:
        raise _failure(exc) from None


async def send(
    clients: ConnectionClients, actor: Actor, connection_id: str, request: ProxyRequest
) -> ProxyResult:
    """:func:`call`, its answer described as a :class:`ProxyResult`."""
    return result(await call(clients, actor, connection_id, request))


def response_headers(response: ApiResponse) -> list[tuple[str, str]]:
    """The provider's response headers that the proxy passes on, in order, lower-case names: not
    :data:`DROPPED_RESPONSE_HEADERS` (hop-by-hop, framing, ``Set-Cookie``, and ``Content-Encoding``,
    as the body is passed on decoded)."""
    return [
        (lowered, value)
        for name, value in response.headers.items()
        if (lowered := name.lower()) not in DROPPED_RESPONSE_HEADERS
    ]


def result(response: ApiResponse) -> ProxyResult:
    headers: dict[str, str] = {}
    for lowered, value in response_headers(response):
        headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
    data = response.data
    encoded = None
    if isinstance(data, (bytes, bytearray)):
        encoded = base64.b64encode(bytes(data)).decode() if data else None
        data = None
    return ProxyResult(response=response, headers=headers, data=data, body_base64=encoded)


def _failure(exc: OutboundError) -> UpstreamFailed:
    extra: dict[str, Any] = {"errorClass": exc.error_class, "attempts": exc.attempts}
    if exc.request_id:
        extra["requestId"] = exc.request_id
    if exc.error_class == "timeout":
        return UpstreamFailed(f"the provider did not answer in time: {exc.message}", status=504, extra=extra)
    if exc.error_class in _HELD_BACK:
        wait = exc.retry_after_seconds
        if wait is None and exc.response is not None:
            wait = exc.response.retry_after_seconds
        retry_after = max(1, math.ceil(wait)) if wait else 1
        return UpstreamFailed(
            f"the call was held back ({exc.error_class}): {exc.message}",
            status=503,
            retry_after=retry_after,
            extra=extra,
        )
    detail = f"the provider could not be reached ({exc.error_class}): {exc.message}"
    return UpstreamFailed(detail, extra=extra)
