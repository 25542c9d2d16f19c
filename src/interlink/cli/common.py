"""What the server-side commands share: settings with logging, and the migration guard."""

from __future__ import annotations

import asyncio

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from interlink.core.logging import configure_logging
from interlink.core.settings import Settings


def load_settings() -> Settings:
    """Settings from the environment, with logging configured from them. An invalid value exits
    with code 2 and one line per setting (its variable and what is wrong; never the value, which
    may be a secret)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = f"setting INTERLINK_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
            typer.echo(f"interlink: invalid {where}: {error['msg']}", err=True)
        raise typer.Exit(code=2) from None
    except SettingsError as exc:  # a value the settings source could not parse at all
        typer.echo(f"interlink: invalid settings: {exc}", err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def refuse_unless_migrated(settings: Settings, what: str = "start") -> None:
    """Exit with code 2 and the reason when the database is not at the current migration."""
    from interlink.core.migrate import pending_migration_message

    problem = asyncio.run(pending_migration_message(settings.effective_database_url))
    if problem:
        typer.echo(f"interlink: refusing to {what}: {problem}", err=True)
        raise typer.Exit(code=2)


def refuse_without_secrets(settings: Settings) -> None:
    """Exit with code 2 when master keys and pepper are neither configured nor allowed to be generated."""
    from interlink.core.crypto import CryptoError, load_local_secrets

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        load_local_secrets(
            settings.master_keys, settings.key_pepper, settings.data_dir, allow_generate=settings.is_sqlite
        )
    except CryptoError as exc:
        typer.echo(f"interlink: refusing to start: {exc}", err=True)
        raise typer.Exit(code=2) from exc


def refuse_bad_catalogue(settings: Settings, what: str = "start") -> None:
    """Exit with code 2 and every problem (file:line: ...: field: message) when the provider
    catalogue (built in, plus ``INTERLINK_PROVIDERS_FILE``) or the connector specs (built in, plus
    ``INTERLINK_CONNECTORS_FILE``, checked against the catalogue) do not validate."""
    from interlink.connections.catalogue import CatalogueError, load_catalogue
    from interlink.connectors.registry import load_registry
    from interlink.connectors.spec import ConnectorSpecError

    try:
        load_registry(settings.connectors_file, load_catalogue(settings.providers_file))
    except (CatalogueError, ConnectorSpecError) as exc:
        typer.echo(f"interlink: refusing to {what}: {exc}", err=True)
        raise typer.Exit(code=2) from None
