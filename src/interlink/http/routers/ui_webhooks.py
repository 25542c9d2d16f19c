"""``/ui`` webhook pages: endpoints, event types, events and the delivery log.

The same plumbing as :mod:`interlink.http.routers.ui`: every page authenticates the session's key
for the scope its REST twin needs (``webhooks:read``/``webhooks:write`` for event types, endpoints
and deliveries; ``events:read`` for events), then calls the domain services inside one unit of
work. Mutations are form POSTs carrying the CSRF token and answer with a redirect (post, redirect,
get), except the two that show a signing secret, which render it in their own response (it is never
put in a URL). A validation error from a service is shown next to the field it names, with the
form as it was sent.

Endpoints are always shown through :func:`~interlink.webhooks.schemas.endpoint_info`, the API's
view (credential-like header values redacted), never from the raw row.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlink.core.clock import utcnow
from interlink.core.enums import ApiKeyScope, DeliveryChannel, DeliveryStatus, RetentionPolicy
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.pagination import MAX_LIMIT, PageRequest
from interlink.http.routers.ui import (
    Form,
    UiSession,
    _html,
    _open,
    _page_request,
    _pager,
    _read_form,
    _see_other,
    _text_param,
    delete_confirmed,
    page,
)
from interlink.http.routers.webhooks_events import delivery_info, event_info
from interlink.http.routers.webhooks_replays import replay_info
from interlink.webhooks import deliveries as delivery_service
from interlink.webhooks import health, ingest, replay
from interlink.webhooks import metrics as delivery_metrics
from interlink.webhooks.delivery import deliver_now
from interlink.webhooks.delivery_schemas import WebhookAttemptInfo
from interlink.webhooks.endpoints import (
    BUILTIN_EVENT_TYPES,
    Endpoints,
    EndpointSpec,
    EventTypes,
    EventTypeSpec,
    RevealedEndpointSecret,
)
from interlink.webhooks.models import WebhookEndpoint
from interlink.webhooks.replay_schemas import WebhookReplayInfo
from interlink.webhooks.schemas import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RETENTION,
    DEFAULT_TIMEOUT_SECONDS,
    REDACTED,
    WebhookEndpointInfo,
    endpoint_info,
    event_type_info,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/ui", include_in_schema=False)

ENDPOINTS = "/ui/endpoints"
EVENT_TYPES = "/ui/event-types"
DELIVERIES = "/ui/deliveries"
EVENTS = "/ui/events"
RECENT_DELIVERIES = 20
MAX_FORM_TEXT = 70_000
_EVENT_TYPES = EventTypes()
_DURATION_RE = re.compile(r"^(\d{1,9})\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")

ENDPOINT_NOTICES = {
    "created": "Endpoint created. Reveal its signing secret below to verify what it receives.",
    "updated": "Endpoint saved.",
    "enabled": "Endpoint enabled: deliveries to it resume.",
    "disabled": "Endpoint disabled: nothing is sent to it until it is enabled again.",
    "deleted": "Endpoint deleted: it receives nothing more and its pending deliveries were cancelled.",
}
EVENT_TYPE_NOTICES = {
    "created": "Event type registered.",
    "deprecated": "Event type deprecated. Subscriptions and events of this type keep working.",
    "restored": "Event type is current again.",
}
DELIVERY_NOTICES = {
    "retried": "Delivery queued for another attempt now.",
    "test": "Test event sent: its first attempt is shown below.",
}
RECOVERABLE_STATUSES = [s.value for s in replay.REPLAYABLE_STATUSES]
# Where each service field's error is shown on the endpoint form; others go at the top.
ENDPOINT_FORM_FIELDS = (
    "url",
    "description",
    "channel",
    "channelConfig",
    "channelConfig.to",
    "channelConfig.subjectTemplate",
    "channelConfig.username",
    "channelConfig.iconEmoji",
    "eventTypes",
    "filter",
    "transformation",
    "headers",
    "timeoutSeconds",
    "retrySchedule",
    "maxInFlight",
    "rateLimitPerSecond",
    "retention",
)


class FormInvalid(Exception):
    """Errors found while reading a form, by service field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _service(ui: UiSession) -> Endpoints:
    return Endpoints(ui.runtime.keyring, ui.runtime.allowed_target_networks)


def _notice(request: Request, notices: dict[str, str]) -> str | None:
    return notices.get(request.query_params.get("notice", ""))


def _state(value: str, yes: str, no: str) -> bool | None:
    """A two-state filter from the query string: True for ``yes``, False for ``no``, None for any."""
    if not value:
        return None
    if value not in (yes, no):
        raise ValidationFailed(f"state must be {yes} or {no}", field="state")
    return value == yes


