"""``/ui`` integration pages: the provider catalogue, connections (with their health checks), the
outbound request log and inbound sources.

The same plumbing as :mod:`interlink.http.routers.ui` and :mod:`~interlink.http.routers.ui_webhooks`:
every page authenticates the session's key for the scope its REST twin needs (any valid key for the
catalogue; ``connections:read``/``connections:write`` for connections and the request log;
``webhooks:read``/``webhooks:write`` for inbound sources), then calls the domain services
(:class:`~interlink.connections.service.Connections`, :class:`~interlink.connections.oauth.Tokens`,
:class:`~interlink.connections.authorize.Authorizer`,
:class:`~interlink.connections.health.HealthChecker`, :mod:`interlink.outbound.service`,
:class:`~interlink.webhooks.inbound.sources.InboundSources`) inside one unit of work. Mutations are
form POSTs carrying the CSRF token and answer with a redirect; a service validation error is shown
next to the field it names, with the form as it was sent.

Credentials are write-only: pages show which roles are stored (``credentials``, ``accessToken``,
``refreshToken``), never a value. An inbound source's signing secret is shown only in the answer to
its create or rotate form (201, not a redirect), and never sent back into a form with an error.
The OAuth2 "Connect" action renders the provider's authorize URL as a link (the page's
``form-action 'self'`` policy forbids a form redirecting off-site).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlink.connections.authorize import AuthorizeLink, Authorizer, StateSigner
from interlink.connections.catalogue import ProviderFilter
from interlink.connections.connection_schemas import ConnectionInfo, connection_info
from interlink.connections.health import HealthChecker
from interlink.connections.health_schemas import connection_health, health_check_info
from interlink.connections.models import HealthCheckTrigger, IntegrationConnection
from interlink.connections.oauth import Tokens
from interlink.connections.schemas import IntegrationProviderExtended
from interlink.connections.service import (
    CREDENTIAL_FIELDS,
    OAUTH2_TYPES,
    TENANT_SETTABLE,
    TRANSITIONS,
    ConnectionFilter,
    Connections,
    ConnectionSpec,
    initial_status,
    resolve_base_url,
)
from interlink.core import audit
from interlink.core.enums import (
    ApiKeyScope,
    AuthenticationType,
    IntegrationCategory,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
    IntegrationProviderStatus,
)
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.pagination import MAX_LIMIT, PageRequest
from interlink.core.secrets import SecretStore
from interlink.http.routers.ui import (
    UiSession,
    _html,
    _int_param,
    _open,
    _page_request,
    _pager,
    _read_form,
    _see_other,
    _text_param,
    delete_confirmed,
    page,
)
from interlink.http.routers.ui_webhooks import (
    FormInvalid,
    _field_of,
    _no_nul,
    parse_json,
    parse_names,
    parse_time,
)
from interlink.outbound import metrics as outbound_metrics
from interlink.outbound import service as request_log
from interlink.outbound.response import ERROR_CLASSES
from interlink.outbound.schemas import ApiMetrics
from interlink.webhooks.inbound.schemas import InboundSourceInfo, source_info
from interlink.webhooks.inbound.schemes import Scheme
from interlink.webhooks.inbound.sources import (
    DEFAULT_MAX_BODY,
    DEFAULT_TOLERANCE,
    InboundSources,
    RevealedSourceSecret,
    SourceSpec,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

PROVIDERS = "/ui/providers"
CONNECTIONS = "/ui/connections"
API_REQUESTS = "/ui/api-requests"
INBOUND_SOURCES = "/ui/inbound-sources"
RECENT_REQUESTS = 10
RECENT_HEALTH_CHECKS = 10
RECENT_SOURCES = 20
AUDIT_TRAIL = 25
MAX_FORM_TEXT = 40_000

A = AuthenticationType
S = IntegrationConnectionStatus

CONNECTION_NOTICES = {
    "created": "Connection created. Its credentials are stored encrypted and never shown again.",
    "updated": "Connection saved.",
    "enabled": "Connection enabled.",
    "disabled": "Connection disabled: Interlink makes no calls with it until it is enabled again.",
    "deleted": "Connection deleted with its stored credentials and tokens.",
    "revoked": "Connection revoked: Interlink makes no calls with it again; it can only be deleted.",
    "refreshed": "A new access token was obtained.",
    "connected": "Access granted at the provider: the tokens are stored and the connection is active.",
    "health-checked": "Health check finished: the result is under Health.",
}
OAUTH_FAILED = "The authorization did not complete; the provider's answer is under Last error."
SOURCE_NOTICES = {
    "updated": "Inbound source saved.",
    "deleted": "Inbound source deleted: its receive path answers 404 and its secrets stopped verifying.",
}
SCHEME_LABELS = {
    "standard": "Standard Webhooks (webhook-signature)",
    "stripe": "Stripe (Stripe-Signature)",
    "github": "GitHub (X-Hub-Signature-256)",
    "shopify": "Shopify (X-Shopify-Hmac-Sha256)",
    "hmac": "Generic HMAC header (set the scheme options)",
}
# Where each service field's error is shown on the inbound source form (by its first segment).
SOURCE_FORM_FIELDS = (
    "name",
    "description",
    "scheme",
    "connectionId",
    "secret",
    "schemeOptions",
    "toleranceSeconds",
    "ipAllowlist",
    "maxBodyBytes",
    "eventType",
    "dedupe",
    "enabled",
)
CREDENTIAL_LABELS = {
    "apiKey": "API key",
    "username": "Username",
    "password": "Password",
    "token": "Bearer token",
    "secret": "HMAC secret",
    "clientId": "Client ID",
    "clientSecret": "Client secret",
}
SECRET_FIELDS = frozenset({"apiKey", "password", "token", "secret", "clientSecret"})
# Where each service field's error is shown on the connection form; others go at the top.
CONNECTION_FORM_FIELDS = ("providerKey", "name", "environment", "authType", "config", "scopes", "metadata")


def _notice(request: Request, notices: dict[str, str]) -> str | None:
    return notices.get(request.query_params.get("notice", ""))


def _connections(ui: UiSession) -> Connections:
    return Connections(ui.runtime.providers, SecretStore.from_runtime(ui.runtime))


def _authorizer(ui: UiSession) -> Authorizer:
    settings = ui.runtime.settings
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    return Authorizer(
        Tokens.from_runtime(ui.runtime), StateSigner(ui.runtime.local_secrets.key_pepper), public_url
    )


def _enum_param(request: Request, name: str, enum: Any) -> Any:
    """A query parameter naming a member of ``enum`` (None when blank); 422 naming it otherwise."""
    value = _text_param(request, name, 40)
    if not value:
        return None
    try:
        return enum(value.upper())
    except ValueError as exc:
        raise ValidationFailed(f"unknown {name} {value!r}", field=name) from exc


# -- the provider catalogue ------------------------------------------------------------------------


def config_fields(provider: IntegrationProviderExtended | None) -> list[dict[str, Any]]:
    """The properties of the provider's ``config_schema`` as form fields, in schema order."""
    schema = (provider.config_schema if provider else None) or {}
    required = set(schema.get("required", []))
    fields: list[dict[str, Any]] = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "string")
        fields.append(
            {
                "name": name,
                "type": kind if isinstance(kind, str) else "/".join(map(str, kind)),
                "required": name in required,
                "description": prop.get("description", ""),
                "pattern": prop.get("pattern"),
                "enum": [str(v) for v in prop.get("enum", [])] or None,
                "default": prop.get("default"),
                "simple": kind in ("string", "integer", "number", "boolean"),
            }
        )
    return fields


