"""Liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from interlink.http.auth import get_runtime
from interlink.outbound.metrics import CIRCUIT_GAUGES
from interlink.webhooks.metrics import QUEUE_GAUGES

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by ``interlink serve --processes N``) when several processes share one port: each keeps
its counters and histograms in files there, and a scrape answered by any of them sums them all."""

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
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def exposition() -> bytes:
    """This process's metrics; with several processes on one port (:data:`MULTIPROCESS_DIR_VARIABLE`
    set), the counters and histograms of all of them summed, the webhook queue gauges (database-wide)
    and this process's circuit breaker gauges."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(_Families(QUEUE_GAUGES.collect_gauges))
    registry.register(CIRCUIT_GAUGES)
    return generate_latest(registry)


class _Families(Collector):
    """A collector of what ``collect`` yields."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()
