"""Client commands: ``interlink tenants|keys|audit ...`` through the Python SDK.

Each command calls the REST API at ``--url`` / ``INTERLINK_API_URL`` with ``--api-key`` /
``INTERLINK_API_KEY`` (and ``--tenant`` / ``INTERLINK_TENANT_ID`` for a platform key acting for a
tenant), exactly as any other API user would. Output is a table, or JSON with ``--json``. API errors
print the problem to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, NoReturn

import httpx
import pydantic
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlink.client import (
    InterlinkAPIError,
    InterlinkClient,
    InterlinkClientError,
    Page,
)
from interlink.client._base import DEFAULT_BASE_URL, NOT_GIVEN, NotGiven
from interlink.core.enums import ApiKeyScope, ApiKeyStatus, IntegrationEnvironment

tenants_app = typer.Typer(help="Manage tenants through the REST API.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage and verify API keys through the REST API.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit trail and security events.", no_args_is_help=True)

Url = Annotated[
    str,
    typer.Option("--url", envvar="INTERLINK_API_URL", help="Base URL of the Interlink API."),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="INTERLINK_API_KEY", help="API key to authenticate with.", show_default=False
    ),
]
Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant", envvar="INTERLINK_TENANT_ID", help="Platform keys: the tenant to act for (X-Tenant-Id)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=200, help="Items per page.")]
After = Annotated[str | None, typer.Option("--after", help="Cursor: the nextCursor of the previous page.")]
All = Annotated[bool, typer.Option("--all", help="Fetch every page.")]
Metadata = Annotated[str | None, typer.Option("--metadata", help='JSON object, e.g. \'{"team": "core"}\'.')]


@dataclass(frozen=True)
class Connection:
    url: str
    api_key: str
    tenant: str | None
    as_json: bool


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"interlink: {message}", err=True)
    raise typer.Exit(code=code)


def _print_problem(exc: InterlinkAPIError) -> None:
    line = f"interlink: {exc.status} {exc.title}"
    if exc.detail:
        line += f": {exc.detail}"
    typer.echo(line, err=True)
    for problem in exc.errors:
        named = f"{problem.field}: {problem.message}"
        if named not in (exc.detail or ""):
            typer.echo(f"  {named}", err=True)
    if exc.reason:
        typer.echo(f"  reason: {exc.reason}", err=True)
    if exc.correlation_id:
        typer.echo(f"  correlation id: {exc.correlation_id}", err=True)


@contextmanager
def _api(conn: Connection) -> Iterator[InterlinkClient]:
    """An SDK client; any API or connection error ends the command with a message, never a traceback."""
    if not conn.api_key:
        _fail("no API key: pass --api-key or set INTERLINK_API_KEY", code=2)
    try:
        with InterlinkClient(conn.url, conn.api_key, tenant_id=conn.tenant or None) as client:
            yield client
    except InterlinkAPIError as exc:
        _print_problem(exc)
        raise typer.Exit(code=1) from None
    except InterlinkClientError as exc:
        _fail(f"{exc} (is `interlink serve` running?)")
    except httpx.InvalidURL as exc:
        _fail(f"invalid --url {conn.url!r}: {exc}", code=2)
    except pydantic.ValidationError as exc:
        _fail(f"unexpected answer from {conn.url}: {exc.error_count()} field(s) did not match")


# ---- parsing -------------------------------------------------------------------------------------


def _metadata(value: str | None, option: str = "--metadata") -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return parsed


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time such as 2030-01-31T12:00:00Z", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- output --------------------------------------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 220)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=str) if value else "-"
    if isinstance(value, pydantic.BaseModel):
        return json.dumps(value.model_dump(mode="json", by_alias=True))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Page):
        return {
            "data": [_jsonable(v) for v in value.data],
            "hasMore": value.has_more,
            "nextCursor": value.next_cursor,
        }
    return value


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(_jsonable(value), indent=2))


def _show(model: pydantic.BaseModel, title: str | None = None, exclude: set[str] | None = None) -> None:
    """One object as a two-column table of its camelCase fields."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in model.model_dump(by_alias=True, exclude=exclude).items():
        table.add_row(name, Text(_text(value)))
    _console().print(table)


