"""Client commands: ``interlink tenants|keys|audit ...`` through the Python SDK.

Each command calls the REST API at ``--url`` / ``INTERLINK_API_URL`` with ``--api-key`` /
``INTERLINK_API_KEY`` (and ``--tenant`` / ``INTERLINK_TENANT_ID`` for a platform key acting for a
tenant), exactly as any other API user would. Output is a table, or JSON with ``--json``. API errors
print the problem to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Metadata,
    Paging,
    _metadata,
    _one,
    _print_json,
    _show,
    _text,
    _when,
    api_call,
    client_command,
    json_or_say,
    print_pages,
)
from interlink.client._base import NOT_GIVEN, NotGiven
from interlink.core.enums import ApiKeyScope, ApiKeyStatus, IntegrationEnvironment

tenants_app = typer.Typer(help="Manage tenants through the REST API.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage and verify API keys through the REST API.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit trail and security events.", no_args_is_help=True)

# ---- tenants -------------------------------------------------------------------------------------

TENANT_COLUMNS: list[Column] = [
    ("id", lambda t: t.id),
    ("slug", lambda t: t.slug),
    ("name", lambda t: t.name),
    ("created", lambda t: t.created_at),
]


@client_command(tenants_app, "create")
def tenants_create(
    conn: Connection,
    name: Annotated[str, typer.Argument(help="Display name.")],
    slug: Annotated[str | None, typer.Option(help="URL-safe unique slug (default: from the name).")] = None,
    metadata: Metadata = None,
) -> None:
    """Create a tenant (platform keys only)."""
    meta = _metadata(metadata)
    made = api_call(conn, lambda client: client.tenants.create(name, slug=slug, metadata=meta))
    _one(conn, made, f"Created tenant {made.id}")


@client_command(tenants_app, "list", paged=True)
def tenants_list(conn: Connection, paging: Paging) -> None:
    """Every tenant (platform keys) or your own (tenant keys), newest first."""
    print_pages(conn, paging, lambda client: client.tenants, TENANT_COLUMNS, "no tenants")


@client_command(tenants_app, "show")
def tenants_show(
    conn: Connection,
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (ten_...).")],
) -> None:
    """Show one tenant."""
    _one(conn, api_call(conn, lambda client: client.tenants.get(tenant_id)))


@client_command(tenants_app, "update")
def tenants_update(
    conn: Connection,
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (ten_...).")],
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object replacing it.")] = None,
) -> None:
    """Change a tenant's name or metadata (platform keys only)."""
    meta = _metadata(metadata)
    if name is None and meta is None:
        raise typer.BadParameter("nothing to change: pass --name and/or --metadata")
    changed = api_call(
        conn,
        lambda client: client.tenants.update(
            tenant_id,
            name=name if name is not None else NOT_GIVEN,
            metadata=meta if meta is not None else NOT_GIVEN,
        ),
    )
    _one(conn, changed, f"Updated tenant {changed.id}")


# ---- keys ----------------------------------------------------------------------------------------

KEY_COLUMNS: list[Column] = [
    ("id", lambda k: k.id),
    ("name", lambda k: k.name),
    ("status", lambda k: k.status),
    ("kind", lambda k: k.kind),
    ("prefix", lambda k: k.prefix),
    ("scopes", lambda k: k.scopes),
    ("expires", lambda k: k.expires_at),
    ("last used", lambda k: k.last_used_at),
]
STORE_IT = "(shown once, store it now)"

Scopes = Annotated[
    list[ApiKeyScope] | None,
    typer.Option("--scope", metavar="SCOPE", help="Scope, e.g. keys:verify; repeat for several."),
]
AllowIps = Annotated[
    list[str] | None, typer.Option("--allow-ip", help="Allowed client IP or CIDR; repeat for several.")
]
RatePeriod = Annotated[
    int | None, typer.Option("--rate-period", min=1, help="Rate-limit window in seconds (default 60).")
]


def _read_key(value: str) -> str:
    """``-`` reads the key from stdin, keeping it out of shell history and process lists."""
    return sys.stdin.readline().strip() if value == "-" else value


