"""Liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interlink.http.auth import get_runtime
from interlink.webhooks.metrics import QUEUE_GAUGES

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"description": "The database (or the configured Redis) is not reachable"}}
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database, and Redis when configured, answer within 2 seconds."""
    runtime = get_runtime(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(runtime.db.ping(), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = type(exc).__name__
    if runtime.settings.redis_url:
        try:
            healthy = await asyncio.wait_for(runtime.limiter.storage.check(), timeout=2)
            checks["redis"] = "ok" if healthy else "unreachable"
        except Exception as exc:
            checks["redis"] = type(exc).__name__
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ok", **checks})
    return JSONResponse({"status": "unavailable", **checks}, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition. The webhook queue gauges are read from the database first
    (cached a few seconds; left out, never an error, when the database does not answer)."""
    await QUEUE_GAUGES.refresh(get_runtime(request).db)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
