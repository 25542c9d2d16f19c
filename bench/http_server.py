"""The server side of the HTTP benchmark: the real app, configured exactly as ``interlink serve``.

Run by ``bench/keys.py`` in a subprocess: ``python bench/http_server.py <port> [--breakdown]`` with
the ``INTERLINK_*`` environment of the prepared database. Differences from ``interlink serve``: no
migration check or bootstrap (the benchmark prepared the database), and extra routes under
``/bench/``, placed in the routing table right before the ``/v1/keys`` routes so that they pay the
same route matching as ``POST /v1/keys/verify``:

* ``POST /bench/noop``: the trivial endpoint the verify route is compared with;
* with ``--breakdown``, one route per ingredient of ``POST /v1/keys/verify``, each otherwise as
  trivial as ``noop``: ``/bench/auth`` (the ``keys:verify`` authentication dependency),
  ``/bench/body`` (parsing the ``VerifyKeyRequest`` body) and ``/bench/response`` (building and
  serialising a ``VerifyKeyResponse``).

Every route sits behind the same middleware (correlation id, body limit, metrics, access log).

With ``INTERLINK_BENCH_PROFILE=<file>`` the server runs under cProfile and writes its stats to
``<file>`` when it stops (for diagnosis only: profiling slows everything down).
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys

import uvicorn
from fastapi import Depends, FastAPI

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.logging import configure_logging
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.http.auth import require
from interlink.http.routers import keys
from interlink.http.server import server_options
from interlink.keys.schemas import VerifyKeyRequest, VerifyKeyResponse


def build_app(settings: Settings, *, breakdown: bool = False) -> FastAPI:
    app = create_app(settings)  # access log on: the production default of `interlink serve`
    before = len(app.router.routes)

    @app.post("/bench/noop", include_in_schema=False)
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    if breakdown:

        @app.post("/bench/auth", include_in_schema=False)
        async def auth_only(actor: Actor = Depends(require(ApiKeyScope.KEYS_VERIFY))) -> dict[str, bool]:
            return {"ok": True}

        @app.post("/bench/body", include_in_schema=False)
        async def body_only(body: VerifyKeyRequest) -> dict[str, bool]:
            return {"ok": True}

        @app.post("/bench/response", include_in_schema=False, response_model=VerifyKeyResponse)
        async def response_only() -> VerifyKeyResponse:
            return VerifyKeyResponse(
                valid=True,
                code="valid",
                key_id="key_01BENCH",
                tenant_id="ten_01BENCH",
                name="bench target",
                kind="tenant",
                environment="live",
                scopes=["keys:read"],
                metadata={"plan": "pro"},
            )

    added = app.router.routes[before:]
    del app.router.routes[before:]
    at = _keys_router_position(app)
    app.router.routes[at:at] = added
    return app


def _keys_router_position(app: FastAPI) -> int:
    """Where the ``/v1/keys`` routes start in the routing table (0 when not found).

    Route matching is linear in the routes before a match, so the bench routes go right before the
    keys routes: they pay the same matching as ``POST /v1/keys/verify`` (see docs/benchmarks.md).
    """
    for index, route in enumerate(app.router.routes):
        router = getattr(route, "original_router", None)  # FastAPI >= 0.130 keeps routers whole
        if router is keys.router or str(getattr(route, "path", "")).startswith("/v1/keys"):
            return index
    return 0


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)  # as `interlink serve` does
    app = build_app(settings, breakdown="--breakdown" in sys.argv[2:])
    profile_path = os.environ.get("INTERLINK_BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    if profiler is not None:
        # uvicorn re-raises SIGTERM after its graceful shutdown; a no-op handler lets us dump stats.
        signal.signal(signal.SIGTERM, lambda *_: None)
        profiler.enable()
    try:
        # The same uvicorn options as `interlink serve` (interlink.http.server.server_options).
        uvicorn.run(app, host="127.0.0.1", port=port, **server_options())
    finally:
        if profiler is not None and profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)


if __name__ == "__main__":
    main()