def _now_text() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S")


def _request_id() -> str:
    """A fresh replay request id for a form, so submitting it twice replays once."""
    return f"ui-{secrets.token_urlsafe(18)}"


async def _replay_shown(request: Request, ui: UiSession) -> WebhookReplayInfo | None:
    """The replay named by ``?replay=`` (after a replay form), when the key may read replays."""
    replay_id = _text_param(request, "replay", 64)
    if not replay_id or not ui.actor.has_scope(ApiKeyScope.WEBHOOKS_READ):
        return None
    async with ui.runtime.db.unit_of_work(write=False) as session:
        try:
            return replay_info(await replay.get_replay(session, ui.actor.tenant_id, replay_id))
        except NotFound:
            return None


def _field_of(exc: ValidationFailed, default: str) -> str:
    reported: list[dict[str, str]] = exc.extra.get("errors") or [{}]
    return reported[0].get("field") or default


# -- reading form values -----------------------------------------------------------------------------


def _no_nul(value: Any, name: str) -> None:
    """PostgreSQL stores no NUL character in text or JSON: refuse it here, naming the field."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(f"{name} must not contain NUL characters", field=name)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, name)
            _no_nul(item, name)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item, name)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, name: str, *, kind: str = "a JSON object") -> Any:
    """The JSON document in a textarea (None when blank); strict JSON only (no NaN or Infinity)."""
    if not text.strip():
        return None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed(f"{name} must be {kind}: {exc}", field=name) from exc
    if not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be {kind}", field=name)
    _no_nul(value, name)
    return value


def parse_number(text: str, name: str, *, integer: bool = False) -> float | int | None:
    """A finite number from a text field (None when blank)."""
    if not text:
        return None
    try:
        value: float | int = int(text) if integer else float(text)
    except ValueError as exc:
        kind = "a whole number" if integer else "a number"
        raise ValidationFailed(f"{name} must be {kind}", field=name) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed(f"{name} must be a finite number", field=name)
    return value


def parse_retry_schedule(text: str) -> list[int] | None:
    """``5, 5m, 30m, 2h`` → seconds (units s, m, h, d; plain numbers are seconds). Blank: None."""
    parts = [p.strip() for p in re.split(r"[,\s]+", text.strip()) if p.strip()]
    if not parts:
        return None
    out: list[int] = []
    for part in parts:
        match = _DURATION_RE.match(part.lower())
        if not match:
            raise ValidationFailed(
                f"retrySchedule: {part[:40]!r} is not a delay such as 30, 30s, 5m, 2h or 1d",
                field="retrySchedule",
            )
        out.append(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return out


def format_retry_schedule(schedule: list[int] | None) -> str:
    if not schedule:
        return ""
    out = []
    for seconds in schedule:
        for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                out.append(f"{seconds // size}{unit}")
                break
        else:
            out.append(f"{seconds}s")
    return ", ".join(out)


def parse_headers(text: str) -> dict[str, str]:
    """One ``Name: value`` per line; blank lines are skipped."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValidationFailed(f"headers line {number} must read 'Name: value'", field="headers")
        if name.strip() in out:
            raise ValidationFailed(f"header {name.strip()!r} is given twice", field="headers")
        out[name.strip()] = value.strip()
    return out


def format_headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def parse_names(text: str) -> list[str]:
    return [n for n in re.split(r"[,\s]+", text.strip()) if n]


def parse_time(text: str, name: str) -> datetime | None:
    """A UTC time from a ``datetime-local`` input or ISO 8601 text (None when blank)."""
    if not text:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(f"{name} must be a time such as 2024-05-01T12:00 (UTC)", field=name) from exc


# -- endpoints: the form ---------------------------------------------------------------------------


def _blank_form() -> dict[str, Any]:
    return {
        "url": "",
        "description": "",
        "channel": DeliveryChannel.WEBHOOK.value,
        "slack_username": "",
        "slack_icon_emoji": "",
        "email_to": "",
        "email_subject": "",
        "event_types": [],
        "event_types_extra": "",
        "filter": "",
        "transformation": "",
        "headers": "",
        "timeout_seconds": f"{DEFAULT_TIMEOUT_SECONDS:g}",
        "retry_schedule": "",
        "max_in_flight": str(DEFAULT_MAX_IN_FLIGHT),
        "rate_limit_per_second": "",
        "retention": DEFAULT_RETENTION.value,
    }


