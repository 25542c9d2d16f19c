"""Client commands: ``interlink providers ...`` (the provider catalogue) through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2). Any valid key may read the catalogue.
"""

from __future__ import annotations

from typing import Annotated

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    _list_output,
    _show,
    _table,
    api_call,
    client_command,
    json_or,
)
from interlink.connections.schemas import IntegrationProviderExtended
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus

providers_app = typer.Typer(
    help="The provider catalogue: who Interlink connects to, how they authenticate, their limits.",
    no_args_is_help=True,
)

PROVIDER_COLUMNS: list[Column] = [
    ("key", lambda p: p.key),
    ("name", lambda p: p.name),
    ("category", lambda p: p.category),
    ("status", lambda p: p.status),
    ("auth", lambda p: p.auth_types),
    ("environments", lambda p: list(p.base_urls)),
    ("webhooks", lambda p: p.webhooks.scheme),
]


@client_command(providers_app, "list")
def providers_list(
    conn: Connection,
    category: Annotated[
        IntegrationCategory | None, typer.Option("--category", help="Only this category.")
    ] = None,
    status: Annotated[
        IntegrationProviderStatus | None, typer.Option("--status", help="Only this status.")
    ] = None,
    auth_type: Annotated[
        AuthenticationType | None,
        typer.Option("--auth-type", help="Only providers accepting this authentication."),
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Text in the key, name or description.")
    ] = None,
) -> None:
    """Every provider of the catalogue matching the filters, sorted by key."""
    found = api_call(
        conn,
        lambda client: list(
            client.providers.iter_all(category=category, status=status, auth_type=auth_type, q=search)
        ),
    )
    _list_output(conn, found, PROVIDER_COLUMNS, "no providers match")


def _print_provider(provider: IntegrationProviderExtended) -> None:
    _show(
        provider,
        title=f"{provider.name} ({provider.key})",
        exclude={"base_urls", "oauth2", "rate_limits", "compliance", "webhooks", "config_schema"},
    )
    _table(
        [(env.value, base) for env, base in provider.base_urls.items()],
        [("environment", lambda r: r[0]), ("base URL", lambda r: r[1])],
        "",
    )
    if provider.oauth2 is not None:
        _show(provider.oauth2, title="OAuth2")
    _table(
        provider.rate_limits,
        [
            ("kind", lambda r: r.kind),
            ("limit", lambda r: r.limit),
            ("per seconds", lambda r: r.window_seconds),
            ("unit", lambda r: r.unit),
            ("scope", lambda r: r.scope),
            ("environment", lambda r: r.environment),
            ("description", lambda r: r.description),
        ],
        "rate limits: none with a fixed number"
        + (f" ({provider.rate_limit_policy})" if provider.rate_limit_policy else ""),
    )
    _show(provider.compliance, title="Compliance")
    _show(provider.webhooks, title="Inbound webhook signature")
    if provider.config_schema:
        _show_schema(provider)


def _show_schema(provider: IntegrationProviderExtended) -> None:
    schema = provider.config_schema or {}
    required = set(schema.get("required", []))
    rows = [
        (
            name,
            prop.get("pattern") or prop.get("enum"),
            prop.get("default"),
            name in required,
            prop.get("description"),
        )
        for name, prop in schema.get("properties", {}).items()
    ]
    _table(
        rows,
        [
            ("config", lambda r: r[0]),
            ("pattern or values", lambda r: r[1]),
            ("default", lambda r: r[2]),
            ("required", lambda r: "yes" if r[3] else "no"),
            ("description", lambda r: r[4]),
        ],
        "",
    )


@client_command(providers_app, "show")
def providers_show(
    conn: Connection,
    key: Annotated[str, typer.Argument(help="Provider key, e.g. stripe.")],
) -> None:
    """One provider: authentication, OAuth2 endpoints, base URLs, rate limits, compliance, webhooks."""
    provider = api_call(conn, lambda client: client.providers.get(key))
    json_or(conn, provider, _print_provider)
