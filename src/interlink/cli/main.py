"""``interlink``: run the service (serve, migrate) and manage it through the REST API.

Server-side commands (``serve``, ``migrate``, ``admin``, ``secrets``) work on the database named by
``INTERLINK_DATABASE_URL``. Client commands (``tenants``, ``keys``, ``audit``) call the REST API at
``INTERLINK_API_URL`` with ``INTERLINK_API_KEY``, exactly as any other API user would.
"""

from __future__ import annotations

import asyncio
import os
import sys

import typer

from interlink.cli.admin_commands import admin_app
from interlink.cli.api_request_commands import api_requests_app
from interlink.cli.client_commands import audit_app, keys_app, tenants_app
from interlink.cli.common import (
    load_settings,
    refuse_bad_catalogue,
    refuse_unless_migrated,
    refuse_without_secrets,
)
from interlink.cli.connection_commands import connections_app
from interlink.cli.connection_health_commands import register as register_connection_health
from interlink.cli.connector_commands import connectors_app
from interlink.cli.event_commands import deliveries_app, events_app
from interlink.cli.inbound_commands import inbound_sources_app
from interlink.cli.metrics_commands import webhooks_app
from interlink.cli.provider_commands import providers_app
from interlink.cli.replay_commands import replays_app
from interlink.cli.retention_commands import retention_app
from interlink.cli.secrets_commands import app as secrets_app
from interlink.cli.webhook_commands import endpoints_app, event_types_app
from interlink.cli.webhook_config_commands import webhook_config_app
from interlink.cli.worker_command import worker
from interlink.core.settings import MAX_SERVE_PROCESSES, Settings

app = typer.Typer(
    help="Interlink: the integration layer for multi-tenant SaaS backends.", no_args_is_help=True
)
app.add_typer(admin_app, name="admin")
app.add_typer(secrets_app, name="secrets")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(event_types_app, name="event-types")
app.add_typer(webhook_config_app, name="webhook-config")
app.add_typer(events_app, name="events")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(replays_app, name="replays")
app.add_typer(providers_app, name="providers")
register_connection_health(connections_app)
app.add_typer(connections_app, name="connections")
app.add_typer(connectors_app, name="connectors")
app.add_typer(retention_app, name="retention")
app.add_typer(api_requests_app, name="api-requests")
app.add_typer(inbound_sources_app, name="inbound-sources")
app.command("worker")(worker)


@app.command()
def migrate() -> None:
    """Apply database migrations (creates the embedded SQLite file when needed)."""
    from interlink.core.migrate import head_revision, upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo(f"database migrated to {head_revision()}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default INTERLINK_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default INTERLINK_PORT or 8000)."),
    processes: int = typer.Option(
        None,
        min=1,
        max=MAX_SERVE_PROCESSES,
        help="API processes sharing the port (default INTERLINK_SERVE_PROCESSES or 1; "
        "about one per core). Each runs the app as one process would.",
    ),
) -> None:
    """Start the REST API (and, on the embedded default, everything else): one process, or
    ``--processes N`` sharing the port under a supervisor that restarts any that dies."""
    import uvicorn

    from interlink.bootstrap import bootstrap_if_empty
    from interlink.http.app import create_app
    from interlink.http.server import server_options
    from interlink.runtime import Runtime

    settings = load_settings()
    if host:
        settings.host = host
    if port is not None:
        settings.port = port
    if processes is not None:
        settings.serve_processes = processes
    refuse_bad_catalogue(settings)
    refuse_unless_migrated(settings)
    refuse_without_secrets(settings)

    async def _bootstrap() -> object:
        runtime = Runtime(settings)
        try:
            return await bootstrap_if_empty(runtime) if settings.bootstrap else None
        finally:
            await runtime.stop()

    created = asyncio.run(_bootstrap())
    url = settings.public_url or f"http://{settings.host}:{settings.port}"
    typer.echo(f"Interlink is starting at {url}  (API docs: {url}/docs)")
    if created is not None:
        typer.echo("First start: created tenant 'default' and a platform admin API key.")
        typer.echo(f"Admin API key (shown once, store it now): {created.key}")  # type: ignore[attr-defined]
    if settings.serve_processes > 1:
        _serve_processes(settings)
        return
    sys.stdout.flush()
    uvicorn.run(
        create_app(settings, tune_gc_after_start=True),
        host=settings.host,
        port=settings.port,
        **server_options(),
    )


def _serve_processes(settings: Settings) -> None:
    """``settings.serve_processes`` API processes on one listening socket (uvicorn's supervisor:
    SIGTERM or SIGINT stops them all gracefully, a process that dies is started again). Each builds
    its app from the environment (:func:`~interlink.http.app.create_served_app`); their Prometheus
    counters go to a fresh directory that every ``/metrics`` answer sums (removed on exit)."""
    import shutil
    import tempfile

    import uvicorn

    from interlink.http.routers.health import MULTIPROCESS_DIR_VARIABLE
    from interlink.http.server import server_options

    if settings.is_sqlite and not settings.redis_url:
        typer.echo(
            "interlink: warning: several processes on one SQLite file without INTERLINK_REDIS_URL: "
            "key revocations and connection changes reach the other processes only after "
            "INTERLINK_KEY_CACHE_TTL_SECONDS / INTERLINK_CONNECTION_CACHE_TTL_SECONDS, and each "
            "process counts its own rate-limit windows (docs/operations.md)",
            err=True,
        )
    os.environ["INTERLINK_HOST"] = settings.host  # what the processes' settings read
    os.environ["INTERLINK_PORT"] = str(settings.port)
    own_directory = not os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if own_directory:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="interlink-metrics-")
    directory = os.environ[MULTIPROCESS_DIR_VARIABLE]
    typer.echo(f"Serving with {settings.serve_processes} processes (metrics summed in {directory})")
    sys.stdout.flush()
    try:
        uvicorn.run(
            "interlink.http.app:create_served_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.serve_processes,
            **server_options(),
        )
    finally:
        if own_directory:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