@router.get("/providers")
@page
async def providers_page(request: Request) -> Response:
    ui = await _open(request, None, PROVIDERS)  # type: ignore[arg-type]  # any valid key, as the API
    filters = {
        "category": _text_param(request, "category", 40),
        "status": _text_param(request, "status", 20),
        "q": _text_param(request, "q", 100),
    }
    flt = ProviderFilter(
        category=_enum_param(request, "category", IntegrationCategory),
        status=_enum_param(request, "status", IntegrationProviderStatus),
        q=filters["q"] or None,
    )
    page_request = _page_request(request)
    result = ui.runtime.providers.list(flt, limit=page_request.limit, after=page_request.after)
    return _html(
        request,
        "providers.html",
        active="providers",
        providers=result.items,
        filters=filters,
        categories=[c.value for c in IntegrationCategory],
        statuses=[s.value for s in IntegrationProviderStatus],
        can_connect=ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE),
        **_pager(PROVIDERS, filters, page_request, result.next_cursor),
    )


@router.get("/providers/{key}")
@page
async def provider_page(request: Request, key: str) -> Response:
    ui = await _open(request, None, PROVIDERS)  # type: ignore[arg-type]  # any valid key, as the API
    provider = ui.runtime.providers.get(key)
    if provider is None:
        raise NotFound(f"provider {key[:100]!r} is not in the catalogue")
    connector = ui.runtime.connectors.for_provider(provider.key)
    return _html(
        request,
        "provider_detail.html",
        active="providers",
        provider=provider,
        source=ui.runtime.providers.sources.get(provider.key, "builtin"),
        fields=config_fields(provider),
        credential_fields={t.value: CREDENTIAL_FIELDS[t] for t in provider.auth_types},
        connector=connector.info() if connector is not None else None,
        # A DISABLED provider takes no new connections (the service refuses them).
        can_connect=ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE)
        and provider.status is not IntegrationProviderStatus.DISABLED,
    )


# -- connections: reading forms ----------------------------------------------------------------------


def _blank_connection_form(provider: IntegrationProviderExtended | None) -> dict[str, Any]:
    return {
        "provider_key": provider.key if provider else "",
        "environment": IntegrationEnvironment.PRODUCTION.value,
        "name": "",
        "auth_type": provider.auth_types[0].value if provider else "",
        "config": {f["name"]: "" for f in config_fields(provider)},
        "config_json": "",
        "credentials": {},
        "scopes": "",
        "metadata": "",
    }


def _form_values(form: Any, provider: IntegrationProviderExtended | None) -> dict[str, Any]:
    """The connection form as sent (field names as in the templates)."""
    values = _blank_connection_form(provider)
    for name in ("provider_key", "environment", "name", "auth_type", "config_json", "scopes", "metadata"):
        if form.fields.get(name):
            values[name] = form.fields[name][0]
    for field in config_fields(provider):
        values["config"][field["name"]] = form.get(f"config.{field['name']}")
    auth = values["auth_type"]
    try:
        auth_type = AuthenticationType(auth)
    except ValueError:
        auth_type = None
    if auth_type is not None:
        required, optional = CREDENTIAL_FIELDS[auth_type]
        values["credentials"] = {n: form.get(f"credentials.{auth}.{n}") for n in required + optional}
    return values


