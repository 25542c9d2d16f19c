"""The server side of the HTTP benchmark: the real app, configured exactly as ``interlink serve``.

Run by ``bench/keys.py`` in a subprocess: ``python bench/http_server.py <port>`` with the
``INTERLINK_*`` environment of the prepared database. Differences from ``interlink serve``: no
migration check or bootstrap (the benchmark prepared the database), and one extra route,
``POST /bench/noop``, the trivial endpoint the verify route is compared with. The extra route sits
behind the same middleware (correlation id, body limit, metrics, access log) as every other route.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from interlink.core.logging import configure_logging
from interlink.core.settings import Settings
from interlink.http.app import create_app


def build_app(settings: Settings) -> FastAPI:
    app = create_app(settings)  # access log on: the production default of `interlink serve`

    @app.post("/bench/noop", include_in_schema=False)
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    return app


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)  # as `interlink serve` does
    uvicorn.run(
        build_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