@client_command(keys_app, "create")
def keys_create(
    conn: Connection,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Scopes = None,
    kind: Annotated[
        str, typer.Option(metavar="tenant|platform", help="Platform keys manage tenants.")
    ] = "tenant",
    environment: Annotated[
        IntegrationEnvironment | None, typer.Option(help="Environment tag (default: the server's).")
    ] = None,
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="ISO 8601 expiry.")] = None,
    metadata: Metadata = None,
    allow_ip: AllowIps = None,
    rate_limit: Annotated[int | None, typer.Option("--rate-limit", min=1, help="Uses per window.")] = None,
    rate_period: RatePeriod = None,
) -> None:
    """Create a key. The key is printed once: store it now, it cannot be shown again."""
    if not scope:
        raise typer.BadParameter("give at least one --scope", param_hint="--scope")
    if kind not in ("tenant", "platform"):
        raise typer.BadParameter("must be 'tenant' or 'platform'", param_hint="--kind")
    expiry = _when(expires_at, "--expires-at")
    meta = _metadata(metadata)
    made = api_call(
        conn,
        lambda client: client.keys.create(
            name,
            scope,
            kind=kind,
            environment=environment,
            expires_at=expiry,
            metadata=meta,
            allowed_ips=allow_ip,
            rate_limit=rate_limit,
            rate_limit_period_seconds=rate_period,
        ),
    )
    if conn.as_json:
        _print_json(made)
        typer.echo(f"interlink: the 'key' field is the API key {STORE_IT}", err=True)
        return
    _show(made, f"Created key {made.id}", exclude={"key"})
    typer.echo(f"API key {STORE_IT}: {made.key}")


@client_command(keys_app, "list", paged=True)
def keys_list(
    conn: Connection,
    paging: Paging,
    status: Annotated[ApiKeyStatus | None, typer.Option(help="Only keys in this status.")] = None,
) -> None:
    """Keys of the tenant, newest first (never the keys themselves, only their prefixes)."""
    print_pages(conn, paging, lambda client: client.keys, KEY_COLUMNS, "no keys", status=status)


@client_command(keys_app, "show")
def keys_show(
    conn: Connection,
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
) -> None:
    """Show one key."""
    _one(conn, api_call(conn, lambda client: client.keys.get(key_id)))