def _form_of(info: WebhookEndpointInfo) -> dict[str, Any]:
    """The edit form filled from the API view of an endpoint."""
    config = info.channel_config
    return {
        "url": "" if info.channel is DeliveryChannel.EMAIL else info.url,
        "description": info.description or "",
        "channel": info.channel.value,
        "slack_username": config.get("username", "") if info.channel is DeliveryChannel.SLACK else "",
        "slack_icon_emoji": config.get("iconEmoji", "") if info.channel is DeliveryChannel.SLACK else "",
        "email_to": "\n".join(config.get("to", [])) if info.channel is DeliveryChannel.EMAIL else "",
        "email_subject": config.get("subjectTemplate", "") if info.channel is DeliveryChannel.EMAIL else "",
        "event_types": list(info.event_types),
        "event_types_extra": "",
        "filter": json.dumps(info.filter, indent=2, ensure_ascii=False) if info.filter else "",
        "transformation": info.transformation or "",
        "headers": format_headers(info.headers),
        "timeout_seconds": f"{info.timeout_seconds:g}",
        "retry_schedule": format_retry_schedule(info.retry_schedule),
        "max_in_flight": str(info.max_in_flight),
        "rate_limit_per_second": f"{info.rate_limit_per_second:g}" if info.rate_limit_per_second else "",
        "retention": info.retention.value,
    }


def _values_of(form: Form) -> dict[str, Any]:
    """The endpoint form as sent (a field left out keeps the blank form's value)."""
    values = _blank_form()
    for name in values:
        if name == "event_types":
            values[name] = form.getlist(name)
        elif form.fields.get(name):
            values[name] = form.fields[name][0]
    return values


