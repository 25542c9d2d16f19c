"""``interlink admin``: server-side recovery commands that work directly on the database."""

from __future__ import annotations

import asyncio

import typer

from interlink.cli.common import load_settings, refuse_bad_catalogue
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError

admin_app = typer.Typer(
    help="Server-side recovery: work directly on INTERLINK_DATABASE_URL.", no_args_is_help=True
)


@admin_app.command("create-key")
def create_key(
    name: str = typer.Option("admin (recovery)", help="Name of the new key."),
    tenant: str = typer.Option(None, help="Tenant id; default: the first tenant (the bootstrap tenant)."),
    scope: list[str] = typer.Option(["admin"], "--scope", help="Scope to grant; repeat for several."),
    platform: bool = typer.Option(True, help="Create a platform key (manages every tenant)."),
) -> None:
    """Create a key without an existing one (lost admin key). Audited as the system actor."""
    settings = load_settings()
    refuse_bad_catalogue(settings, "create a key")
    valid = {s.value for s in ApiKeyScope}
    unknown = [s for s in scope if s not in valid]
    if unknown:
        typer.echo(f"interlink: unknown scope(s): {', '.join(unknown)}", err=True)
        raise typer.Exit(code=2)

    async def _run() -> tuple[str, str, str]:
        from interlink.core.actor import system_actor
        from interlink.core.tenancy import first_tenant_id, tenant_exists
        from interlink.keys.service import KeySpec
        from interlink.runtime import Runtime

        runtime = Runtime(settings)
        try:
            async with runtime.db.unit_of_work() as session:
                tenant_id = tenant or await first_tenant_id(session)
                if tenant_id is None or not await tenant_exists(session, tenant_id):
                    raise InterlinkError("no such tenant (run `interlink serve` once to bootstrap)")
                row, plaintext = await runtime.keys.create(
                    session,
                    system_actor(tenant_id),
                    KeySpec(name=name, scopes=list(scope), kind="platform" if platform else "tenant"),
                )
            return tenant_id, row.id, plaintext
        finally:
            await runtime.stop()

    try:
        tenant_id, key_id, plaintext = asyncio.run(_run())
    except InterlinkError as exc:
        typer.echo(f"interlink: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"created {key_id} in {tenant_id}")
    typer.echo(f"API key (shown once, store it now): {plaintext}")
