"""RFC 9457 problem+json for every error; a stack trace never reaches a client."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from interlink.core.context import current_correlation_id
from interlink.core.errors import InterlinkError, RateLimited
from interlink.core.schemas import Problem

log = structlog.get_logger(__name__)
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


def _is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, PoolTimeout, ConnectionError, OSError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InterlinkError)
    async def _interlink_error(request: Request, exc: InterlinkError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, RateLimited) else None
        return problem_response(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: ("not-found", "Not found"), 405: ("method-not-allowed", "Method not allowed")}
        code, title = titles.get(exc.status_code, ("http-error", "HTTP error"))
        return problem_response(
            exc.status_code,
            code,
            title,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if _is_database_unavailable(exc):
            log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
            return problem_response(
                503,
                "service-unavailable",
                "Service unavailable",
                "the database is unavailable; retry shortly",
                instance=request.url.path,
                headers={"Retry-After": "1"},
            )
        log.error("unhandled_error", error=type(exc).__name__, path=request.url.path, exc_info=exc)
        return problem_response(
            500,
            "internal-error",
            "Internal error",
            "an unexpected error occurred; quote the correlation id when reporting it",
            instance=request.url.path,
        )


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
        503: "Database unavailable; retry",
    }
    return {
        status: {"model": Problem, "description": descriptions[status], "content": _problem_content()}
        for status in statuses
    }


STANDARD_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503)