def _endpoint_changes(values: dict[str, Any]) -> dict[str, Any]:
    """Model field values from the form, or FormInvalid naming every field that cannot be read
    (the service then checks the values themselves, as for the API)."""
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        return str(values[name]).strip()

    def read(field_name: str, parse: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        try:
            value = parse(*args, **kwargs)
        except ValidationFailed as exc:
            errors.setdefault(_field_of(exc, field_name), exc.detail)
            return None
        return default if value is None else value

    for name, value in values.items():
        texts = value if isinstance(value, list) else [value]
        where = _FORM_TO_FIELD.get(name, name)
        if any("\x00" in t for t in texts):
            errors[where] = "Remove the NUL character."
        elif sum(len(t) for t in texts) > MAX_FORM_TEXT:
            errors[where] = f"At most {MAX_FORM_TEXT} characters."
    if errors:
        raise FormInvalid(errors)

    out: dict[str, Any] = {}
    try:
        channel = DeliveryChannel(text("channel").upper())
    except ValueError:
        errors["channel"] = "Choose WEBHOOK, SLACK or EMAIL."
        channel = DeliveryChannel.WEBHOOK
    out["channel"] = channel
    config: dict[str, Any] = {}
    if channel is DeliveryChannel.EMAIL:
        out["url"] = None
        config["to"] = parse_names(text("email_to").replace(";", ","))
        if text("email_subject"):
            config["subjectTemplate"] = text("email_subject")
    else:
        out["url"] = text("url") or None
        if out["url"] is None:
            errors["url"] = f"Enter the URL {channel.value} deliveries are sent to."
        if channel is DeliveryChannel.SLACK:
            for form_name, key in (("slack_username", "username"), ("slack_icon_emoji", "iconEmoji")):
                if text(form_name):
                    config[key] = text(form_name)
    out["channel_config"] = config
    out["description"] = text("description") or None
    out["event_types"] = list(
        dict.fromkeys([*values["event_types"], *parse_names(text("event_types_extra"))])
    )
    out["filter"] = read("filter", parse_json, values["filter"], "filter")
    out["transformation"] = text("transformation") or None
    out["headers"] = read("headers", parse_headers, values["headers"])
    out["timeout_seconds"] = read(
        "timeoutSeconds",
        parse_number,
        text("timeout_seconds"),
        "timeoutSeconds",
        default=DEFAULT_TIMEOUT_SECONDS,
    )
    out["max_in_flight"] = read(
        "maxInFlight",
        parse_number,
        text("max_in_flight"),
        "maxInFlight",
        integer=True,
        default=DEFAULT_MAX_IN_FLIGHT,
    )
    out["rate_limit_per_second"] = read(
        "rateLimitPerSecond", parse_number, text("rate_limit_per_second"), "rateLimitPerSecond"
    )
    out["retry_schedule"] = read("retrySchedule", parse_retry_schedule, text("retry_schedule"))
    try:
        out["retention"] = RetentionPolicy(text("retention").upper())
    except ValueError:
        errors["retention"] = "Choose a retention policy."
    if errors:
        raise FormInvalid(errors)
    return out


_FORM_TO_FIELD = {
    "slack_username": "channelConfig.username",
    "slack_icon_emoji": "channelConfig.iconEmoji",
    "email_to": "channelConfig.to",
    "email_subject": "channelConfig.subjectTemplate",
    "event_types": "eventTypes",
    "event_types_extra": "eventTypes",
    "timeout_seconds": "timeoutSeconds",
    "retry_schedule": "retrySchedule",
    "max_in_flight": "maxInFlight",
    "rate_limit_per_second": "rateLimitPerSecond",
}


async def _type_choices(ui: UiSession, selected: list[str]) -> list[dict[str, Any]]:
    """Checkbox choices: the tenant's current event types, the built-in ones, and any selected."""
    async with ui.runtime.db.unit_of_work(write=False) as session:
        registered = await _EVENT_TYPES.list_event_types(
            session, ui.actor, PageRequest(MAX_LIMIT), deprecated=False
        )
    names = [r.name for r in registered.items]
    choices = [{"name": n, "builtin": False} for n in sorted(names)]
    choices += [{"name": n, "builtin": True} for n in sorted(BUILTIN_EVENT_TYPES)]
    known = set(names) | BUILTIN_EVENT_TYPES
    choices += [{"name": n, "builtin": False} for n in selected if n not in known]
    return choices


async def _endpoint_form(
    request: Request,
    ui: UiSession,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
    *,
    endpoint: WebhookEndpointInfo | None = None,
) -> Response:
    general = {k: v for k, v in errors.items() if k not in ENDPOINT_FORM_FIELDS}
    message = None
    if errors:
        message = "Check the fields marked below."
        if general:
            message = "; ".join(f"{k}: {v}" for k, v in general.items())
    return _html(
        request,
        "endpoint_form.html",
        status,
        active="endpoints",
        form=values,
        errors=errors,
        endpoint=endpoint,
        channels=[c.value for c in DeliveryChannel],
        retentions=[r.value for r in RetentionPolicy],
        type_choices=await _type_choices(ui, list(values["event_types"])),
        error=message,
    )


# -- endpoints: pages ------------------------------------------------------------------------------


@router.get("/endpoints")
@page
async def endpoints_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, ENDPOINTS)
    filters = {"state": _text_param(request, "state", 10), "channel": _text_param(request, "channel", 10)}
    enabled = _state(filters["state"], "enabled", "disabled")
    channel = None
    if filters["channel"]:
        try:
            channel = DeliveryChannel(filters["channel"].upper())
        except ValueError as exc:
            raise ValidationFailed(f"unknown channel {filters['channel']!r}", field="channel") from exc
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await _service(ui).list_endpoints(
            session, ui.actor, page_request, enabled=enabled, channel=channel
        )
    return _html(
        request,
        "endpoints.html",
        active="endpoints",
        endpoints=[endpoint_info(r) for r in result.items],
        filters=filters,
        channels=[c.value for c in DeliveryChannel],
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        notice=_notice(request, ENDPOINT_NOTICES),
        **_pager(ENDPOINTS, filters, page_request, result.next_cursor),
    )


@router.get("/endpoints/new")
@page
async def new_endpoint_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    return await _endpoint_form(request, ui, _blank_form(), {}, 200)


@router.post("/endpoints")
@page
async def create_endpoint(request: Request) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    values = _values_of(form)
    try:
        changes = _endpoint_changes(values)
        service = _service(ui)
        if changes["channel"] is not DeliveryChannel.EMAIL:
            await service.vet_url(changes["url"])  # DNS before the write transaction opens
        async with ui.runtime.db.unit_of_work() as session:
            row = await service.create(session, ui.actor, EndpointSpec(**changes))
    except FormInvalid as exc:
        return await _endpoint_form(request, ui, values, exc.errors, 422)
    except ValidationFailed as exc:
        return await _endpoint_form(request, ui, values, {_field_of(exc, "url"): exc.detail}, exc.status)
    return _see_other(f"{ENDPOINTS}/{row.id}?notice=created")