@client_command(keys_app, "update")
def keys_update(
    conn: Connection,
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    scope: Scopes = None,
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="New ISO 8601 expiry.")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Remove the expiry.")] = False,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object replacing it.")] = None,
    allow_ip: AllowIps = None,
    rate_limit: Annotated[int | None, typer.Option("--rate-limit", min=1, help="Uses per window.")] = None,
    rate_period: RatePeriod = None,
    no_rate_limit: Annotated[bool, typer.Option("--no-rate-limit", help="Remove the rate limit.")] = False,
) -> None:
    """Change a key's name, scopes, expiry, metadata, allowed IPs or rate limit."""
    if expires_at is not None and no_expiry:
        raise typer.BadParameter("use --expires-at or --no-expiry, not both")
    if rate_limit is not None and no_rate_limit:
        raise typer.BadParameter("use --rate-limit or --no-rate-limit, not both")
    expiry: datetime | NotGiven | None = (
        None if no_expiry else (_when(expires_at, "--expires-at") or NOT_GIVEN)
    )
    limit: int | NotGiven | None = None if no_rate_limit else (rate_limit or NOT_GIVEN)
    meta = _metadata(metadata)
    changes: dict[str, Any] = {
        "name": name,
        "scopes": scope or None,
        "metadata": meta,
        "allowed_ips": allow_ip or None,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    if not given and isinstance(expiry, NotGiven) and isinstance(limit, NotGiven):
        raise typer.BadParameter("nothing to change: pass at least one option")
    changed = api_call(
        conn,
        lambda client: client.keys.update(
            key_id, expires_at=expiry, rate_limit=limit, rate_limit_period_seconds=rate_period, **given
        ),
    )
    _one(conn, changed, f"Updated key {changed.id}")


@client_command(keys_app, "rotate")
def keys_rotate(
    conn: Connection,
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    grace: Annotated[
        int | None,
        typer.Option(
            "--grace", min=0, help="Seconds the old key keeps working (default: the server's, 24 h)."
        ),
    ] = None,
) -> None:
    """Issue a replacement key (printed once); the old one works until its grace period ends."""
    rotated = api_call(conn, lambda client: client.keys.rotate(key_id, grace_period_seconds=grace))
    if conn.as_json:
        _print_json(rotated)
        typer.echo(f"interlink: 'newKey.key' is the new API key {STORE_IT}", err=True)
        return
    old, new = rotated.old_key, rotated.new_key
    typer.echo(f"Rotated {old.id} -> {new.id}")
    typer.echo(f"The old key is {old.status.value} until {_text(old.grace_until)}.")
    typer.echo(f"New API key {STORE_IT}: {new.key}")


@client_command(keys_app, "revoke")
def keys_revoke(
    conn: Connection,
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Revoke a key at once, in every process."""
    revoked = api_call(conn, lambda client: client.keys.revoke(key_id, reason=reason))
    json_or_say(conn, revoked, f"Revoked {revoked.id} ({revoked.name}): status {revoked.status.value}")


@client_command(keys_app, "verify")
def keys_verify(
    conn: Connection,
    key: Annotated[str, typer.Argument(help="The key to check; '-' reads it from stdin.")],
    scope: Scopes = None,
    ip: Annotated[str | None, typer.Option(help="The end client's IP, for allowed ranges.")] = None,
) -> None:
    """Check a key presented to your application. Exits 0 when valid, 1 when not."""
    presented = _read_key(key)
    if not presented:
        raise typer.BadParameter("no key given", param_hint="KEY")
    verdict = api_call(conn, lambda client: client.keys.verify(presented, scopes=scope or None, ip=ip))
    if conn.as_json:
        _print_json(verdict)
    elif verdict.valid:
        typer.echo(f"valid: {verdict.key_id} in {verdict.tenant_id} ({_text(verdict.scopes)})")
    else:
        detail = f" (missing {_text(verdict.missing_scopes)})" if verdict.missing_scopes else ""
        typer.echo(f"invalid: {verdict.code}{detail}")
    if not verdict.valid:
        raise typer.Exit(code=1)


# ---- audit ---------------------------------------------------------------------------------------

AUDIT_COLUMNS: list[Column] = [
    ("time", lambda e: e.occurred_at),
    ("action", lambda e: e.action),
    ("resource", lambda e: f"{e.resource_type} {e.resource_id or ''}".strip()),
    ("actor", lambda e: e.actor_key_id or e.actor_type),
    ("correlation id", lambda e: e.correlation_id),
]
SECURITY_COLUMNS: list[Column] = [
    ("time", lambda e: e.occurred_at),
    ("type", lambda e: e.event_type),
    ("key", lambda e: e.key_id or e.key_prefix),
    ("source ip", lambda e: e.source_ip),
    ("risk", lambda e: e.risk_score),
    ("reason", lambda e: e.reason),
]
Since = Annotated[str | None, typer.Option("--since", help="Only events at or after this ISO 8601 time.")]
Until = Annotated[str | None, typer.Option("--until", help="Only events before this ISO 8601 time.")]


@client_command(audit_app, "events", paged=True)
def audit_events(
    conn: Connection,
    paging: Paging,
    action: Annotated[str | None, typer.Option(help="e.g. key.revoked")] = None,
    resource_type: Annotated[str | None, typer.Option("--resource-type", help="e.g. api_key")] = None,
    resource_id: Annotated[str | None, typer.Option("--resource-id")] = None,
    actor_key: Annotated[str | None, typer.Option("--actor-key", help="Key id of the actor.")] = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """The audit trail: every mutation in the tenant, newest first."""
    filters: dict[str, Any] = {
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "actor_key_id": actor_key,
        "correlation_id": correlation_id,
        "since": _when(since, "--since"),
        "until": _when(until, "--until"),
    }
    print_pages(conn, paging, lambda client: client.audit_events, AUDIT_COLUMNS, "no audit events", **filters)


@client_command(audit_app, "security", paged=True)
def audit_security(
    conn: Connection,
    paging: Paging,
    event_type: Annotated[str | None, typer.Option("--type", help="e.g. auth.failed")] = None,
    key_id: Annotated[str | None, typer.Option("--key", help="Key id.")] = None,
    source_ip: Annotated[str | None, typer.Option("--source-ip")] = None,
    min_risk: Annotated[int | None, typer.Option("--min-risk", min=0, max=100)] = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Security events (failed authentication, denied IPs, rotations, ...), newest first."""
    filters: dict[str, Any] = {
        "event_type": event_type,
        "key_id": key_id,
        "source_ip": source_ip,
        "min_risk": min_risk,
        "since": _when(since, "--since"),
        "until": _when(until, "--until"),
    }
    print_pages(
        conn, paging, lambda client: client.security_events, SECURITY_COLUMNS, "no security events", **filters
    )