def _check_text(values: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    texts: list[tuple[str, str]] = [(k, v) for k, v in values.items() if isinstance(v, str)]
    texts += [(f"config.{k}", v) for k, v in values["config"].items()]
    texts += [(f"credentials.{k}", v) for k, v in values["credentials"].items()]
    for name, text in texts:
        where = {"config_json": "config", "auth_type": "authType", "provider_key": "providerKey"}.get(
            name, name
        )
        if "\x00" in text:
            errors[where] = "Remove the NUL character."
        elif len(text) > MAX_FORM_TEXT:
            errors[where] = f"At most {MAX_FORM_TEXT} characters."
    if errors:
        raise FormInvalid(errors)


def _typed(field: dict[str, Any], text: str) -> Any:
    """A config value from its text input, typed as the schema property says."""
    name = f"config.{field['name']}"
    kind = field["type"]
    if kind == "integer":
        try:
            return int(text)
        except ValueError as exc:
            raise ValidationFailed(f"{name} must be a whole number", field=name) from exc
    if kind == "number":
        try:
            number = float(text)
        except ValueError as exc:
            raise ValidationFailed(f"{name} must be a number", field=name) from exc
        if number != number or number in (float("inf"), float("-inf")):
            raise ValidationFailed(f"{name} must be a finite number", field=name)
        return number
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValidationFailed(f"{name} must be true or false", field=name)
        return text == "true"
    return text


def _config_of(values: dict[str, Any], provider: IntegrationProviderExtended | None) -> dict[str, Any]:
    """``Config (JSON)`` merged with the per-field inputs (a filled input wins; a blank one drops
    the setting)."""
    config: dict[str, Any] = parse_json(values["config_json"], "config") or {}
    for field in config_fields(provider):
        if not field["simple"]:
            continue
        text = str(values["config"].get(field["name"], "")).strip()
        if text:
            config[field["name"]] = _typed(field, text)
        else:
            config.pop(field["name"], None)
    return config


def _connection_field(exc: ValidationFailed) -> str:
    """The connection form field that shows a service error (``scopes.3`` is shown at ``scopes``)."""
    field = _field_of(exc, "config")
    head = field.split(".")[0]
    return head if head in ("scopes", "metadata") else field


def _credentials_of(values: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in values["credentials"].items() if value}


def _scopes_of(values: dict[str, Any]) -> list[str] | None:
    return parse_names(values["scopes"]) or None


# -- connections: pages ------------------------------------------------------------------------------


@router.get("/connections")
@page
async def connections_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    filters = {
        "provider": _text_param(request, "provider", 64),
        "status": _text_param(request, "status", 20),
        "environment": _text_param(request, "environment", 20),
    }
    flt = ConnectionFilter(
        provider_key=filters["provider"] or None,
        status=_enum_param(request, "status", IntegrationConnectionStatus),
        environment=_enum_param(request, "environment", IntegrationEnvironment),
    )
    if flt.provider_key is not None:
        _no_nul(flt.provider_key, "provider")
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await _connections(ui).list_connections(session, ui.actor, page_request, flt)
    return _html(
        request,
        "connections.html",
        active="connections",
        connections=[connection_info(c) for c in result.items],
        health={
            c.id: {"status": c.health_status.value, "score": c.health_score}
            for c in result.items
            if c.health_status is not None
        },
        providers={key: p.name for key, p in ui.runtime.providers.providers.items()},
        filters=filters,
        statuses=[s.value for s in IntegrationConnectionStatus],
        environments=[e.value for e in IntegrationEnvironment],
        can_write=ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE),
        notice=_notice(request, CONNECTION_NOTICES),
        **_pager(CONNECTIONS, filters, page_request, result.next_cursor),
    )


def _connection_form(
    request: Request,
    ui: UiSession,
    provider: IntegrationProviderExtended | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
    *,
    connection: ConnectionInfo | None = None,
    notice: str | None = None,
) -> Response:
    auth_types = [connection.auth_type] if connection else (provider.auth_types if provider else [])
    shown = set(CONNECTION_FORM_FIELDS) | {f"config.{f['name']}" for f in config_fields(provider)}
    if values["auth_type"] in {t.value for t in auth_types}:
        required, optional = CREDENTIAL_FIELDS[AuthenticationType(values["auth_type"])]
        shown |= {f"credentials.{n}" for n in required + optional}
    general = {k: v for k, v in errors.items() if k not in shown}
    message = None
    if errors:
        message = "; ".join(v for v in general.values()) or "Check the fields marked below."
    return _html(
        request,
        "connection_form.html",
        status,
        active="connections",
        provider=provider,
        providers=[
            p
            for p in ui.runtime.providers.providers.values()
            if p.status is not IntegrationProviderStatus.DISABLED  # they take no new connections
        ],
        connection=connection,
        form=values,
        errors=errors,
        fields=config_fields(provider),
        auth_types=[t.value for t in auth_types],
        environments=[e.value for e in provider.environments] if provider else [],
        credential_fields={t.value: CREDENTIAL_FIELDS[t] for t in auth_types},
        credential_labels=CREDENTIAL_LABELS,
        secret_fields=SECRET_FIELDS,
        oauth_types=[t.value for t in OAUTH2_TYPES],
        error=message,
        notice=notice,
    )


@router.get("/connections/new")
@page
async def new_connection_page(request: Request) -> Response:
    """Step 1 picks a provider (``?provider=``); step 2 is the form for that provider."""
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    key = _text_param(request, "provider", 64)
    provider = ui.runtime.providers.get(key) if key else None
    errors = {"providerKey": f"Provider {key!r} is not in the catalogue."} if key and provider is None else {}
    if provider is not None and provider.status is IntegrationProviderStatus.DISABLED:
        errors = {
            "providerKey": f"Provider {provider.key!r} is disabled in the catalogue (no new connections)."
        }
        provider = None
    values = _blank_connection_form(provider)
    return _connection_form(request, ui, provider, values, errors, 422 if errors else 200)


