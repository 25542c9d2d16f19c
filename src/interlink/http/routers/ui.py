"""``/ui``: the dashboard for platform operators and tenant developers.

Every page authenticates the session cookie's API key through the same dependency the REST API
uses (:func:`interlink.http.auth.require` with the page's scope, the selected tenant standing in for
``X-Tenant-Id``), then calls the domain services inside one unit of work. A key that stops
verifying (revoked, expired, unknown) signs the browser out at once. Every form POST carries a CSRF
token (see :mod:`interlink.ui.session`) and the tenant it was shown for; one sent after the tenant
switcher chose another tenant (a second window) is refused with 409 and changes nothing. Errors
render as a page with the problem's status and message; a plaintext key appears only on the page
returned by the request that created it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, Protocol
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit, tenancy
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.context import current_correlation_id
from interlink.core.enums import ApiKeyScope, ApiKeyStatus
from interlink.core.errors import (
    Conflict,
    Forbidden,
    InterlinkError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from interlink.core.models import Tenant
from interlink.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest
from interlink.http.auth import authenticate, client_ip, get_runtime
from interlink.http.errors import is_database_unavailable
from interlink.keys import security
from interlink.keys.models import ApiKey
from interlink.keys.security import SecurityContext, SecurityEventType
from interlink.keys.service import KeySpec, VerifyCode, effective_status
from interlink.runtime import Runtime
from interlink.ui.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    TENANT_COOKIE,
    clear_cookie,
    csrf_key,
    csrf_token,
    csrf_valid,
    new_nonce,
    set_cookie,
)
from interlink.ui.templating import STATIC_TYPES, load_static, render

router = APIRouter(prefix="/ui", include_in_schema=False)

P = ParamSpec("P")

_STATIC = load_static()
MAX_KEY_LENGTH = 512
FORM_TENANT_FIELD = "ui_tenant"  # the tenant a form was shown for (see _open)
GRACE_CHOICES = [
    (0, "None: the old key stops at once"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (604_800, "7 days"),
    (2_592_000, "30 days"),
]
KNOWN_ACTIONS = [
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "tenant.created",
    "tenant.updated",
    "platform.accessed",
    "secret.created",
    "secret.rotated",
    "secret.deleted",
    "secret.accessed",
    "secret.reencrypted",
    "retention.purged",
    "event_type.created",
    "event_type.updated",
    "event_type.deprecated",
    "event_type.undeprecated",
    "endpoint.created",
    "endpoint.updated",
    "endpoint.enabled",
    "endpoint.disabled",
    "endpoint.deleted",
    "endpoint.secret_read",
    "endpoint.secret_rotated",
    "endpoint.circuit_opened",
    "endpoint.circuit_closed",
    "event.created",
    "event.batch_created",
    "delivery.retried",
    "replay.created",
    "webhook_config.updated",
    "webhooks.retention.purged",
    "connection.created",
    "connection.updated",
    "connection.deleted",
    "connection.authorization_started",
    "connection.authorized",
    "connection.authorization_failed",
    "connection.token_refreshed",
    "connection.expired",
    "connection.error",
    "connection.health_checked",
    "connection.health_changed",
    "connection.record.created",
    "connection.record.updated",
    "connection.record.deleted",
    "inbound_source.created",
    "inbound_source.updated",
    "inbound_source.deleted",
    "inbound_source.secret_rotated",
]
SECTIONS = (
    "/ui",
    "/ui/keys",
    "/ui/audit",
    "/ui/security",
    "/ui/endpoints",
    "/ui/event-types",
    "/ui/deliveries",
    "/ui/events",
    "/ui/providers",
    "/ui/connections",
    "/ui/api-requests",
    "/ui/inbound-sources",
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SIGN_IN_NOTICES = {
    "signed_out": "You have signed out.",
    "missing": "Sign in with an API key to continue.",
    "revoked": "Your API key has been revoked, so you were signed out.",
    "expired": "Your API key has expired, so you were signed out.",
    "unknown": "Your API key is no longer known, so you were signed out.",
    "malformed": "Your session did not hold a valid API key, so you were signed out.",
}
KEY_NOTICES = {"revoked": "The key has been revoked. Requests using it are refused from now on."}
_SIGN_IN_FAILURES = {
    VerifyCode.MALFORMED: (401, "That is not an Interlink API key, or its checksum is wrong."),
    VerifyCode.UNKNOWN: (401, "That API key is not known."),
    VerifyCode.EXPIRED: (401, "That API key has expired."),
    VerifyCode.REVOKED: (401, "That API key has been revoked."),
    VerifyCode.IP_DENIED: (403, "That API key may not be used from your IP address."),
    VerifyCode.RATE_LIMITED: (429, "That API key is rate limited. Try again shortly."),
}


class SignedOut(Exception):
    """The session has no key, or its key no longer verifies; ``reason`` is a VerifyCode value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "This form has expired or did not come from this dashboard. Reload the page and try again.",
            extra={"reason": "csrf"},
        )