def _one(conn: Connection, model: pydantic.BaseModel, title: str | None = None) -> None:
    if conn.as_json:
        _print_json(model)
    else:
        _show(model, title)


Column = tuple[str, Callable[[Any], Any]]


def _table(rows: Sequence[Any], columns: Sequence[Column], empty: str) -> None:
    if not rows:
        _console().print(empty)
        return
    table = Table()
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_text(get(row))) for _, get in columns))
    _console().print(table)


def _list_output(
    conn: Connection, fetched: Page[Any] | list[Any], columns: Sequence[Column], empty: str
) -> None:
    if isinstance(fetched, list):
        fetched = Page(data=fetched, has_more=False)
    if conn.as_json:
        _print_json(fetched)
        return
    _table(fetched.data, columns, empty)
    if fetched.has_more and fetched.next_cursor:
        typer.echo(f"more: pass --after {fetched.next_cursor} (or --all)", err=True)


def _collect(every: bool, page: Callable[[], Page[Any]], all_items: Callable[[], Iterable[Any]]) -> Any:
    return list(all_items()) if every else page()


# ---- tenants -------------------------------------------------------------------------------------

TENANT_COLUMNS: list[Column] = [
    ("id", lambda t: t.id),
    ("slug", lambda t: t.slug),
    ("name", lambda t: t.name),
    ("created", lambda t: t.created_at),
]


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    slug: Annotated[str | None, typer.Option(help="URL-safe unique slug (default: from the name).")] = None,
    metadata: Metadata = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Create a tenant (platform keys only)."""
    conn = Connection(url, api_key, tenant, as_json)
    meta = _metadata(metadata)
    with _api(conn) as client:
        made = client.tenants.create(name, slug=slug, metadata=meta)
    _one(conn, made, f"Created tenant {made.id}")


@tenants_app.command("list")
def tenants_list(
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Every tenant (platform keys) or your own (tenant keys), newest first."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.tenants.list(limit=limit, after=after),
            lambda: client.tenants.iter_all(page_size=limit),
        )
    _list_output(conn, fetched, TENANT_COLUMNS, "no tenants")


@tenants_app.command("show")
def tenants_show(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (ten_...).")],
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Show one tenant."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        found = client.tenants.get(tenant_id)
    _one(conn, found)


@tenants_app.command("update")
def tenants_update(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (ten_...).")],
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object replacing it.")] = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Change a tenant's name or metadata (platform keys only)."""
    conn = Connection(url, api_key, tenant, as_json)
    meta = _metadata(metadata)
    if name is None and meta is None:
        raise typer.BadParameter("nothing to change: pass --name and/or --metadata")
    with _api(conn) as client:
        changed = client.tenants.update(
            tenant_id,
            name=name if name is not None else NOT_GIVEN,
            metadata=meta if meta is not None else NOT_GIVEN,
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


@keys_app.command("create")
def keys_create(
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
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Create a key. The key is printed once: store it now, it cannot be shown again."""
    conn = Connection(url, api_key, tenant, as_json)
    if not scope:
        raise typer.BadParameter("give at least one --scope", param_hint="--scope")
    if kind not in ("tenant", "platform"):
        raise typer.BadParameter("must be 'tenant' or 'platform'", param_hint="--kind")
    expiry = _when(expires_at, "--expires-at")
    meta = _metadata(metadata)
    with _api(conn) as client:
        made = client.keys.create(
            name,
            scope,
            kind=kind,
            environment=environment,
            expires_at=expiry,
            metadata=meta,
            allowed_ips=allow_ip,
            rate_limit=rate_limit,
            rate_limit_period_seconds=rate_period,
        )
    if as_json:
        _print_json(made)
        typer.echo(f"interlink: the 'key' field is the API key {STORE_IT}", err=True)
        return
    _show(made, f"Created key {made.id}", exclude={"key"})
    typer.echo(f"API key {STORE_IT}: {made.key}")


@keys_app.command("list")
def keys_list(
    status: Annotated[ApiKeyStatus | None, typer.Option(help="Only keys in this status.")] = None,
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Keys of the tenant, newest first (never the keys themselves, only their prefixes)."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.keys.list(limit=limit, after=after, status=status),
            lambda: client.keys.iter_all(status=status, page_size=limit),
        )
    _list_output(conn, fetched, KEY_COLUMNS, "no keys")


@keys_app.command("show")
def keys_show(
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Show one key."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        found = client.keys.get(key_id)
    _one(conn, found)


@keys_app.command("update")
def keys_update(
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
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Change a key's name, scopes, expiry, metadata, allowed IPs or rate limit."""
    conn = Connection(url, api_key, tenant, as_json)
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
    with _api(conn) as client:
        changed = client.keys.update(
            key_id, expires_at=expiry, rate_limit=limit, rate_limit_period_seconds=rate_period, **given
        )
    _one(conn, changed, f"Updated key {changed.id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    grace: Annotated[
        int | None,
        typer.Option(
            "--grace", min=0, help="Seconds the old key keeps working (default: the server's, 24 h)."
        ),
    ] = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Issue a replacement key (printed once); the old one works until its grace period ends."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        rotated = client.keys.rotate(key_id, grace_period_seconds=grace)
    if as_json:
        _print_json(rotated)
        typer.echo(f"interlink: 'newKey.key' is the new API key {STORE_IT}", err=True)
        return
    old, new = rotated.old_key, rotated.new_key
    typer.echo(f"Rotated {old.id} -> {new.id}")
    typer.echo(f"The old key is {old.status.value} until {_text(old.grace_until)}.")
    typer.echo(f"New API key {STORE_IT}: {new.key}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Revoke a key at once, in every process."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        revoked = client.keys.revoke(key_id, reason=reason)
    if as_json:
        _print_json(revoked)
    else:
        typer.echo(f"Revoked {revoked.id} ({revoked.name}): status {revoked.status.value}")


@keys_app.command("verify")
def keys_verify(
    key: Annotated[str, typer.Argument(help="The key to check; '-' reads it from stdin.")],
    scope: Scopes = None,
    ip: Annotated[str | None, typer.Option(help="The end client's IP, for allowed ranges.")] = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Check a key presented to your application. Exits 0 when valid, 1 when not."""
    conn = Connection(url, api_key, tenant, as_json)
    presented = _read_key(key)
    if not presented:
        raise typer.BadParameter("no key given", param_hint="KEY")
    with _api(conn) as client:
        verdict = client.keys.verify(presented, scopes=scope or None, ip=ip)
    if as_json:
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


@audit_app.command("events")
def audit_events(
    action: Annotated[str | None, typer.Option(help="e.g. key.revoked")] = None,
    resource_type: Annotated[str | None, typer.Option("--resource-type", help="e.g. api_key")] = None,
    resource_id: Annotated[str | None, typer.Option("--resource-id")] = None,
    actor_key: Annotated[str | None, typer.Option("--actor-key", help="Key id of the actor.")] = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """The audit trail: every mutation in the tenant, newest first."""
    conn = Connection(url, api_key, tenant, as_json)
    filters: dict[str, Any] = {
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "actor_key_id": actor_key,
        "correlation_id": correlation_id,
        "since": _when(since, "--since"),
        "until": _when(until, "--until"),
    }
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.audit_events.list(limit=limit, after=after, **filters),
            lambda: client.audit_events.iter_all(page_size=limit, **filters),
        )
    _list_output(conn, fetched, AUDIT_COLUMNS, "no audit events")


@audit_app.command("security")
def audit_security(
    event_type: Annotated[str | None, typer.Option("--type", help="e.g. auth.failed")] = None,
    key_id: Annotated[str | None, typer.Option("--key", help="Key id.")] = None,
    source_ip: Annotated[str | None, typer.Option("--source-ip")] = None,
    min_risk: Annotated[int | None, typer.Option("--min-risk", min=0, max=100)] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Security events (failed authentication, denied IPs, rotations, ...), newest first."""
    conn = Connection(url, api_key, tenant, as_json)
    filters: dict[str, Any] = {
        "event_type": event_type,
        "key_id": key_id,
        "source_ip": source_ip,
        "min_risk": min_risk,
        "since": _when(since, "--since"),
        "until": _when(until, "--until"),
    }
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.security_events.list(limit=limit, after=after, **filters),
            lambda: client.security_events.iter_all(page_size=limit, **filters),
        )
    _list_output(conn, fetched, SECURITY_COLUMNS, "no security events")