@router.post("/connections")
@page
async def create_connection(request: Request) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    provider = ui.runtime.providers.get(form.get("provider_key")[:64])
    values = _form_values(form, provider)
    if provider is None:
        errors = {"providerKey": "Choose a provider of the catalogue."}
        return _connection_form(request, ui, None, values, errors, 422)
    try:
        _check_text(values)
        try:
            environment = IntegrationEnvironment(values["environment"])
        except ValueError as exc:
            raise ValidationFailed("Choose an environment.", field="environment") from exc
        try:
            auth_type = AuthenticationType(values["auth_type"])
        except ValueError as exc:
            raise ValidationFailed("Choose an authentication type.", field="authType") from exc
        spec = ConnectionSpec(
            provider_key=provider.key,
            name=values["name"],
            environment=environment,
            config=_config_of(values, provider),
            auth_type=auth_type,
            credentials=_credentials_of(values),
            scopes=_scopes_of(values),
            metadata=parse_json(values["metadata"], "metadata"),
        )
        if not spec.name:
            raise ValidationFailed("Enter a name, unique in this tenant.", field="name")
        if form.get("action") == "check":
            # As POST /v1/connections/validate: nothing is saved (the name is not checked for
            # uniqueness); the form comes back as sent, without its secret fields.
            checked = _connections(ui).check(spec)
            scopes = f" with the scopes {' '.join(checked.scopes)}" if checked.scopes else ""
            notice = (
                f"Valid: this connection would call {checked.base_url} and start "
                f"{initial_status(checked.auth_type).value}{scopes}. Nothing was saved; enter the "
                "secret fields again to create it."
            )
            return _connection_form(request, ui, provider, values, {}, 200, notice=notice)
        async with ui.runtime.db.unit_of_work() as session:
            conn = await _connections(ui).create(session, ui.actor, spec)
    except FormInvalid as exc:
        return _connection_form(request, ui, provider, values, exc.errors, 422)
    except ValidationFailed as exc:
        errors = {_connection_field(exc): exc.detail}
        return _connection_form(request, ui, provider, values, errors, exc.status)
    except Conflict as exc:
        return _connection_form(request, ui, provider, values, {"name": exc.detail}, exc.status)
    return _see_other(f"{CONNECTIONS}/{conn.id}?notice=created")


async def _connection_detail(
    request: Request,
    ui: UiSession,
    connection_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    authorize: AuthorizeLink | None = None,
) -> Response:
    service = _connections(ui)
    can_audit = ui.actor.has_scope(ApiKeyScope.AUDIT_READ)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        conn = await service.get(session, ui.actor, connection_id)
        snapshot = ui.runtime.outbound.circuit(conn.id)
        metrics = await outbound_metrics.api_metrics(
            session,
            ui.actor.tenant_id,
            connection_id=conn.id,
            circuit_state=snapshot.state if snapshot is not None else None,
        )
        recent = await request_log.list_requests(
            session,
            ui.actor.tenant_id,
            request_log.RequestFilter(connection_id=conn.id),
            PageRequest(RECENT_REQUESTS),
        )
        trail = (
            await audit.list_events(
                session,
                ui.actor.tenant_id,
                audit.AuditFilter(resource_type="connection", resource_id=conn.id),
                PageRequest(AUDIT_TRAIL),
            )
            if can_audit
            else None
        )
        sources = (
            await _sources(ui).list_sources(
                session, ui.actor, PageRequest(RECENT_SOURCES), connection_id=conn.id
            )
            if ui.actor.has_scope(ApiKeyScope.WEBHOOKS_READ)
            else None
        )
        checker = HealthChecker(ui.runtime)
        health = connection_health(await checker.summary(session, ui.actor, conn.id))
        checks = await checker.history(session, ui.actor, conn.id, PageRequest(RECENT_HEALTH_CHECKS))
    provider = ui.runtime.providers.get(conn.provider_key)
    connector = ui.runtime.connectors.for_provider(conn.provider_key)
    base_url = None
    if provider is not None:
        try:
            base_url = resolve_base_url(provider, conn.environment, conn.config or {})
        except ValidationFailed:
            base_url = None
    return _html(
        request,
        "connection_detail.html",
        status,
        active="connections",
        connection=connection_info(conn),
        provider=provider,
        base_url=base_url,
        transitions=_transitions(conn),
        metrics=metrics,
        requests=[request_log.request_info(r) for r in recent.items],
        more_requests=recent.has_more,
        trail=trail.items if trail is not None else None,
        more_trail=trail.has_more if trail is not None else False,
        sources=[source_info(r) for r in sources.items] if sources is not None else None,
        more_sources=sources.has_more if sources is not None else False,
        can_write_sources=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        health=health,
        health_checks=[health_check_info(r) for r in checks.items],
        more_health_checks=checks.has_more,
        connector=connector.info() if connector is not None else None,
        can_write=ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE),
        is_oauth=conn.auth_type in OAUTH2_TYPES,
        can_connect=conn.auth_type is A.OAUTH2_AUTHORIZATION_CODE
        and conn.status not in (S.DISABLED, S.REVOKED),
        authorize=authorize,
        errors=errors or {},
        notice=_oauth_notice(request) or _notice(request, CONNECTION_NOTICES),
        error=error or (OAUTH_FAILED if request.query_params.get("oauth") == "error" else None),
    )


def _oauth_notice(request: Request) -> str | None:
    """The outcome of an authorization the OAuth callback sent the user back with (its text is
    ours: nothing from the query string is shown)."""
    return CONNECTION_NOTICES["connected"] if request.query_params.get("oauth") == "connected" else None


def _transitions(conn: IntegrationConnection) -> list[dict[str, Any]]:
    """The documented transitions out of the current status, and who makes each."""
    return [
        {"status": s.value, "tenant": s in TENANT_SETTABLE}
        for s in IntegrationConnectionStatus
        if s in TRANSITIONS[conn.status]
    ]