async def _endpoint_detail(
    request: Request,
    ui: UiSession,
    endpoint_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    secret: RevealedEndpointSecret | None = None,
    rotated: bool = False,
    recover: dict[str, Any] | None = None,
) -> Response:
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row = await _service(ui).get(session, ui.actor, endpoint_id)
        metrics = await delivery_metrics.endpoint_metrics(session, ui.actor.tenant_id, row.id)
        recent = await delivery_service.list_deliveries(
            session,
            ui.actor.tenant_id,
            delivery_service.DeliveryFilter(endpoint_id=row.id),
            PageRequest(RECENT_DELIVERIES),
        )
        types = await delivery_service.event_types_of(
            session, ui.actor.tenant_id, [d.event_id for d in recent.items]
        )
    return _html(
        request,
        "endpoint_detail.html",
        status,
        active="endpoints",
        endpoint=endpoint_info(row),
        deliveries=[delivery_info(d) for d in recent.items],
        more_deliveries=recent.has_more,
        event_types=types,
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        secret=secret,
        rotated=rotated,
        metrics=metrics,
        replay=await _replay_shown(request, ui),
        recover=recover
        or {
            "since": "",
            "until": "",
            "statuses": ["FAILED"],
            "request_id": _request_id(),
            "shown_at": _now_text(),
        },
        recoverable_statuses=RECOVERABLE_STATUSES,
        errors=errors or {},
        notice=_notice(request, ENDPOINT_NOTICES),
        error=error,
    )


@router.get("/endpoints/{endpoint_id}")
@page
async def endpoint_page(request: Request, endpoint_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, ENDPOINTS)
    return await _endpoint_detail(request, ui, endpoint_id)


