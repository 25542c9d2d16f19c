"""``interlink worker``: run background jobs in a process of its own (any number, any machine)."""

from __future__ import annotations

import asyncio
import signal

import typer

from interlink.cli.common import (
    load_settings,
    refuse_bad_catalogue,
    refuse_unless_migrated,
    refuse_without_secrets,
)


def worker(
    concurrency: int = typer.Option(None, help="Jobs run at once (default INTERLINK_WORKER_CONCURRENCY)."),
    metrics_port: int = typer.Option(
        None,
        min=1,
        max=65535,
        help="Serve Prometheus metrics on this port (default INTERLINK_WORKER_METRICS_PORT).",
    ),
) -> None:
    """Run the job worker until SIGTERM/SIGINT; jobs in flight are finished or handed back.

    With a metrics port, the process serves its own counters (delivery attempts and durations,
    outbound requests) at ``http://<INTERLINK_WORKER_METRICS_HOST>:<port>/metrics``."""
    from interlink.jobs.registry import ensure_builtin_schedules
    from interlink.runtime import Runtime, tune_garbage_collector

    settings = load_settings()
    if concurrency is not None:
        settings.worker_concurrency = concurrency
    if metrics_port is not None:
        settings.worker_metrics_port = metrics_port
    refuse_bad_catalogue(settings)
    refuse_unless_migrated(settings)
    refuse_without_secrets(settings)

    async def _run() -> None:
        runtime = Runtime(settings)
        await runtime.start()
        await ensure_builtin_schedules(runtime.db)
        job_worker = runtime.make_worker()
        loop = asyncio.get_running_loop()
        delivery_worker = runtime.make_delivery_worker()

        def _stop() -> None:
            job_worker.stop()
            delivery_worker.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stop)
        if settings.worker_metrics_port:
            import prometheus_client

            prometheus_client.start_http_server(
                settings.worker_metrics_port, addr=settings.worker_metrics_host
            )
            typer.echo(
                f"metrics on http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
            )
        tune_garbage_collector()
        typer.echo(f"interlink worker {job_worker.worker_id} running; stop with Ctrl+C")
        try:
            await asyncio.gather(job_worker.run(), delivery_worker.run())
        finally:
            await runtime.stop()

    asyncio.run(_run())