@router.get("/connections/{connection_id}")
@page
async def connection_page(request: Request, connection_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    return await _connection_detail(request, ui, connection_id)


def _edit_values(info: ConnectionInfo, provider: IntegrationProviderExtended | None) -> dict[str, Any]:
    """The edit form filled from the connection (config settings of the schema get their own input;
    any others stay in the JSON box)."""
    values = _blank_connection_form(provider)
    simple = {f["name"]: f for f in config_fields(provider) if f["simple"]}
    rest = {k: v for k, v in info.config.items() if k not in simple}
    for name in simple:
        value = info.config.get(name)
        values["config"][name] = (
            "" if value is None else (json.dumps(value) if isinstance(value, bool) else str(value))
        )
    values.update(
        provider_key=info.provider_key,
        environment=info.environment.value,
        name=info.name,
        auth_type=info.auth_type.value,
        config_json=json.dumps(rest, indent=2, ensure_ascii=False) if rest else "",
        scopes=" ".join(info.scopes),
        metadata=json.dumps(info.metadata, indent=2, ensure_ascii=False) if info.metadata else "",
    )
    return values


@router.get("/connections/{connection_id}/edit")
@page
async def edit_connection_page(request: Request, connection_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        info = connection_info(await _connections(ui).get(session, ui.actor, connection_id))
    provider = ui.runtime.providers.get(info.provider_key)
    return _connection_form(request, ui, provider, _edit_values(info, provider), {}, 200, connection=info)


@router.post("/connections/{connection_id}/edit")
@page
async def update_connection(request: Request, connection_id: str) -> Response:
    """Save what changed: name, config, scopes (OAuth2), metadata; credentials are replaced only
    when a credential field is filled in."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    service = _connections(ui)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        info = connection_info(await service.get(session, ui.actor, connection_id))
    provider = ui.runtime.providers.get(info.provider_key)
    values = _form_values(form, provider)
    values.update(
        provider_key=info.provider_key, environment=info.environment.value, auth_type=info.auth_type.value
    )
    required, optional = CREDENTIAL_FIELDS[info.auth_type]
    values["credentials"] = {
        n: form.get(f"credentials.{info.auth_type.value}.{n}") for n in required + optional
    }
    try:
        _check_text(values)
        changes: dict[str, Any] = {}
        if values["name"] != info.name:
            changes["name"] = values["name"]
        config = _config_of(values, provider)
        if config != info.config:
            changes["config"] = config
        metadata = parse_json(values["metadata"], "metadata") or {}
        if metadata != info.metadata:
            changes["metadata"] = metadata
        if info.auth_type in OAUTH2_TYPES:
            scopes = _scopes_of(values)
            if (scopes or []) != info.scopes:
                changes["scopes"] = scopes
        elif values["scopes"].strip():
            raise ValidationFailed("scopes are only used with OAUTH2_* authentication", field="scopes")
        credentials = _credentials_of(values)
        if credentials:
            changes["credentials"] = credentials
        if changes:
            async with ui.runtime.db.unit_of_work() as session:
                await service.update(session, ui.actor, connection_id, changes)
    except FormInvalid as exc:
        return _connection_form(request, ui, provider, values, exc.errors, 422, connection=info)
    except ValidationFailed as exc:
        errors = {_connection_field(exc): exc.detail}
        return _connection_form(request, ui, provider, values, errors, exc.status, connection=info)
    except Conflict as exc:
        field = "name" if "named" in exc.detail else "status"
        return _connection_form(
            request, ui, provider, values, {field: exc.detail}, exc.status, connection=info
        )
    return _see_other(f"{CONNECTIONS}/{connection_id}?notice=updated")


async def _set_status(request: Request, connection_id: str, wanted: IntegrationConnectionStatus) -> Response:
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            await _connections(ui).update(session, ui.actor, connection_id, {"status": wanted})
    except Conflict as exc:
        return await _connection_detail(request, ui, connection_id, status=exc.status, error=exc.detail)
    notice = "disabled" if wanted is S.DISABLED else "enabled"
    return _see_other(f"{CONNECTIONS}/{connection_id}?notice={notice}")


@router.post("/connections/{connection_id}/enable")
@page
async def enable_connection(request: Request, connection_id: str) -> Response:
    """ACTIVE again (PENDING when it has no usable credential or token), as ``PATCH status``."""
    return await _set_status(request, connection_id, S.ACTIVE)


@router.post("/connections/{connection_id}/disable")
@page
async def disable_connection(request: Request, connection_id: str) -> Response:
    return await _set_status(request, connection_id, S.DISABLED)


@router.post("/connections/{connection_id}/revoke")
@page
async def revoke_connection(request: Request, connection_id: str) -> Response:
    """REVOKED (final: Interlink never calls with it again; only metadata can change, and delete),
    as ``PATCH status REVOKED``, after the form's confirmation box was ticked."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    if form.get("confirm") != "yes":
        async with ui.runtime.db.unit_of_work(write=False) as session:
            await _connections(ui).get(session, ui.actor, connection_id)  # someone else's: 404 first
        errors = {"revokeConfirm": "Tick the box to confirm that this connection should be revoked."}
        return await _connection_detail(request, ui, connection_id, status=422, errors=errors)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            await _connections(ui).update(session, ui.actor, connection_id, {"status": S.REVOKED})
    except Conflict as exc:
        return await _connection_detail(request, ui, connection_id, status=exc.status, error=exc.detail)
    return _see_other(f"{CONNECTIONS}/{connection_id}?notice=revoked")


@router.post("/connections/{connection_id}/delete")
@page
async def delete_connection(request: Request, connection_id: str) -> Response:
    """Delete after the form's confirmation box was ticked (and the browser's prompt accepted)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    return await delete_confirmed(
        ui,
        form,
        _connections(ui),
        connection_id,
        noun="connection",
        collection=CONNECTIONS,
        detail=lambda errors: _connection_detail(request, ui, connection_id, status=422, errors=errors),
    )


@router.post("/connections/{connection_id}/connect")
@page
async def connect_connection(request: Request, connection_id: str) -> Response:
    """Make a fresh authorize URL (audited as ``connection.authorization_started``) and show it as
    the link that sends the user to the provider."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    try:
        link = await _authorizer(ui).authorize_url(
            ui.actor, connection_id, return_to=f"{CONNECTIONS}/{connection_id}"
        )
    except (Conflict, ValidationFailed) as exc:
        return await _connection_detail(request, ui, connection_id, status=exc.status, error=exc.detail)
    return await _connection_detail(request, ui, connection_id, authorize=link)


@router.post("/connections/{connection_id}/refresh")
@page
async def refresh_connection_token(request: Request, connection_id: str) -> Response:
    """Obtain a new access token now (refresh token or client credentials), single-flight."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    try:
        await Tokens.from_runtime(ui.runtime).refresh(ui.actor, connection_id, force=True)
    except InterlinkError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _connection_detail(request, ui, connection_id, status=exc.status, error=exc.detail)
    return _see_other(f"{CONNECTIONS}/{connection_id}?notice=refreshed")


# -- connection health -------------------------------------------------------------------------------


@router.post("/connections/{connection_id}/health-checks")
@page
async def run_health_check(request: Request, connection_id: str) -> Response:
    """Check the connection now (as ``POST /v1/connections/{id}/health-checks``) and go back to its
    page; a connection that cannot be called (409) is shown on the page with the reason."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    try:
        await HealthChecker(ui.runtime).run(ui.actor, connection_id, HealthCheckTrigger.MANUAL)
    except Conflict as exc:
        return await _connection_detail(request, ui, connection_id, status=exc.status, error=exc.detail)
    return _see_other(f"{CONNECTIONS}/{connection_id}?notice=health-checked")


@router.get("/connections/{connection_id}/health-checks")
@page
async def health_checks_page(request: Request, connection_id: str) -> Response:
    """Every stored check of the connection, newest first, a page at a time (as ``GET
    /v1/connections/{id}/health-checks``)."""
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        conn = await _connections(ui).get(session, ui.actor, connection_id)
        checks = await HealthChecker(ui.runtime).history(session, ui.actor, conn.id, page_request)
    return _html(
        request,
        "health_checks.html",
        active="connections",
        connection=connection_info(conn),
        health_checks=[health_check_info(r) for r in checks.items],
        **_pager(f"{CONNECTIONS}/{conn.id}/health-checks", {}, page_request, checks.next_cursor),
    )


@router.get("/connections/{connection_id}/health-checks/{check_id}")
@page
async def health_check_page(request: Request, connection_id: str, check_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        conn = await _connections(ui).get(session, ui.actor, connection_id)
        row = await HealthChecker(ui.runtime).get_check(session, ui.actor, connection_id, check_id[:64])
    return _html(
        request,
        "health_check_detail.html",
        active="connections",
        connection=connection_info(conn),
        check=health_check_info(row),
    )


# -- the outbound request log ------------------------------------------------------------------------


@router.get("/api-requests")
@page
async def api_requests_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, API_REQUESTS)
    filters = {
        "connectionId": _text_param(request, "connectionId", 64),
        "providerKey": _text_param(request, "providerKey", 64),
        "status": _text_param(request, "status", 3),
        "errorClass": _text_param(request, "errorClass", 40),
        "since": _text_param(request, "since", 40),
        "until": _text_param(request, "until", 40),
    }
    _no_nul(filters["connectionId"], "connectionId")
    _no_nul(filters["providerKey"], "providerKey")
    flt = request_log.RequestFilter(
        connection_id=filters["connectionId"] or None,
        provider_key=filters["providerKey"] or None,
        status=_int_param(filters["status"], "status", 100, 999) if filters["status"] else None,
        error_class=filters["errorClass"] or None,
        since=parse_time(filters["since"], "since"),
        until=parse_time(filters["until"], "until"),
    )
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await request_log.list_requests(session, ui.actor.tenant_id, flt, page_request)
        connections = await _connections(ui).list_connections(
            session, ui.actor, PageRequest(MAX_LIMIT), ConnectionFilter()
        )
        # As GET /v1/api-requests/metrics: the connection or provider chosen, in the window chosen
        # (default the last 24 hours); status and outcome do not narrow the metrics. A window the
        # metrics refuse (over 90 days, ...) still lists the calls, with the reason instead.
        metrics: ApiMetrics | None = None
        metrics_error = None
        try:
            metrics = await outbound_metrics.api_metrics(
                session,
                ui.actor.tenant_id,
                connection_id=flt.connection_id,
                provider_key=flt.provider_key,
                since=flt.since,
                until=flt.until,
            )
        except ValidationFailed as exc:
            metrics_error = exc.detail
    return _html(
        request,
        "api_requests.html",
        active="api-requests",
        requests=[request_log.request_info(r) for r in result.items],
        connections={c.id: c.name for c in connections.items},
        providers={key: p.name for key, p in sorted(ui.runtime.providers.providers.items())},
        metrics=metrics,
        metrics_error=metrics_error,
        filters=filters,
        error_classes=["none", *sorted(ERROR_CLASSES)],
        **_pager(API_REQUESTS, filters, page_request, result.next_cursor),
    )


@router.get("/api-requests/{request_id}")
@page
async def api_request_page(request: Request, request_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, API_REQUESTS)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row = await request_log.get_request(session, ui.actor.tenant_id, request_id)
        connection = None
        if row.connection_id:
            try:
                connection = connection_info(await _connections(ui).get(session, ui.actor, row.connection_id))
            except NotFound:  # deleted since, or not a stored connection
                connection = None
    return _html(
        request,
        "api_request_detail.html",
        active="api-requests",
        call=request_log.request_info(row),
        connection=connection,
    )


# -- inbound sources ---------------------------------------------------------------------------------


def _sources(ui: UiSession) -> InboundSources:
    return InboundSources(ui.runtime.keyring, ui.runtime.settings.max_body_bytes)


@router.get("/inbound-sources")
@page
async def inbound_sources_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, INBOUND_SOURCES)
    page_request = _page_request(request)
    connections: dict[str, str] = {}
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await _sources(ui).list_sources(session, ui.actor, page_request)
        if ui.actor.has_scope(ApiKeyScope.CONNECTIONS_READ):
            listed = await _connections(ui).list_connections(
                session, ui.actor, PageRequest(MAX_LIMIT), ConnectionFilter()
            )
            connections = {c.id: c.name for c in listed.items}
    return _html(
        request,
        "inbound_sources.html",
        active="inbound-sources",
        sources=[source_info(r) for r in result.items],
        connections=connections,
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        notice=_notice(request, SOURCE_NOTICES),
        **_pager(INBOUND_SOURCES, {}, page_request, result.next_cursor),
    )


def _blank_source_form(connection_id: str = "") -> dict[str, Any]:
    return {
        "name": "",
        "description": "",
        "scheme": Scheme.STANDARD.value,
        "connection_id": connection_id,
        "tolerance_seconds": "",
        "ip_allowlist": "",
        "max_body_bytes": "",
        "scheme_options": "",
        "event_from": "",
        "event_field": "",
        "event_prefix": "",
        "dedupe_from": "default",
        "dedupe_field": "",
        "enabled": True,
    }


def _source_values(info: InboundSourceInfo) -> dict[str, Any]:
    """The edit form filled from the source."""
    event = info.event_type or {}
    return {
        "name": info.name,
        "description": info.description or "",
        "scheme": info.scheme,
        "connection_id": info.connection_id or "",
        "tolerance_seconds": str(info.tolerance_seconds),
        "ip_allowlist": "\n".join(info.ip_allowlist),
        "max_body_bytes": str(info.max_body_bytes),
        "scheme_options": json.dumps(info.scheme_options, indent=2) if info.scheme_options else "",
        "event_from": event.get("from", ""),
        "event_field": event.get("field", ""),
        "event_prefix": event.get("prefix", ""),
        "dedupe_from": info.dedupe["from"] if info.dedupe else "off",
        "dedupe_field": info.dedupe["field"] if info.dedupe else "",
        "enabled": info.enabled,
    }


def _source_form_values(form: Any) -> dict[str, Any]:
    """The inbound source form as sent (the secret is never sent back)."""
    values = _blank_source_form()
    for name in values:
        if name != "enabled":
            values[name] = form.get(name)
    values["scheme_options"] = (form.fields.get("scheme_options") or [""])[0]
    values["dedupe_from"] = values["dedupe_from"] or "default"
    values["enabled"] = form.get("enabled") == "yes"
    return values


SOURCE_INPUTS = {
    "connection_id": "connectionId",
    "tolerance_seconds": "toleranceSeconds",
    "ip_allowlist": "ipAllowlist",
    "max_body_bytes": "maxBodyBytes",
    "scheme_options": "schemeOptions",
    "event_from": "eventType",
    "event_field": "eventType",
    "event_prefix": "eventType",
    "dedupe_from": "dedupe",
    "dedupe_field": "dedupe",
}


def _source_int(text: str, name: str) -> int | None:
    """A whole number from a text input (None when blank); the service checks its range."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be a whole number", field=name) from exc


def _source_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The service fields of a filled-in form (``scheme`` and the secret left out); a form error
    raises :class:`ValidationFailed` naming the field."""
    for name, text in values.items():
        if isinstance(text, str):
            field = SOURCE_INPUTS.get(name, name)
            _no_nul(text, field)
            if len(text) > MAX_FORM_TEXT:
                raise ValidationFailed(f"{field} must be at most {MAX_FORM_TEXT} characters", field=field)
    event_type: dict[str, Any] | None = None
    if values["event_from"] or values["event_field"] or values["event_prefix"]:
        event_type = {"from": values["event_from"], "field": values["event_field"]}
        if values["event_prefix"]:
            event_type["prefix"] = values["event_prefix"]
    dedupe: dict[str, Any] | None = None
    if values["dedupe_from"] in ("body", "header"):
        dedupe = {"from": values["dedupe_from"], "field": values["dedupe_field"]}
    elif values["dedupe_from"] not in ("default", "off"):
        raise ValidationFailed("choose where the provider's event id comes from", field="dedupe.from")
    connection_id = values["connection_id"] or None
    return {
        "name": values["name"],
        "description": values["description"] or None,
        "connection_id": connection_id,
        "scheme_options": parse_json(values["scheme_options"], "schemeOptions"),
        "tolerance_seconds": _source_int(values["tolerance_seconds"], "toleranceSeconds"),
        "ip_allowlist": parse_names(values["ip_allowlist"]),
        "max_body_bytes": _source_int(values["max_body_bytes"], "maxBodyBytes"),
        "event_type": event_type,
        "dedupe": dedupe,
        "dedupe_given": values["dedupe_from"] != "default",
        "enabled": values["enabled"],
    }


def _source_error(exc: ValidationFailed) -> dict[str, str]:
    """A service error by the form field that shows it (``ipAllowlist.2`` is shown at ``ipAllowlist``)."""
    field, _, part = _field_of(exc, "name").partition(".")
    detail = exc.detail
    if part and not part.isdigit() and not detail.startswith(part):
        detail = f"{part}: {detail}"  # schemeOptions.algorithm: name the option
    return {field if field in SOURCE_FORM_FIELDS else "form": detail}


async def _source_form(
    request: Request,
    ui: UiSession,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
    *,
    source: InboundSourceInfo | None = None,
) -> Response:
    connections: dict[str, str] = {}
    if ui.actor.has_scope(ApiKeyScope.CONNECTIONS_READ):
        async with ui.runtime.db.unit_of_work(write=False) as session:
            listed = await _connections(ui).list_connections(
                session, ui.actor, PageRequest(MAX_LIMIT), ConnectionFilter()
            )
        connections = {c.id: c.name for c in listed.items}
    general = [v for k, v in errors.items() if k not in SOURCE_FORM_FIELDS]
    message = None
    if errors:
        message = "; ".join(general) or "Check the fields marked below."
    return _html(
        request,
        "inbound_source_form.html",
        status,
        active="inbound-sources",
        source=source,
        form=values,
        errors=errors,
        schemes=SCHEME_LABELS,
        connections=connections,
        default_tolerance=DEFAULT_TOLERANCE,
        default_max_body=min(DEFAULT_MAX_BODY, ui.runtime.settings.max_body_bytes),
        max_body_limit=ui.runtime.settings.max_body_bytes,
        error=message,
    )


@router.get("/inbound-sources/new")
@page
async def new_inbound_source_page(request: Request) -> Response:
    """The create form (``?connectionId=`` preselects the connection the source belongs to)."""
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    connection_id = _text_param(request, "connectionId", 64)
    _no_nul(connection_id, "connectionId")
    return await _source_form(request, ui, _blank_source_form(connection_id), {}, 200)


@router.post("/inbound-sources")
@page
async def create_inbound_source(request: Request) -> Response:
    """Create a source and show its signing secret, once, in this response (as ``POST
    /v1/inbound-sources``); the provider's own secret is used when one is given."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    values = _source_form_values(form)
    secret = form.get("secret")
    try:
        _no_nul(secret, "secret")
        if not values["name"]:
            raise ValidationFailed("Enter a name.", field="name")
        fields = _source_fields(values)
        spec = SourceSpec(
            scheme=values["scheme"],
            secret=secret or None,
            **fields,
        )
        async with ui.runtime.db.unit_of_work() as session:
            row, revealed = await _sources(ui).create(session, ui.actor, spec)
    except ValidationFailed as exc:
        return await _source_form(request, ui, values, _source_error(exc), exc.status)
    return await _source_detail(request, ui, row.id, status=201, secret=revealed, created=True)


@router.get("/inbound-sources/{source_id}/edit")
@page
async def edit_inbound_source_page(request: Request, source_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        info = source_info(await _sources(ui).get(session, ui.actor, source_id))
    return await _source_form(request, ui, _source_values(info), {}, 200, source=info)


@router.post("/inbound-sources/{source_id}/edit")
@page
async def update_inbound_source(request: Request, source_id: str) -> Response:
    """Save what changed (as ``PATCH /v1/inbound-sources/{id}``; the scheme cannot change). A blank
    tolerance or body limit goes back to its default."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    service = _sources(ui)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        info = source_info(await service.get(session, ui.actor, source_id))
    values = _source_form_values(form)
    values["scheme"] = info.scheme
    try:
        if not values["name"]:
            raise ValidationFailed("Enter a name.", field="name")
        fields = _source_fields(values)
        before = _source_fields(_source_values(info))
        changes = {k: v for k, v in fields.items() if k not in ("dedupe", "dedupe_given") and v != before[k]}
        if values["dedupe_from"] != "default" and fields["dedupe"] != before["dedupe"]:
            changes["dedupe"] = fields["dedupe"]
        if changes:
            async with ui.runtime.db.unit_of_work() as session:
                await service.update(session, ui.actor, source_id, changes)
    except ValidationFailed as exc:
        return await _source_form(request, ui, values, _source_error(exc), exc.status, source=info)
    return _see_other(f"{INBOUND_SOURCES}/{source_id}?notice=updated")


@router.post("/inbound-sources/{source_id}/delete")
@page
async def delete_inbound_source(request: Request, source_id: str) -> Response:
    """Delete after the form's confirmation box was ticked (as ``DELETE /v1/inbound-sources/{id}``)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    return await delete_confirmed(
        ui,
        form,
        _sources(ui),
        source_id,
        noun="inbound source",
        collection=INBOUND_SOURCES,
        detail=lambda errors: _source_detail(request, ui, source_id, status=422, errors=errors),
    )


async def _source_detail(
    request: Request,
    ui: UiSession,
    source_id: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    secret: RevealedSourceSecret | None = None,
    created: bool = False,
    overlap: str = "",
) -> Response:
    async with ui.runtime.db.unit_of_work(write=False) as session:
        service = _sources(ui)
        row = await service.get(session, ui.actor, source_id)
        active_secrets = await service.secret_count(session, row)
        connection = None
        if row.connection_id and ui.actor.has_scope(ApiKeyScope.CONNECTIONS_READ):
            try:
                connection = connection_info(await _connections(ui).get(session, ui.actor, row.connection_id))
            except NotFound:  # deleted since
                connection = None
    notice = "Inbound source created." if created else _notice(request, SOURCE_NOTICES)
    return _html(
        request,
        "inbound_source_detail.html",
        status,
        active="inbound-sources",
        source=source_info(row),
        connection=connection,
        active_secrets=active_secrets,
        secret=secret,
        overlap=overlap,
        errors=errors or {},
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        notice=notice,
        error="Check the fields marked below." if errors else None,
    )


@router.get("/inbound-sources/{source_id}")
@page
async def inbound_source_page(request: Request, source_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, INBOUND_SOURCES)
    return await _source_detail(request, ui, source_id)


@router.post("/inbound-sources/{source_id}/secret/rotate")
@page
async def rotate_inbound_secret(request: Request, source_id: str) -> Response:
    """Add a signing secret (the provider's new one, or generated) and show it in this response
    only; older secrets keep verifying for the overlap (default 24 hours)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, INBOUND_SOURCES)
    given = form.get("secret")
    overlap_text = form.get("overlap_seconds")
    try:
        _no_nul(given, "secret")
        overlap = _int_param(overlap_text, "overlapSeconds", 0, 10**9) if overlap_text else None
        async with ui.runtime.db.unit_of_work() as session:
            revealed = await _sources(ui).rotate_secret(
                session, ui.actor, source_id, secret=given or None, overlap_seconds=overlap
            )
    except ValidationFailed as exc:
        async with ui.runtime.db.unit_of_work(write=False) as session:
            await _sources(ui).get(session, ui.actor, source_id)  # someone else's source: 404 first
        errors = {_field_of(exc, "secret"): exc.detail}
        return await _source_detail(
            request, ui, source_id, status=exc.status, errors=errors, overlap=overlap_text[:20]
        )
    return await _source_detail(request, ui, source_id, status=201, secret=revealed)