@router.get("/endpoints/{endpoint_id}/edit")
@page
async def edit_endpoint_page(request: Request, endpoint_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        info = endpoint_info(await _service(ui).get(session, ui.actor, endpoint_id))
    return await _endpoint_form(request, ui, _form_of(info), {}, 200, endpoint=info)


def _keep_hidden_values(changes: dict[str, Any], row: WebhookEndpoint) -> None:
    """The edit form shows what the API shows: a redacted header value that comes back unchanged
    keeps the stored value. (A redacted SLACK url sent back as shown keeps its target in the
    service itself.)"""
    stored = dict(row.headers or {})
    for name, value in changes.get("headers", {}).items():
        if value == REDACTED and name in stored:
            changes["headers"][name] = stored[name]


@router.post("/endpoints/{endpoint_id}/edit")
@page
async def update_endpoint(request: Request, endpoint_id: str) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    service = _service(ui)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row = await service.get(session, ui.actor, endpoint_id)
        info = endpoint_info(row)
    values = _values_of(form)
    try:
        changes = _endpoint_changes(values)
        _keep_hidden_values(changes, row)
        if changes["url"] not in (None, info.url) and changes["channel"] is not DeliveryChannel.EMAIL:
            await service.vet_url(changes["url"])  # DNS before the write transaction opens
        async with ui.runtime.db.unit_of_work() as session:
            await service.update(session, ui.actor, endpoint_id, changes)
    except FormInvalid as exc:
        return await _endpoint_form(request, ui, values, exc.errors, 422, endpoint=info)
    except ValidationFailed as exc:
        errors = {_field_of(exc, "url"): exc.detail}
        return await _endpoint_form(request, ui, values, errors, exc.status, endpoint=info)
    return _see_other(f"{ENDPOINTS}/{endpoint_id}?notice=updated")


@router.post("/endpoints/{endpoint_id}/secret")
@page
async def reveal_endpoint_secret(request: Request, endpoint_id: str) -> Response:
    """Show the current signing secret in this response only (audited as ``endpoint.secret_read``)."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    async with ui.runtime.db.unit_of_work() as session:
        revealed = await _service(ui).reveal_secret(session, ui.actor, endpoint_id)
    return await _endpoint_detail(request, ui, endpoint_id, secret=revealed)


@router.post("/endpoints/{endpoint_id}/secret/rotate")
@page
async def rotate_endpoint_secret(request: Request, endpoint_id: str) -> Response:
    """Create a new signing secret and show it; the previous one keeps signing for 24 hours."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    async with ui.runtime.db.unit_of_work() as session:
        revealed = await _service(ui).rotate_secret(session, ui.actor, endpoint_id)
    return await _endpoint_detail(request, ui, endpoint_id, status=201, secret=revealed, rotated=True)


@router.post("/endpoints/{endpoint_id}/disable")
@page
async def disable_endpoint(request: Request, endpoint_id: str) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            await _service(ui).disable(session, ui.actor, endpoint_id, form.get("reason") or None)
    except ValidationFailed as exc:
        errors = {_field_of(exc, "reason"): exc.detail}
        return await _endpoint_detail(
            request, ui, endpoint_id, status=exc.status, errors=errors, error=exc.detail
        )
    return _see_other(f"{ENDPOINTS}/{endpoint_id}?notice=disabled")


@router.post("/endpoints/{endpoint_id}/enable")
@page
async def enable_endpoint(request: Request, endpoint_id: str) -> Response:
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    async with ui.runtime.db.unit_of_work() as session:
        await _service(ui).enable(session, ui.actor, endpoint_id)
    return _see_other(f"{ENDPOINTS}/{endpoint_id}?notice=enabled")


@router.post("/endpoints/{endpoint_id}/delete")
@page
async def delete_endpoint(request: Request, endpoint_id: str) -> Response:
    """Delete after the form's confirmation box was ticked (and the browser's prompt accepted)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    return await delete_confirmed(
        ui,
        form,
        _service(ui),
        endpoint_id,
        noun="endpoint",
        collection=ENDPOINTS,
        detail=lambda errors: _endpoint_detail(request, ui, endpoint_id, status=422, errors=errors),
    )


@router.post("/endpoints/{endpoint_id}/test")
@page
async def send_test_event(request: Request, endpoint_id: str) -> Response:
    """Send a ``webhook.test`` event to this endpoint only and make its first attempt now (as
    ``POST /v1/endpoints/{id}/test``), then show the delivery."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            result = await health.send_test(session, ui.actor, endpoint_id)
    except Conflict as exc:
        return await _endpoint_detail(request, ui, endpoint_id, status=exc.status, error=exc.detail)
    delivery_id = result.deliveries[0].id
    try:
        runtime = ui.runtime
        await deliver_now(runtime.db, runtime.keyring, runtime.transport, [delivery_id], smtp=runtime.smtp)
    except Exception as exc:  # the delivery is stored: the queue sends it
        log.warning("test_delivery_failed", endpoint_id=endpoint_id, error=str(exc))
    return _see_other(f"{DELIVERIES}/{delivery_id}?notice=test")


@router.post("/endpoints/{endpoint_id}/recover")
@page
async def recover_endpoint(request: Request, endpoint_id: str) -> Response:
    """Replay the endpoint's deliveries in a time range (default: FAILED ones, until now)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, ENDPOINTS)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        await _service(ui).get(session, ui.actor, endpoint_id)  # someone else's endpoint: 404 first
    values: dict[str, Any] = {
        "since": form.get("since"),
        "until": form.get("until"),
        "statuses": form.getlist("statuses"),
        "request_id": form.get("request_id") or _request_id(),
        "shown_at": form.get("shown_at"),
    }
    try:
        statuses = []
        for name in values["statuses"]:
            try:
                statuses.append(DeliveryStatus(name.upper()))
            except ValueError as exc:
                raise ValidationFailed(f"unknown status {name[:20]!r}", field="statuses") from exc
        since = parse_time(values["since"], "since")
        if since is None:
            raise ValidationFailed("Enter the time to recover deliveries from.", field="since")
        spec = replay.ReplaySpec(
            request_id=values["request_id"],
            endpoint_id=endpoint_id,
            since=since,
            # "until now" is the moment the form was shown, so a repeated submit is the same request
            until=parse_time(values["until"], "until") or parse_time(values["shown_at"], "until") or utcnow(),
            statuses=statuses or None,
        )
        async with ui.runtime.db.unit_of_work() as session:
            result = await replay.create_replay(session, ui.actor, spec)
    except (ValidationFailed, Conflict) as exc:
        fields = {_field_of(exc, "since"): exc.detail} if isinstance(exc, ValidationFailed) else {}
        values.update(request_id=_request_id(), shown_at=_now_text())  # nothing was recorded
        return await _endpoint_detail(
            request, ui, endpoint_id, status=exc.status, errors=fields, error=exc.detail, recover=values
        )
    if result.replay.delivery_ids and ui.runtime.delivery_worker is not None:
        ui.runtime.delivery_worker.wake()
    return _see_other(f"{ENDPOINTS}/{endpoint_id}?replay={result.replay.id}")


# -- event types -----------------------------------------------------------------------------------


@router.get("/event-types")
@page
async def event_types_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, EVENT_TYPES)
    filters = {"state": _text_param(request, "state", 12)}
    current = _state(filters["state"], "current", "deprecated")
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await _EVENT_TYPES.list_event_types(
            session,
            ui.actor,
            page_request,
            deprecated=None if current is None else not current,
        )
    return _html(
        request,
        "event_types.html",
        active="event-types",
        event_types=[event_type_info(r) for r in result.items],
        filters=filters,
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        notice=_notice(request, EVENT_TYPE_NOTICES),
        **_pager(EVENT_TYPES, filters, page_request, result.next_cursor),
    )


def _event_type_form(
    request: Request, values: dict[str, str], errors: dict[str, str], status: int
) -> Response:
    known = ("name", "description", "schema")
    general = [f"{k}: {v}" for k, v in errors.items() if k not in known]
    return _html(
        request,
        "event_type_new.html",
        status,
        active="event-types",
        form=values,
        errors=errors,
        error=("; ".join(general) or "Check the fields marked below.") if errors else None,
    )


@router.get("/event-types/new")
@page
async def new_event_type_page(request: Request) -> Response:
    await _open(request, ApiKeyScope.WEBHOOKS_WRITE, EVENT_TYPES)
    return _event_type_form(request, {"name": "", "description": "", "schema": ""}, {}, 200)


@router.post("/event-types")
@page
async def create_event_type(request: Request) -> Response:
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, EVENT_TYPES)
    values = {"name": form.get("name"), "description": form.get("description"), "schema": form.get("schema")}
    try:
        for name, value in values.items():
            _no_nul(value, name)
        if not values["name"]:
            raise ValidationFailed("Enter a name, such as invoice.paid.", field="name")
        schema = parse_json(values["schema"], "schema", kind="a JSON object (a JSON Schema)")
        spec = EventTypeSpec(values["name"], values["description"] or None, schema)
        async with ui.runtime.db.unit_of_work() as session:
            row = await _EVENT_TYPES.create(session, ui.actor, spec)
    except (ValidationFailed, Conflict) as exc:
        field_name = _field_of(exc, "name") if isinstance(exc, ValidationFailed) else "name"
        return _event_type_form(request, values, {field_name: exc.detail}, exc.status)
    return _see_other(f"{EVENT_TYPES}/{row.id}?notice=created")


@router.get("/event-types/{event_type_id}")
@page
async def event_type_page(request: Request, event_type_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, EVENT_TYPES)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row = await _EVENT_TYPES.get(session, ui.actor, event_type_id)
    return _html(
        request,
        "event_type_detail.html",
        active="event-types",
        event_type=event_type_info(row),
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        can_read_events=ui.actor.has_scope(ApiKeyScope.EVENTS_READ),
        notice=_notice(request, EVENT_TYPE_NOTICES),
    )


@router.post("/event-types/{event_type_id}/deprecate")
@page
async def deprecate_event_type(request: Request, event_type_id: str) -> Response:
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, EVENT_TYPES)
    async with ui.runtime.db.unit_of_work() as session:
        row = await _EVENT_TYPES.deprecate(session, ui.actor, event_type_id)
    return _see_other(f"{EVENT_TYPES}/{row.id}?notice=deprecated")


@router.post("/event-types/{event_type_id}/restore")
@page
async def restore_event_type(request: Request, event_type_id: str) -> Response:
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, EVENT_TYPES)
    async with ui.runtime.db.unit_of_work() as session:
        row = await _EVENT_TYPES.update(session, ui.actor, event_type_id, {"deprecated": False})
    return _see_other(f"{EVENT_TYPES}/{row.id}?notice=restored")


# -- deliveries ------------------------------------------------------------------------------------


@router.get("/deliveries")
@page
async def deliveries_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, DELIVERIES)
    filters = {
        "endpointId": _text_param(request, "endpointId", 64),
        "eventType": _text_param(request, "eventType", 200),
        "eventId": _text_param(request, "eventId", 64),
        "status": _text_param(request, "status", 12),
        "since": _text_param(request, "since", 40),
        "until": _text_param(request, "until", 40),
    }
    status = None
    if filters["status"]:
        try:
            status = DeliveryStatus(filters["status"].upper())
        except ValueError as exc:
            raise ValidationFailed(f"unknown status {filters['status']!r}", field="status") from exc
    flt = delivery_service.DeliveryFilter(
        endpoint_id=filters["endpointId"] or None,
        event_id=filters["eventId"] or None,
        status=status,
        since=parse_time(filters["since"], "since"),
        until=parse_time(filters["until"], "until"),
        event_type=filters["eventType"] or None,
    )
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await delivery_service.list_deliveries(session, ui.actor.tenant_id, flt, page_request)
        types = await delivery_service.event_types_of(
            session, ui.actor.tenant_id, [d.event_id for d in result.items]
        )
        endpoints = await _service(ui).list_endpoints(session, ui.actor, PageRequest(MAX_LIMIT))
    return _html(
        request,
        "deliveries.html",
        active="deliveries",
        deliveries=[delivery_info(d) for d in result.items],
        event_types=types,
        endpoints={e.id: endpoint_info(e) for e in endpoints.items},
        filters=filters,
        statuses=[s.value for s in DeliveryStatus],
        **_pager(DELIVERIES, filters, page_request, result.next_cursor),
    )


async def _delivery_detail(
    request: Request, ui: UiSession, delivery_id: str, *, status: int = 200, error: str | None = None
) -> Response:
    async with ui.runtime.db.unit_of_work(write=False) as session:
        row = await delivery_service.get_delivery(session, ui.actor.tenant_id, delivery_id)
        attempts = await delivery_service.list_attempts(
            session, ui.actor.tenant_id, delivery_id, PageRequest(MAX_LIMIT)
        )
        types = await delivery_service.event_types_of(session, ui.actor.tenant_id, [row.event_id])
        try:
            endpoint: WebhookEndpointInfo | None = endpoint_info(
                await _service(ui).get(session, ui.actor, row.endpoint_id)
            )
        except NotFound:  # deleted since
            endpoint = None
    return _html(
        request,
        "delivery_detail.html",
        status,
        active="deliveries",
        delivery=delivery_info(row),
        event_type=types.get(row.event_id, ""),
        endpoint=endpoint,
        attempts=[WebhookAttemptInfo.model_validate(a) for a in attempts.items],
        more_attempts=attempts.has_more,
        can_write=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        can_read_events=ui.actor.has_scope(ApiKeyScope.EVENTS_READ),
        notice=_notice(request, DELIVERY_NOTICES),
        error=error,
    )


@router.get("/deliveries/{delivery_id}")
@page
async def delivery_page(request: Request, delivery_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.WEBHOOKS_READ, DELIVERIES)
    return await _delivery_detail(request, ui, delivery_id)


@router.post("/deliveries/{delivery_id}/retry")
@page
async def retry_delivery(request: Request, delivery_id: str) -> Response:
    """Requeue the delivery now (audited as ``delivery.retried``)."""
    await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, DELIVERIES)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            await delivery_service.retry_delivery(session, ui.actor, delivery_id)
    except InterlinkError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _delivery_detail(request, ui, delivery_id, status=exc.status, error=exc.detail)
    if ui.runtime.delivery_worker is not None:
        ui.runtime.delivery_worker.wake()
    return _see_other(f"{DELIVERIES}/{delivery_id}?notice=retried")


# -- events ----------------------------------------------------------------------------------------


@router.get("/events")
@page
async def events_page(request: Request) -> Response:
    ui = await _open(request, ApiKeyScope.EVENTS_READ, EVENTS)
    filters = {"type": _text_param(request, "type", 200)}
    page_request = _page_request(request)
    async with ui.runtime.db.unit_of_work(write=False) as session:
        result = await ingest.list_events(
            session, ui.actor.tenant_id, page_request, event_type=filters["type"] or None
        )
    return _html(
        request,
        "events.html",
        active="events",
        events=[event_info(e) for e in result.items],
        filters=filters,
        **_pager(EVENTS, filters, page_request, result.next_cursor),
    )


@router.get("/events/{event_id}")
@page
async def event_page(request: Request, event_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.EVENTS_READ, EVENTS)
    return await _event_detail(request, ui, event_id)


async def _event_detail(
    request: Request, ui: UiSession, event_id: str, *, status: int = 200, error: str | None = None
) -> Response:
    async with ui.runtime.db.unit_of_work(write=False) as session:
        event, deliveries = await ingest.get_event(session, ui.actor.tenant_id, event_id)
    return _html(
        request,
        "event_detail.html",
        status,
        active="events",
        event=event_info(event),
        deliveries=[delivery_info(d) for d in deliveries],
        can_read_deliveries=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_READ),
        can_replay=ui.actor.has_scope(ApiKeyScope.WEBHOOKS_WRITE),
        replay=await _replay_shown(request, ui),
        request_id=_request_id(),
        error=error,
    )


@router.post("/events/{event_id}/replay")
@page
async def replay_event(request: Request, event_id: str) -> Response:
    """Send the event again to every endpoint that qualifies now (``POST /v1/replays`` with
    ``eventId``); needs ``webhooks:write`` like the API."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.WEBHOOKS_WRITE, EVENTS)
    spec = replay.ReplaySpec(request_id=form.get("request_id") or _request_id(), event_id=event_id)
    try:
        async with ui.runtime.db.unit_of_work() as session:
            result = await replay.create_replay(session, ui.actor, spec)
    except (ValidationFailed, Conflict) as exc:
        if not ui.actor.has_scope(ApiKeyScope.EVENTS_READ):
            raise
        return await _event_detail(request, ui, event_id, status=exc.status, error=exc.detail)
    if result.replay.delivery_ids and ui.runtime.delivery_worker is not None:
        ui.runtime.delivery_worker.wake()
    return _see_other(f"{EVENTS}/{event_id}?replay={result.replay.id}")