class UnsupportedForm(InterlinkError):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class TenantSwitched(Conflict):
    """A form shown for one tenant was sent after the tenant switcher chose another (a platform key
    with two windows open): refused, so nothing lands in a tenant the user did not see."""


class SelectedTenantGone(NotFound):
    """The tenant chosen in the switcher cannot be used by this key (the selection is dropped)."""


@dataclass(frozen=True)
class UiSession:
    """What every signed-in page knows: the actor, its tenant, the tenants it may switch to."""

    runtime: Runtime
    actor: Actor
    tenant: Tenant
    tenants: list[Tenant]
    csrf: str
    section: str


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else ""

    def getlist(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]


# -- plumbing --------------------------------------------------------------------------------


def _csrf_nonce(request: Request) -> str:
    """The nonce of this browser; a new one (set on the response) when it has none."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 20 <= len(nonce) <= 100:
        return nonce
    fresh: str | None = getattr(request.state, "ui_new_nonce", None)
    if fresh is None:
        fresh = new_nonce()
        request.state.ui_new_nonce = fresh
    return fresh


def _csrf_for(request: Request, session_value: str | None) -> str:
    key = csrf_key(get_runtime(request).keys.pepper)
    return csrf_token(key, _csrf_nonce(request), session_value)


async def _read_form(request: Request) -> Form:
    """Parse an urlencoded form and check its CSRF token against this browser's cookies."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type != "application/x-www-form-urlencoded":
        raise UnsupportedForm("send the form as application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("the form could not be read") from exc
    form = Form(fields)
    # The tenant the page was shown for (``csrf`` macro): checked against the acting tenant in _open.
    request.state.ui_form_tenant = form.get(FORM_TENANT_FIELD)[:64] or None
    key = csrf_key(get_runtime(request).keys.pepper)
    if not csrf_valid(
        key, request.cookies.get(CSRF_COOKIE), request.cookies.get(SESSION_COOKIE), form.get(CSRF_FIELD)
    ):
        raise CsrfRefused()
    return form


async def _open(
    request: Request, scope: ApiKeyScope, section: str, *, switch_to: str | None = None
) -> UiSession:
    """Authenticate the session's key for ``scope`` exactly as the API would (``require``)."""
    key = request.cookies.get(SESSION_COOKIE)
    if not key:
        raise SignedOut("missing")
    selected = switch_to or request.cookies.get(TENANT_COOKIE) or None
    try:
        runtime = get_runtime(request)
        actor, _rate_headers = await authenticate(
            runtime,
            key=key,
            tenant_header=selected,
            scope=scope,
            ip=client_ip(request, runtime),
            user_agent=request.headers.get("user-agent"),
            method=request.method,
            path=request.url.path,
        )
    except Unauthorized as exc:
        raise SignedOut(exc.reason) from exc
    except NotFound as exc:
        if selected and switch_to is None:
            raise SelectedTenantGone(exc.detail) from exc
        raise
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work(write=False) as session:
        tenant = await tenancy.get_tenant(session, actor, actor.tenant_id)
        tenants: list[Tenant] = []
        if actor.is_platform and actor.has_scope(ApiKeyScope.TENANTS_READ):
            tenants = (await tenancy.list_tenants(session, actor, PageRequest(MAX_LIMIT))).items
            if all(t.id != tenant.id for t in tenants):
                tenants.insert(0, tenant)
    ui = UiSession(runtime, actor, tenant, tenants, _csrf_for(request, key), section)
    request.state.ui_session = ui
    form_tenant: str | None = getattr(request.state, "ui_form_tenant", None)
    if form_tenant is not None and switch_to is None and form_tenant != actor.tenant_id:
        raise TenantSwitched(
            f"This form was shown for tenant {form_tenant}, but the dashboard now acts for tenant "
            f"{tenant.name} ({actor.tenant_id}, switched in another window). Nothing was changed: "
            "reload the page and try again.",
            extra={"reason": "tenant_switched"},
        )
    return ui


def _see_other(url: str) -> Response:
    """303 See Other to ``url``: where a dashboard form post sends the browser next."""
    return RedirectResponse(url, status_code=303)


class DeletableItems(Protocol):
    """A domain service whose items the dashboard deletes (``get`` is 404 for another tenant's)."""

    async def get(self, session: AsyncSession, actor: Actor, item_id: str) -> Any: ...

    async def delete(self, session: AsyncSession, actor: Actor, item_id: str) -> None: ...


async def delete_confirmed(
    ui: UiSession,
    form: Form,
    service: DeletableItems,
    item_id: str,
    *,
    noun: str,
    collection: str,
    detail: Callable[[dict[str, str]], Awaitable[Response]],
) -> Response:
    """Delete ``item_id`` once the form's confirmation box was ticked, then back to ``collection``.
    Unticked: 404 for an item the actor cannot see, else ``detail`` (the item's page, 422) with
    the box marked."""
    if form.get("confirm") != "yes":
        async with ui.runtime.db.unit_of_work(write=False) as session:
            await service.get(session, ui.actor, item_id)
        return await detail({"confirm": f"Tick the box to confirm that this {noun} should be deleted."})
    async with ui.runtime.db.unit_of_work() as session:
        await service.delete(session, ui.actor, item_id)
    return _see_other(f"{collection}?notice=deleted")


def _html(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("s", getattr(request.state, "ui_session", None))
    context.setdefault("notice", None)
    context.setdefault("error", None)
    context.setdefault("active", None)
    return HTMLResponse(render(template, **context), status_code=status_code)


def _error_page(request: Request, exc: InterlinkError) -> HTMLResponse:
    ui: UiSession | None = getattr(request.state, "ui_session", None)
    fields = exc.extra.get("errors") if isinstance(exc, ValidationFailed) else None
    response = _html(
        request,
        "error.html",
        exc.status,
        title=exc.title,
        message=exc.detail,
        fields=fields,
        status=exc.status,
        correlation_id=current_correlation_id(),
        back_url=ui.section if ui else "/ui",
    )
    if isinstance(exc, RateLimited):
        response.headers.update(exc.headers)
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _finish(request: Request, response: Response) -> Response:
    """Security headers on every page; a CSRF nonce cookie for browsers that had none."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Cache-Control"] = "no-store"
    fresh = getattr(request.state, "ui_new_nonce", None)
    if fresh:
        set_cookie(response, request, CSRF_COOKIE, fresh)
    return response


def _sign_out(request: Request, reason: str) -> Response:
    response = RedirectResponse(f"/ui/login?{urlencode({'reason': reason})}", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    clear_cookie(response, request, TENANT_COOKIE)
    return response


def page(fn: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn signed-out sessions into a redirect and domain errors into readable pages."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request)
        response: Response
        try:
            response = await fn(*args, **kwargs)
        except SignedOut as exc:
            response = _sign_out(request, exc.reason)
        except SelectedTenantGone as exc:
            response = _error_page(request, exc)
            clear_cookie(response, request, TENANT_COOKIE)
        except InterlinkError as exc:
            response = _error_page(request, exc)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            response = _error_page(
                request, _Unavailable("The database cannot be reached right now. Try again shortly.")
            )
            response.headers["Retry-After"] = "1"
        return _finish(request, response)

    return wrapper


class _Unavailable(InterlinkError):
    status = 503
    code = "service-unavailable"
    title = "Service unavailable"


def _int_param(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be a whole number", field=name) from exc
    if not low <= number <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}", field=name)
    return number


def _text_param(request: Request, name: str, max_length: int) -> str:
    value = request.query_params.get(name, "").strip()
    if len(value) > max_length:
        raise ValidationFailed(f"{name} must be at most {max_length} characters", field=name)
    return value


def _page_request(request: Request) -> PageRequest:
    raw_limit = request.query_params.get("limit", "")
    limit = _int_param(raw_limit, "limit", 1, MAX_LIMIT) if raw_limit else DEFAULT_LIMIT
    return PageRequest(limit, request.query_params.get("after") or None)


def _pager(base: str, params: dict[str, str], page: PageRequest, next_cursor: str | None) -> dict[str, Any]:
    kept = {k: v for k, v in params.items() if v}
    if page.limit != DEFAULT_LIMIT:
        kept["limit"] = str(page.limit)
    first_url = f"{base}?{urlencode(kept)}" if page.after else None
    next_url = f"{base}?{urlencode({**kept, 'after': next_cursor})}" if next_cursor else None
    return {"first_url": first_url, "next_url": next_url}


def _count(items: list[Any], has_more: bool) -> str:
    return f"{len(items)}+" if has_more else str(len(items))


# -- static files ----------------------------------------------------------------------------


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    content = _STATIC.get(name)
    if content is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        content,
        media_type=STATIC_TYPES[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- sign in and out -------------------------------------------------------------------------


@router.get("/login")
@page
async def login_page(request: Request) -> Response:
    notice = SIGN_IN_NOTICES.get(request.query_params.get("reason", ""))
    return _html(
        request,
        "login.html",
        csrf=_csrf_for(request, request.cookies.get(SESSION_COOKIE)),
        notice=notice,
        login_error=None,
        s=None,
    )


@router.post("/login")
@page
async def login(request: Request) -> Response:
    """Verify the key (no scope needed) and keep it in the session cookie."""
    form = await _read_form(request)
    key = form.get("api_key")

    def refuse(status: int, message: str) -> Response:
        token = _csrf_for(request, request.cookies.get(SESSION_COOKIE))
        return _html(request, "login.html", status, csrf=token, login_error=message, s=None)

    if not key:
        return refuse(422, "Enter an API key.")
    if len(key) > MAX_KEY_LENGTH:
        return refuse(422, f"An API key is at most {MAX_KEY_LENGTH} characters.")
    runtime = get_runtime(request)
    ip = client_ip(request, runtime)
    context = SecurityContext(ip, request.headers.get("user-agent"), current_correlation_id())
    result = await runtime.verifier.verify(key, ip=ip, context=context)
    if not result.valid or result.key is None:
        status, message = _SIGN_IN_FAILURES.get(result.code, (401, "That API key cannot be used."))
        return refuse(status, message)
    scopes = result.key.scopes
    landing = "/ui"
    if "admin" not in scopes and ApiKeyScope.TENANTS_READ.value not in scopes:
        if ApiKeyScope.KEYS_READ.value in scopes:
            landing = "/ui/keys"
        elif ApiKeyScope.AUDIT_READ.value in scopes:
            landing = "/ui/audit"
        elif ApiKeyScope.WEBHOOKS_READ.value in scopes:
            landing = "/ui/endpoints"
        elif ApiKeyScope.EVENTS_READ.value in scopes:
            landing = "/ui/events"
        elif ApiKeyScope.CONNECTIONS_READ.value in scopes:
            landing = "/ui/connections"
    response = RedirectResponse(landing, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, key)
    clear_cookie(response, request, TENANT_COOKIE)
    request.state.ui_new_nonce = new_nonce()
    return response


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    await _read_form(request)
    request.state.ui_new_nonce = new_nonce()
    return _sign_out(request, "signed_out")


@router.post("/tenant")
@page
async def switch_tenant(request: Request) -> Response:
    """Platform keys: act for another tenant, exactly as with ``X-Tenant-Id``."""
    form = await _read_form(request)
    target = form.get("tenant_id")
    if not target or len(target) > 64:
        raise ValidationFailed("choose a tenant", field="tenant_id")
    ui = await _open(request, ApiKeyScope.TENANTS_READ, "/ui", switch_to=target)
    next_url = form.get("next")
    response = RedirectResponse(next_url if next_url in SECTIONS else "/ui", status_code=303)
    if ui.actor.acts_for_other_tenant:
        set_cookie(response, request, TENANT_COOKIE, ui.actor.tenant_id)
    else:
        clear_cookie(response, request, TENANT_COOKIE)
    return response


# -- overview --------------------------------------------------------------------------------


@router.get("")
@page
async def overview(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.TENANTS_READ, "/ui")
    actor = ui.actor
    tiles: list[dict[str, str]] = []
    now = utcnow()
    async with ui.runtime.db.unit_of_work(write=False) as session:
        if actor.has_scope(ApiKeyScope.KEYS_READ):
            for status in (
                ApiKeyStatus.ACTIVE,
                ApiKeyStatus.ROTATING,
                ApiKeyStatus.EXPIRED,
                ApiKeyStatus.REVOKED,
            ):
                keys = await ui.runtime.keys.list_keys(session, actor, PageRequest(MAX_LIMIT), status)
                tiles.append(
                    {
                        "value": _count(keys.items, keys.has_more),
                        "label": f"{status.value.lower()} keys",
                        "url": f"/ui/keys?status={status.value}",
                    }
                )
        if actor.has_scope(ApiKeyScope.AUDIT_READ):
            events = await audit.list_events(
                session,
                actor.tenant_id,
                audit.AuditFilter(since=now - timedelta(days=1)),
                PageRequest(MAX_LIMIT),
            )
            tiles.append(
                {
                    "value": _count(events.items, events.has_more),
                    "label": "audit events, last 24 h",
                    "url": "/ui/audit",
                }
            )
            risky = await security.list_events(
                session,
                actor.tenant_id,
                security.SecurityEventFilter(
                    min_risk=70,
                    since=now - timedelta(days=7),
                    include_unattributed=actor.is_platform and not actor.acts_for_other_tenant,
                ),
                PageRequest(MAX_LIMIT),
            )
            tiles.append(
                {
                    "value": _count(risky.items, risky.has_more),
                    "label": "high-risk security events, last 7 days",
                    "url": "/ui/security?minRisk=70",
                }
            )
    return _html(request, "overview.html", active="overview", tiles=tiles)


# -- API keys --------------------------------------------------------------------------------


def _creatable_scopes(actor: Actor) -> list[str]:
    return [scope.value for scope in ApiKeyScope if actor.has_scope(scope)]


def _can_create_platform(actor: Actor) -> bool:
    return actor.is_platform and not actor.acts_for_other_tenant


@router.get("/keys")
@page
async def keys_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.KEYS_READ, "/ui/keys")
    raw_status = _text_param(request, "status", 20)
    status = None
    if raw_status:
        try:
            status = ApiKeyStatus(raw_status.upper())
        except ValueError as exc:
            raise ValidationFailed(f"unknown status {raw_status!r}", field="status") from exc
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await ui.runtime.keys.list_keys(session, ui.actor, page_request, status)
    now = utcnow()
    keys = [{"row": row, "status": effective_status(row, now).value} for row in result.items]
    return _html(
        request,
        "keys.html",
        active="keys",
        keys=keys,
        status=status.value if status else "",
        statuses=[s.value for s in ApiKeyStatus],
        can_write=ui.actor.has_scope(ApiKeyScope.KEYS_WRITE),
        **_pager("/ui/keys", {"status": status.value if status else ""}, page_request, result.next_cursor),
    )


def _key_form(
    request: Request, ui: UiSession, form: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    return _html(
        request,
        "key_new.html",
        status,
        active="keys",
        form=form,
        errors=errors,
        scopes=_creatable_scopes(ui.actor),
        can_create_platform=_can_create_platform(ui.actor),
        error="Check the fields marked below." if errors else None,
    )


@router.get("/keys/new")
@page
async def new_key_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.KEYS_WRITE, "/ui/keys")
    return _key_form(request, ui, {"name": "", "scopes": [], "expires_on": "", "kind": "tenant"}, {}, 200)


@router.post("/keys")
@page
async def create_key(request: Request) -> Response:
    """Create a key and show it, once, in this response (never stored or shown again)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.KEYS_WRITE, "/ui/keys")
    values = {
        "name": form.get("name"),
        "scopes": form.getlist("scopes"),
        "expires_on": form.get("expires_on"),
        "kind": form.get("kind") or "tenant",
    }
    errors: dict[str, str] = {}
    name = str(values["name"])
    if not name:
        errors["name"] = "Enter a name."
    elif len(name) > 200:
        errors["name"] = "A name is at most 200 characters."
    scopes = list(values["scopes"])
    if not scopes:
        errors["scopes"] = "Choose at least one scope."
    expires_at = None
    if values["expires_on"]:
        try:
            day = datetime.strptime(str(values["expires_on"]), "%Y-%m-%d")
            expires_at = day.replace(tzinfo=UTC)
        except ValueError:
            errors["expiresAt"] = "Enter a date as YYYY-MM-DD."
    kind = str(values["kind"])
    if kind not in ("tenant", "platform"):
        errors["kind"] = "Choose tenant or platform."
    if errors:
        return _key_form(request, ui, values, errors, 422)
    spec = KeySpec(name=name, scopes=scopes, kind=kind, expires_at=expires_at)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            row, plaintext = await ui.runtime.keys.create(session, ui.actor, spec)
    except ValidationFailed as exc:
        reported: list[dict[str, str]] = exc.extra.get("errors") or [{}]
        field_name = reported[0].get("field", "name")
        return _key_form(request, ui, values, {field_name: exc.detail}, exc.status)
    except Forbidden as exc:
        return _key_form(request, ui, values, {"scopes": exc.detail}, exc.status)
    return _html(
        request,
        "key_created.html",
        201,
        active="keys",
        heading="Key created",
        key=row,
        plaintext=plaintext,
        old_key=None,
    )


async def _key_detail(
    request: Request, ui: UiSession, key_id: str, *, status: int = 200, error: str | None = None
) -> Response:
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row: ApiKey = await ui.runtime.keys.get(session, ui.actor, key_id)
    notice = KEY_NOTICES.get(request.query_params.get("notice", ""))
    return _html(
        request,
        "key_detail.html",
        status,
        active="keys",
        key=row,
        key_status=effective_status(row).value,
        can_write=ui.actor.has_scope(ApiKeyScope.KEYS_WRITE),
        grace_choices=GRACE_CHOICES,
        default_grace=ui.runtime.keys.default_grace_seconds,
        notice=notice,
        error=error,
    )


@router.get("/keys/{key_id}")
@page
async def key_page(request: Request, key_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.KEYS_READ, "/ui/keys")
    return await _key_detail(request, ui, key_id)


@router.post("/keys/{key_id}/rotate")
@page
async def rotate_key(request: Request, key_id: str) -> Response:
    """Rotate with a grace period and show the replacement key once."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.KEYS_WRITE, "/ui/keys")
    grace = _int_param(form.get("grace_period_seconds") or "0", "gracePeriodSeconds", 0, 2_592_000)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            old, new, plaintext = await ui.runtime.keys.rotate(session, ui.actor, key_id, grace)
    except InterlinkError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _key_detail(request, ui, key_id, status=exc.status, error=exc.detail)
    return _html(
        request,
        "key_created.html",
        201,
        active="keys",
        heading="Key rotated",
        key=new,
        plaintext=plaintext,
        old_key=old,
    )


@router.post("/keys/{key_id}/revoke")
@page
async def revoke_key(request: Request, key_id: str) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.KEYS_WRITE, "/ui/keys")
    reason = form.get("reason")
    if len(reason) > 500:
        return await _key_detail(request, ui, key_id, status=422, error="A reason is at most 500 characters.")
    try:
        async with ui.runtime.db.unit_of_work() as session:
            await ui.runtime.keys.revoke(session, ui.actor, key_id, reason or None)
    except InterlinkError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _key_detail(request, ui, key_id, status=exc.status, error=exc.detail)
    return RedirectResponse(f"/ui/keys/{key_id}?notice=revoked", status_code=303)


# -- audit and security events ---------------------------------------------------------------


@router.get("/audit")
@page
async def audit_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.AUDIT_READ, "/ui/audit")
    filters = {
        "action": _text_param(request, "action", 80),
        "resourceType": _text_param(request, "resourceType", 40),
        "resourceId": _text_param(request, "resourceId", 80),
    }
    flt = audit.AuditFilter(
        action=filters["action"] or None,
        resource_type=filters["resourceType"] or None,
        resource_id=filters["resourceId"] or None,
    )
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await audit.list_events(session, ui.actor.tenant_id, flt, page_request)
    return _html(
        request,
        "audit.html",
        active="audit",
        events=result.items,
        filters=filters,
        known_actions=KNOWN_ACTIONS,
        **_pager("/ui/audit", filters, page_request, result.next_cursor),
    )


@router.get("/security")
@page
async def security_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.AUDIT_READ, "/ui/security")
    event_types = [t.value for t in SecurityEventType]
    filters = {
        "eventType": _text_param(request, "eventType", 40),
        "minRisk": _text_param(request, "minRisk", 3),
    }
    if filters["eventType"] and filters["eventType"] not in event_types:
        raise ValidationFailed(f"unknown event type {filters['eventType']!r}", field="eventType")
    min_risk = _int_param(filters["minRisk"], "minRisk", 0, 100) if filters["minRisk"] else None
    flt = security.SecurityEventFilter(
        event_type=filters["eventType"] or None,
        min_risk=min_risk,
        include_unattributed=ui.actor.is_platform and not ui.actor.acts_for_other_tenant,
    )
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await security.list_events(session, ui.actor.tenant_id, flt, page_request)
    return _html(
        request,
        "security.html",
        active="security",
        events=result.items,
        filters=filters,
        event_types=event_types,
        **_pager("/ui/security", filters, page_request, result.next_cursor),
    )
