"""RFC 9457 problem+json for every error; a stack trace never reaches a client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from interlink.core.context import current_correlation_id
from interlink.core.errors import (
    InterlinkError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    UpstreamFailed,
)
from interlink.core.schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def problem_type(code: str) -> str:
    return f"urn:interlink:problem:{code}"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "correlationId": current_correlation_id(),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return problem_response(
            400,
            "malformed-json",
            "Malformed JSON",
            "the request body is not valid JSON",
            instance=request.url.path,
        )
    fields = []
    for err in errors:
        field = _field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        fields.append({"field": field, "message": message})
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return problem_response(
        422, "validation-error", "Validation failed", detail, instance=request.url.path, errors=fields
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now" (answered with 503)."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc) is DatabaseError:  # no finer class: e.g. a SQLite file that is not a database
        return True
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):  # shared rate limits, cache bus
        return True
    return isinstance(exc, ConnectionError)


_PROBLEM_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "instance", "correlationId", "code", "headers"}
)
"""Members every problem has (or parameters of :func:`problem_response`): an error's ``extra``
cannot replace them."""


def interlink_problem(exc: InterlinkError, path: str) -> JSONResponse:
    """The problem response for a domain error (used by the handlers and the direct routes)."""
    headers: dict[str, str] | None = None
    if isinstance(exc, RateLimited):
        headers = exc.headers
    elif isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": "1"}
    elif isinstance(exc, UpstreamFailed) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    extra = {k: v for k, v in exc.extra.items() if k not in _PROBLEM_MEMBERS}
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, instance=path, headers=headers, **extra
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InterlinkError)
    async def _interlink_error(request: Request, exc: InterlinkError) -> JSONResponse:
        return interlink_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(DataError)
    async def _unstorable_value(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value that passed validation (e.g. a NUL character in text on
        # PostgreSQL): the request is at fault, and nothing was written. An id in the path holding
        # a NUL names nothing (no stored text holds one): 404, as on SQLite, which looks it up.
        named = [name for name, value in request.path_params.items() if "\x00" in str(value)]
        if named:
            return interlink_problem(NotFound(f"no resource has this {named[0]}"), request.url.path)
        detail = "a value in the request cannot be stored (for example a NUL character in text)"
        return problem_response(
            422,
            "validation-error",
            "Validation failed",
            detail,
            instance=request.url.path,
            errors=[{"field": "body", "message": detail}],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_TITLES.get(exc.status_code, ("http-error", "HTTP error"))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(
            exc.status_code,
            code,
            title,
            _unparsable_body_detail(exc) or str(exc.detail),
            instance=request.url.path,
            headers=headers or None,
        )


def _unparsable_body_detail(exc: StarletteHTTPException) -> str | None:
    """Why the framework could not read a JSON body (its 400 says only that it could not), from
    the error it chained; None for any other error."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "the JSON body nests arrays and objects too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "a number in the JSON body has too many digits"
    return None


def effective_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every route with its full path, including those of included routers (flattened).

    Each item has ``path``, ``path_regex``, ``methods`` and, for API routes, ``dependant`` and
    ``body_field``.
    """
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    if flatten is None:  # FastAPI versions that copy included routes into ``app.routes``
        yield from routes
        return
    yield from flatten(routes)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts for this path (the router names only the first route's)."""
    methods: set[str] = set()
    path = request.url.path
    for route in effective_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can return."""
    descriptions = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "Key lacks the scope or its IP is not allowed",
        404: "Not found (or not visible to this tenant)",
        409: "Conflict with the resource's state",
        413: "Request body too large",
        422: "Validation failed; `errors` names each field",
        429: "Rate limited; see Retry-After",
        502: "An upstream provider could not be reached or gave no usable answer",
        504: "An upstream provider did not answer in time",
        503: "Database unavailable; retry",
    }
    return {
        status: {"model": Problem, "description": descriptions[status], "content": _problem_content()}
        for status in statuses
    }


STANDARD_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503)


_CORRELATION_HEADER = {
    "description": "The request's correlation id: the caller's `X-Correlation-Id` when it was "
    "acceptable (1-128 of `A-Za-z0-9._:-`), otherwise a generated one.",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"},
}
_RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Document what every response really carries.

    * Error responses are ``application/problem+json`` only.
    * Every response has ``X-Correlation-Id``; 429 and 503 have ``Retry-After``.
    """
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(status)[:1] in ("4", "5") and content and PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json", None)
                headers = response.setdefault("headers", {})
                headers.setdefault("X-Correlation-Id", _CORRELATION_HEADER)
                if str(status) in ("429", "503"):
                    headers.setdefault("Retry-After", _RETRY_AFTER_HEADER)
    return schema
