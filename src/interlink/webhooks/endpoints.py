"""Event types and endpoints: the registry, endpoint configuration and signing secrets.

Contracts
---------
* Every query is tenant-scoped by the actor, except :func:`active_secrets` and
  :func:`active_secrets_many`, which the delivery worker calls for rows it has already claimed
  (endpoint ids are globally unique; the decryption itself is bound to the row's tenant).
* Every mutation writes an audit row in the same transaction. Audit rows never hold a signing
  secret or a credential-like header value (header values are left out entirely).
* **Event types** are unique by name within a tenant (409). A JSON Schema is checked as a schema
  when saved (its ``$schema`` draft, else 2020-12) and may only use local ``$ref``s, so validating a
  payload never fetches anything. Names cannot change; deprecation keeps the type usable.
* **Subscriptions**: ``event_types`` empty means "every type". While the tenant has registered no
  event type at all, any well-formed name is accepted (the registry is optional); once it has
  registered one, every subscribed name must be registered or be a built-in operational type
  (:data:`BUILTIN_EVENT_TYPES`), else 422 naming ``eventTypes``.
* **Targets**: WEBHOOK and SLACK endpoints take a ``url`` that passes :func:`ssrf.validate_url`
  and, resolved when saved, :func:`ssrf.check_target` against ``runtime.allowed_target_networks``.
  EMAIL endpoints take no url: their recipients are ``channel_config["to"]`` and the stored url
  is ``mailto:<recipients>``; a ``subjectTemplate`` may use only the bare placeholders of
  :data:`interlink.webhooks.channels.email.SUBJECT_PLACEHOLDERS`.
* **SLACK hook urls are credentials**: stored encrypted in ``target_ciphertext`` (AES-256-GCM,
  bound to tenant and endpoint), while ``url`` holds only the redacted form that the API, the
  audit trail and the dashboard show. An update that sends the redacted form back keeps the
  stored url; :func:`delivery_target` gives the delivery worker the real one.
* ``batch_config`` is stored as ``{"maxCount", "maxBytes", "maxWaitSeconds"}``; ``channel_config``
  as sent (EMAIL: ``{"to": [...], "subjectTemplate"?}``; SLACK: ``{"username"?, "iconEmoji"?}``).
* **Enable/disable**: disabling records the reason and time; a manual enable clears the reason
  and the failure counters (``consecutive_failures``, ``failing_since``).
* **Delete** is soft: the endpoint is disabled with reason :data:`DELETED_REASON`, ``deleted_at``
  is set, every secret expires at once, its PENDING/RETRYING deliveries are CANCELLED, and the
  endpoint is hidden from every read (404). Deliveries in flight at that moment are cancelled
  when they are recorded (the delivery engine checks ``deleted_at``; :func:`is_deleted`).
* **Signing secrets** (``whsec_``) are AES-256-GCM encrypted with the master keyring, bound by
  associated data to tenant, endpoint and secret id. Rotation adds a new secret and lets every
  older active one expire in :data:`ROTATION_OVERLAP` (24 h); meanwhile all of them sign. Reading
  the current secret is audited as ``endpoint.secret_read``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import jsonschema
import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.crypto import CryptoError, Keyring
from interlink.core.enums import DeliveryChannel, DeliveryStatus, RetentionPolicy
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.ids import is_id, new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.core.text import has_control_characters
from interlink.webhooks import config as webhook_config
from interlink.webhooks import filters, ssrf, transform
from interlink.webhooks.channels.email import check_subject_template
from interlink.webhooks.channels.slack import redact_url
from interlink.webhooks.models import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointSecret,
    WebhookEventType,
)
from interlink.webhooks.schemas import (
    DEFAULT_MAX_IN_FLIGHT,
    EVENT_TYPE_NAME_PATTERN,
    MAX_BATCH_BYTES,
    MAX_BATCH_COUNT,
    MAX_BATCH_WAIT_SECONDS,
    MAX_DESCRIPTION,
    MAX_EVENT_TYPE_NAME,
    MAX_IN_FLIGHT,
    MAX_RATE_LIMIT_PER_SECOND,
    MAX_RETRY_ENTRIES,
    MAX_RETRY_SECONDS,
    MAX_SUBSCRIBED_TYPES,
    MAX_TIMEOUT_SECONDS,
    MAX_URL,
    MIN_BATCH_BYTES,
    MIN_IN_FLIGHT,
    MIN_RETRY_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from interlink.webhooks.signing import generate_secret

Network = IPv4Network | IPv6Network
log = structlog.get_logger(__name__)

BUILTIN_EVENT_TYPES = frozenset(
    {
        "webhook.test",
        "endpoint.disabled",
        "endpoint.recovered",
        "connection.expired",
        "connection.error",
        "connection.unhealthy",
        "connection.recovered",
    }
)
DELETED_REASON = "deleted"
VETTED_SECONDS = 30.0
"""How long a URL checked by :meth:`Endpoints.vet_url` counts as checked."""
ROTATION_OVERLAP = timedelta(hours=24)
MAX_SCHEMA_BYTES = 65_536
MAX_FILTER_BYTES = 16_384
MAX_TEMPLATE_CHARS = 16_384
MAX_METADATA_BYTES = 16_384
MAX_HEADERS = 20
MAX_HEADERS_BYTES = 8_192
MAX_HEADER_VALUE = 1_000
MAX_EMAIL_RECIPIENTS = 20
MAX_SUBJECT_TEMPLATE = 500
EVENT_TYPE_PREFIX = "etp"
ENDPOINT_PREFIX = "ep"
SECRET_PREFIX = "whs"  # noqa: S105 - an id prefix, not a secret

_NAME_RE = re.compile(EVENT_TYPE_NAME_PATTERN)
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_REFUSED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
    }
)
_SIGNATURE_HEADER_PREFIXES = ("webhook-", "svix-")
_AAD_LABEL = "interlink.webhook-secret.v1"
_TARGET_AAD_LABEL = "interlink.webhook-target.v1"


# -- helpers ---------------------------------------------------------------------------------------


def _json_size(value: Any, name: str) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"{name} must be JSON", field=name) from exc


def _check_text(value: str | None, name: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise ValidationFailed(f"{name} must be text of at most {max_length} characters", field=name)
    return value


def _check_metadata(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise ValidationFailed("metadata must be a JSON object", field="metadata")
    value = dict(meta)
    if _json_size(value, "metadata") > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON", field="metadata"
        )
    return value


def check_event_type_name(name: str, field_name: str = "name") -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_EVENT_TYPE_NAME or not _NAME_RE.match(name):
        raise ValidationFailed(
            f"{field_name} must be 1–{MAX_EVENT_TYPE_NAME} letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit",
            field=field_name,
        )
    return name


# -- event types -----------------------------------------------------------------------------------


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef", "$recursiveRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def check_json_schema(schema: Any) -> dict[str, Any] | None:
    """A valid JSON Schema document (or None). Raises ValidationFailed naming ``schema``."""
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise ValidationFailed("schema must be a JSON object (a JSON Schema)", field="schema")
    if _json_size(schema, "schema") > MAX_SCHEMA_BYTES:
        raise ValidationFailed(f"schema must be at most {MAX_SCHEMA_BYTES} bytes as JSON", field="schema")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise ValidationFailed(
                f"schema may only use local references ('#...'), not {ref!r}", field="schema"
            )
    declared = schema.get("$schema")
    if declared is not None and not isinstance(declared, str):
        raise ValidationFailed("schema $schema must be a URI string", field="schema")
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise ValidationFailed(
            f"schema is not a valid JSON Schema at {where}: {exc.message}", field="schema"
        ) from exc
    return schema


def validate_payload(schema: dict[str, Any] | None, payload: Any, field_name: str = "payload") -> None:
    """Check a payload against an event type's schema; raises ValidationFailed naming the first error."""
    if schema is None:
        return
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(payload))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        name = f"{field_name}.{where}" if where else field_name
        raise ValidationFailed(f"{name} does not match the event type's schema: {error.message}", field=name)


def _type_snapshot(row: WebhookEventType) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "schema": row.json_schema,
        "deprecated": row.deprecated,
    }


@dataclass(frozen=True)
class EventTypeSpec:
    name: str
    description: str | None = None
    json_schema: dict[str, Any] | None = None
    deprecated: bool = False


class EventTypes:
    """The per-tenant event type registry."""

    @staticmethod
    def _visible(actor: Actor) -> sa.Select[WebhookEventType]:
        return sa.select(WebhookEventType).where(WebhookEventType.tenant_id == actor.tenant_id)

    async def get(
        self, session: AsyncSession, actor: Actor, id_or_name: str, *, for_update: bool = False
    ) -> WebhookEventType:
        """An event type of the actor's tenant by id (``etp_...``) or by name, or NotFound."""
        stmt = self._visible(actor)
        if is_id(id_or_name, EVENT_TYPE_PREFIX):
            stmt = stmt.where(WebhookEventType.id == id_or_name)
        else:
            stmt = stmt.where(WebhookEventType.name == id_or_name)
        if for_update:
            stmt = stmt.with_for_update()
        row = await session.scalar(stmt)
        if row is None:
            raise NotFound(f"event type {id_or_name} not found")
        return row

    async def list_event_types(
        self, session: AsyncSession, actor: Actor, page: PageRequest, *, deprecated: bool | None = None
    ) -> Page[WebhookEventType]:
        """Event types of the tenant, newest first; optionally only (non-)deprecated ones."""
        stmt = self._visible(actor)
        if deprecated is not None:
            stmt = stmt.where(WebhookEventType.deprecated == deprecated)
        rows = (await session.scalars(paginate_query(stmt, WebhookEventType.id, page))).all()
        return make_page(rows, page, lambda r: r.id)

    async def create(self, session: AsyncSession, actor: Actor, spec: EventTypeSpec) -> WebhookEventType:
        """Register a type; 409 when the name is taken in the tenant."""
        name = check_event_type_name(spec.name)
        description = _check_text(spec.description, "description", MAX_DESCRIPTION)
        schema = check_json_schema(spec.json_schema)
        taken = await session.scalar(
            sa.select(WebhookEventType.id).where(
                WebhookEventType.tenant_id == actor.tenant_id, WebhookEventType.name == name
            )
        )
        if taken is not None:
            raise Conflict(f"an event type named {name!r} exists already in this tenant")
        now = utcnow()
        row = WebhookEventType(
            id=new_id(EVENT_TYPE_PREFIX),
            tenant_id=actor.tenant_id,
            name=name,
            description=description,
            json_schema=schema,
            deprecated=bool(spec.deprecated),
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"an event type named {name!r} exists already in this tenant") from exc
        audit.record(
            session, actor, "event_type.created", "event_type", row.id, audit.diff({}, _type_snapshot(row))
        )
        return row

    async def update(
        self, session: AsyncSession, actor: Actor, id_or_name: str, changes: Mapping[str, Any]
    ) -> WebhookEventType:
        """Apply ``changes`` (keys: description, json_schema, deprecated; None clears description/schema)."""
        unknown = set(changes) - {"description", "json_schema", "deprecated"}
        if unknown:
            raise ValidationFailed(f"cannot change {sorted(unknown)[0]}", field=sorted(unknown)[0])
        row = await self.get(session, actor, id_or_name, for_update=True)
        before = _type_snapshot(row)
        if "description" in changes:
            row.description = _check_text(changes["description"], "description", MAX_DESCRIPTION)
        if "json_schema" in changes:
            row.json_schema = check_json_schema(changes["json_schema"])
        if "deprecated" in changes:
            if changes["deprecated"] is None:
                raise ValidationFailed("deprecated must be true or false", field="deprecated")
            row.deprecated = bool(changes["deprecated"])
        diff = audit.diff(before, _type_snapshot(row))
        if diff:
            row.updated_at = utcnow()
            action = "event_type.updated"
            if set(diff) == {"deprecated"}:
                action = "event_type.deprecated" if row.deprecated else "event_type.undeprecated"
            audit.record(session, actor, action, "event_type", row.id, diff)
        return row

    async def deprecate(self, session: AsyncSession, actor: Actor, id_or_name: str) -> WebhookEventType:
        """Mark a type deprecated (idempotent). Endpoints and events keep working."""
        return await self.update(session, actor, id_or_name, {"deprecated": True})


async def registered_names(session: AsyncSession, tenant_id: str, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the tenant has registered."""
    wanted = sorted(set(names))
    if not wanted:
        return set()
    rows = await session.scalars(
        sa.select(WebhookEventType.name).where(
            WebhookEventType.tenant_id == tenant_id, WebhookEventType.name.in_(wanted)
        )
    )
    return set(rows.all())


async def _tenant_has_registry(session: AsyncSession, tenant_id: str) -> bool:
    found = await session.scalar(
        sa.select(WebhookEventType.id).where(WebhookEventType.tenant_id == tenant_id).limit(1)
    )
    return found is not None


# -- endpoint field checks -------------------------------------------------------------------------


def _check_event_types(value: Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationFailed("eventTypes must be a list of event type names", field="eventTypes")
    if len(value) > MAX_SUBSCRIBED_TYPES:
        raise ValidationFailed(
            f"eventTypes may list at most {MAX_SUBSCRIBED_TYPES} names", field="eventTypes"
        )
    out: list[str] = []
    for name in value:
        check_event_type_name(name, "eventTypes")
        if name not in out:
            out.append(name)
    return out


def _check_filter(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationFailed("filter must be a JSON object", field="filter")
    spec = dict(value)
    if not spec:
        return None
    if _json_size(spec, "filter") > MAX_FILTER_BYTES:
        raise ValidationFailed(f"filter must be at most {MAX_FILTER_BYTES} bytes as JSON", field="filter")
    filters.validate_filter(spec)
    return spec


def _check_transformation(value: str | None, field_name: str = "transformation") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{field_name} must be a non-empty template", field=field_name)
    if len(value) > MAX_TEMPLATE_CHARS:
        raise ValidationFailed(
            f"{field_name} must be at most {MAX_TEMPLATE_CHARS} characters", field=field_name
        )
    _compile(value, field_name)
    return value


def _compile(template: str, field_name: str) -> transform.Transformation:
    try:
        return transform.compile_transformation(template)
    except ValidationFailed as exc:
        if field_name == "transformation":
            raise
        raise ValidationFailed(exc.detail, field=field_name) from exc


def _check_headers(value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationFailed("headers must be an object of header names to values", field="headers")
    if len(value) > MAX_HEADERS:
        raise ValidationFailed(f"headers may hold at most {MAX_HEADERS} entries", field="headers")
    seen: set[str] = set()
    total = 0
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            raise ValidationFailed(f"header name {name!r} is not a valid HTTP header name", field="headers")
        lowered = name.lower()
        if lowered in _REFUSED_HEADERS or lowered.startswith(_SIGNATURE_HEADER_PREFIXES):
            raise ValidationFailed(
                f"header {name!r} is set by Interlink and cannot be overridden", field="headers"
            )
        if lowered in seen:
            raise ValidationFailed(f"header {name!r} is given twice", field="headers")
        seen.add(lowered)
        if (
            not isinstance(text, str)
            or len(text) > MAX_HEADER_VALUE
            or has_control_characters(text, allow_tab=True)
        ):
            raise ValidationFailed(
                f"header {name!r} must be at most {MAX_HEADER_VALUE} characters without control characters",
                field="headers",
            )
        total += len(name) + len(text)
    if total > MAX_HEADERS_BYTES:
        raise ValidationFailed(f"headers must be at most {MAX_HEADERS_BYTES} bytes in total", field="headers")
    return dict(value)


def _check_number(
    value: Any, name: str, low: float, high: float, *, integer: bool = False, low_open: bool = False
) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValidationFailed(f"{name} must be a{'n integer' if integer else ' number'}", field=name)
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        raise ValidationFailed(f"{name} must be {bound} and at most {high:g}", field=name)
    return value


def _check_retry_schedule(value: Sequence[int] | None) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationFailed("retrySchedule must be a list of seconds", field="retrySchedule")
    if len(value) > MAX_RETRY_ENTRIES:
        raise ValidationFailed(
            f"retrySchedule may hold at most {MAX_RETRY_ENTRIES} entries", field="retrySchedule"
        )
    for delay in value:
        _check_number(delay, "retrySchedule", MIN_RETRY_SECONDS, MAX_RETRY_SECONDS, integer=True)
    return [int(d) for d in value]


def _check_batch_config(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationFailed("batchConfig must be an object", field="batchConfig")
    unknown = set(value) - {"maxCount", "maxBytes", "maxWaitSeconds"}
    if unknown:
        raise ValidationFailed(
            f"batchConfig has an unknown field {sorted(unknown)[0]!r}", field="batchConfig"
        )
    missing = {"maxCount", "maxBytes", "maxWaitSeconds"} - set(value)
    if missing:
        raise ValidationFailed(f"batchConfig needs {sorted(missing)[0]}", field="batchConfig")
    return {
        "maxCount": _check_number(
            value["maxCount"], "batchConfig.maxCount", 1, MAX_BATCH_COUNT, integer=True
        ),
        "maxBytes": _check_number(
            value["maxBytes"], "batchConfig.maxBytes", MIN_BATCH_BYTES, MAX_BATCH_BYTES, integer=True
        ),
        "maxWaitSeconds": float(
            _check_number(value["maxWaitSeconds"], "batchConfig.maxWaitSeconds", 0, MAX_BATCH_WAIT_SECONDS)
        ),
    }


def _check_email_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(config) - {"to", "subjectTemplate"}
    if unknown:
        raise ValidationFailed(
            f"channelConfig has an unknown field {sorted(unknown)[0]!r} for EMAIL", field="channelConfig"
        )
    recipients = config.get("to")
    if isinstance(recipients, str) or not isinstance(recipients, Sequence) or not recipients:
        raise ValidationFailed(
            "channelConfig.to must list 1 or more email addresses", field="channelConfig.to"
        )
    if len(recipients) > MAX_EMAIL_RECIPIENTS:
        raise ValidationFailed(
            f"channelConfig.to may list at most {MAX_EMAIL_RECIPIENTS} addresses", field="channelConfig.to"
        )
    clean: list[str] = []
    for address in recipients:
        if not isinstance(address, str) or len(address) > 254 or not _EMAIL_RE.match(address):
            raise ValidationFailed(f"{address!r} is not an email address", field="channelConfig.to")
        if address.lower() not in (a.lower() for a in clean):
            clean.append(address)
    if len("mailto:" + ",".join(clean)) > MAX_URL:  # stored as the endpoint's url
        raise ValidationFailed(
            f"channelConfig.to is too long: the addresses together may hold at most {MAX_URL - 7} characters",
            field="channelConfig.to",
        )
    out: dict[str, Any] = {"to": clean}
    subject = config.get("subjectTemplate")
    if subject is not None:
        if (
            not isinstance(subject, str)
            or len(subject) > MAX_SUBJECT_TEMPLATE
            or has_control_characters(subject)
        ):
            raise ValidationFailed(
                "channelConfig.subjectTemplate must be one line of at most "
                f"{MAX_SUBJECT_TEMPLATE} characters",
                field="channelConfig.subjectTemplate",
            )
        problem = check_subject_template(subject)
        if problem:
            raise ValidationFailed(
                f"channelConfig.subjectTemplate {problem}", field="channelConfig.subjectTemplate"
            )
        out["subjectTemplate"] = subject
    return out


def _check_slack_config(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in ("username", "iconEmoji"):
            raise ValidationFailed(
                f"channelConfig has an unknown field {key!r} for SLACK", field="channelConfig"
            )
        if not isinstance(value, str) or not 1 <= len(value) <= 80 or has_control_characters(value):
            raise ValidationFailed(
                f"channelConfig.{key} must be 1–80 characters", field=f"channelConfig.{key}"
            )
        out[key] = value
    return out


async def _check_target(
    channel: DeliveryChannel,
    url: str | None,
    config: Mapping[str, Any] | None,
    allowed: list[Network],
    vetted: Container[str] = (),
) -> tuple[str, dict[str, Any]]:
    """The stored (url, channel_config) for a channel, after the SSRF guard for URL channels.

    URLs in ``vetted`` passed the guard's DNS check moments ago (:meth:`Endpoints.vet_url`, called
    before the write transaction opens) and are not resolved again here."""
    if config is not None and not isinstance(config, Mapping):
        raise ValidationFailed("channelConfig must be an object", field="channelConfig")
    config = dict(config or {})
    if channel is DeliveryChannel.EMAIL:
        if url is not None and not url.startswith("mailto:"):
            raise ValidationFailed(
                "EMAIL endpoints take no url; list recipients in channelConfig.to", field="url"
            )
        checked = _check_email_config(config)
        return "mailto:" + ",".join(checked["to"]), checked
    if url is None:
        raise ValidationFailed(f"url is required for {channel.value} endpoints", field="url")
    if len(url) > MAX_URL:
        raise ValidationFailed(f"url must be at most {MAX_URL} characters", field="url")
    url = ssrf.validate_url(url)
    if url not in vetted:
        await ssrf.check_target(url, allowed)  # TargetRefused is a 422 naming url, with its reason
    if channel is DeliveryChannel.SLACK:
        return url, _check_slack_config(config)
    if config:
        raise ValidationFailed("WEBHOOK endpoints take no channelConfig", field="channelConfig")
    return url, {}


def _coerce_channel(value: Any) -> DeliveryChannel:
    try:
        return DeliveryChannel(value)
    except ValueError as exc:
        choices = ", ".join(c.value for c in DeliveryChannel)
        raise ValidationFailed(f"channel must be one of {choices}", field="channel") from exc


def _coerce_retention(value: Any) -> RetentionPolicy:
    try:
        return RetentionPolicy(value)
    except ValueError as exc:
        choices = ", ".join(c.value for c in RetentionPolicy)
        raise ValidationFailed(f"retention must be one of {choices}", field="retention") from exc


# -- endpoints -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointSpec:
    """A new endpoint. Field names are the model's; the REST names are their camelCase forms."""

    url: str | None = None
    description: str | None = None
    channel: DeliveryChannel = DeliveryChannel.WEBHOOK
    channel_config: dict[str, Any] = field(default_factory=dict)
    event_types: list[str] = field(default_factory=list)
    filter: dict[str, Any] | None = None
    transformation: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    """None: the tenant's ``default_timeout_seconds`` (webhooks/config.py), built-in 15 s."""
    retry_schedule: list[int] | None = None
    rate_limit_per_second: float | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    batch_config: dict[str, Any] | None = None
    retention: RetentionPolicy | None = None
    """None: the tenant's ``retention`` (webhooks/config.py), built-in DAYS_30."""
    metadata: dict[str, Any] = field(default_factory=dict)


ENDPOINT_FIELDS = frozenset(f.name for f in fields(EndpointSpec))


def _endpoint_snapshot(row: WebhookEndpoint) -> dict[str, Any]:
    """What the audit trail records of an endpoint: never header values, never secrets, never a
    SLACK hook url in full."""
    return {
        "url": shown_url(row),
        "description": row.description,
        "channel": row.channel,
        "channelConfig": row.channel_config,
        "eventTypes": row.event_types,
        "filter": row.filter,
        "transformation": row.transformation,
        "headerNames": sorted(row.headers or {}),
        "timeoutSeconds": row.timeout_seconds,
        "retrySchedule": row.retry_schedule,
        "rateLimitPerSecond": row.rate_limit_per_second,
        "maxInFlight": row.max_in_flight,
        "batchConfig": row.batch_config,
        "retention": row.retention,
        "enabled": row.enabled,
        "disabledReason": row.disabled_reason,
        "metadata": row.meta,
    }


def is_deleted(endpoint: WebhookEndpoint) -> bool:
    """True for an endpoint removed with :meth:`Endpoints.delete` (``deleted_at`` is set)."""
    if endpoint.deleted_at is not None:
        return True
    return not endpoint.enabled and endpoint.disabled_reason == DELETED_REASON


def shown_url(row: WebhookEndpoint) -> str:
    """The url as the API, the audit trail and logs show it: SLACK hook urls are credentials, so
    only their redacted form (:func:`redact_url`) ever leaves the service."""
    return redact_url(row.url) if row.channel is DeliveryChannel.SLACK else row.url


def target_associated_data(tenant_id: str, endpoint_id: str) -> bytes:
    """AES-GCM associated data of an encrypted target url: binds it to one tenant and endpoint."""
    return json.dumps([_TARGET_AAD_LABEL, tenant_id, endpoint_id], separators=(",", ":")).encode()


def decrypt_target(keyring: Keyring, row: WebhookEndpoint) -> str:
    """The real target url: decrypted for endpoints that store it encrypted (SLACK), else ``url``.
    Raises :class:`SecretUnreadable` when the ciphertext cannot be decrypted."""
    if not row.target_ciphertext:
        return row.url
    try:
        aad = target_associated_data(row.tenant_id, row.id)
        return keyring.decrypt(row.target_ciphertext, aad).decode("utf-8")
    except (CryptoError, ValueError) as exc:
        raise SecretUnreadable(
            f"the target url of endpoint {row.id} cannot be decrypted "
            "(master key missing or ciphertext altered)"
        ) from exc


def delivery_target(keyring: Keyring, row: WebhookEndpoint) -> str:
    """:func:`decrypt_target` for the delivery worker: an empty string (the attempt then fails with
    a clear message and is retried) instead of an error that would stall a whole claimed batch."""
    try:
        return decrypt_target(keyring, row)
    except SecretUnreadable as exc:
        log.warning("endpoint_target_unreadable", endpoint_id=row.id, error=exc.detail)
        return ""


def secret_associated_data(tenant_id: str, endpoint_id: str, secret_id: str) -> bytes:
    """AES-GCM associated data of a signing secret: binds the ciphertext to one tenant, endpoint and row."""
    return json.dumps([_AAD_LABEL, tenant_id, endpoint_id, secret_id], separators=(",", ":")).encode()


class SecretUnreadable(InterlinkError):
    """A signing secret cannot be decrypted (its master key is missing, or it was altered)."""

    status = 500
    code = "secret-unreadable"
    title = "Secret unreadable"


def _decrypt(keyring: Keyring, row: WebhookEndpointSecret) -> str:
    try:
        aad = secret_associated_data(row.tenant_id, row.endpoint_id, row.id)
        return keyring.decrypt(row.ciphertext, aad).decode("utf-8")
    except (CryptoError, ValueError) as exc:
        raise SecretUnreadable(
            f"signing secret {row.id} of endpoint {row.endpoint_id} cannot be decrypted "
            f"(master key {row.key_id!r} missing or ciphertext altered)"
        ) from exc


def _active(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(WebhookEndpointSecret.expires_at.is_(None), WebhookEndpointSecret.expires_at > now)


async def active_secrets(session: AsyncSession, keyring: Keyring, endpoint_id: str) -> list[str]:
    """The plaintext signing secrets of an endpoint that sign now, newest first (no audit row)."""
    return (await active_secrets_many(session, keyring, [endpoint_id])).get(endpoint_id, [])


async def active_secrets_many(
    session: AsyncSession, keyring: Keyring, endpoint_ids: Iterable[str]
) -> dict[str, list[str]]:
    """:func:`active_secrets` for many endpoints in one query (for a worker's claimed batch)."""
    wanted = sorted(set(endpoint_ids))
    out: dict[str, list[str]] = {eid: [] for eid in wanted}
    if not wanted:
        return out
    rows = await session.scalars(
        sa.select(WebhookEndpointSecret)
        .where(WebhookEndpointSecret.endpoint_id.in_(wanted), _active(utcnow()))
        .order_by(WebhookEndpointSecret.endpoint_id, WebhookEndpointSecret.id.desc())
    )
    for row in rows.all():
        out[row.endpoint_id].append(_decrypt(keyring, row))
    return out


@dataclass(frozen=True)
class RevealedEndpointSecret:
    endpoint_id: str
    secret_id: str
    value: str = field(repr=False)
    created_at: datetime
    previous_expires_at: datetime | None = None


class Endpoints:
    """Endpoint configuration and signing secrets for one process (keyring and allowed networks)."""

    def __init__(self, keyring: Keyring, allowed_target_networks: Sequence[Network] = ()) -> None:
        self.keyring = keyring
        self.allowed_target_networks = list(allowed_target_networks)
        self._vetted: dict[str, float] = {}

    async def vet_url(self, url: str | None) -> None:
        """Run the SSRF guard's DNS check for ``url`` now, outside any transaction.

        Callers that create or update an endpoint call this before opening the unit of work, so
        a slow resolver never holds the database's write lock (SQLite's is database-wide). The
        result counts for :data:`VETTED_SECONDS` on this service instance; anything not vetted is
        checked inside :meth:`create`/:meth:`update` as before. Invalid or refused URLs raise the
        same 422 errors as create/update would."""
        if url is None or url.startswith("mailto:") or len(url) > MAX_URL:
            return  # not a URL channel target, or refused with the right message by create/update
        clean = ssrf.validate_url(url)
        await ssrf.check_target(clean, self.allowed_target_networks)
        self._vetted[clean] = time.monotonic() + VETTED_SECONDS

    def _store_target(self, row: WebhookEndpoint, channel: DeliveryChannel, target: str) -> None:
        """Set the checked target: a SLACK hook url is a credential, so it is stored encrypted
        (``target_ciphertext``) and ``url`` keeps only its redacted form."""
        if channel is DeliveryChannel.SLACK:
            aad = target_associated_data(row.tenant_id, row.id)
            row.target_ciphertext = self.keyring.encrypt(target.encode(), aad)
            row.url = redact_url(target)
        else:
            row.target_ciphertext = None
            row.url = target

    def _vetted_urls(self) -> set[str]:
        now = time.monotonic()
        return {url for url, until in self._vetted.items() if until > now}

    # -- reads -------------------------------------------------------------------------------------

    @staticmethod
    def _visible(actor: Actor) -> sa.Select[WebhookEndpoint]:
        return sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == actor.tenant_id,
            sa.or_(
                WebhookEndpoint.disabled_reason.is_(None), WebhookEndpoint.disabled_reason != DELETED_REASON
            ),
        )

    async def get(
        self, session: AsyncSession, actor: Actor, endpoint_id: str, *, for_update: bool = False
    ) -> WebhookEndpoint:
        """An endpoint of the actor's tenant that is not deleted, or NotFound."""
        stmt = self._visible(actor).where(WebhookEndpoint.id == endpoint_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = await session.scalar(stmt)
        if row is None:
            raise NotFound(f"endpoint {endpoint_id} not found")
        return row

    async def list_endpoints(
        self,
        session: AsyncSession,
        actor: Actor,
        page: PageRequest,
        *,
        enabled: bool | None = None,
        channel: DeliveryChannel | None = None,
    ) -> Page[WebhookEndpoint]:
        """Endpoints of the tenant, newest first."""
        stmt = self._visible(actor)
        if enabled is not None:
            stmt = stmt.where(WebhookEndpoint.enabled == enabled)
        if channel is not None:
            stmt = stmt.where(WebhookEndpoint.channel == channel)
        rows = (await session.scalars(paginate_query(stmt, WebhookEndpoint.id, page))).all()
        return make_page(rows, page, lambda r: r.id)

    # -- validation --------------------------------------------------------------------------------

    async def _check_subscriptions(self, session: AsyncSession, tenant_id: str, names: list[str]) -> None:
        custom = [n for n in names if n not in BUILTIN_EVENT_TYPES]
        if not custom or not await _tenant_has_registry(session, tenant_id):
            return
        unknown = [n for n in custom if n not in await registered_names(session, tenant_id, custom)]
        if unknown:
            raise ValidationFailed(
                f"eventTypes names types this tenant has not registered: {', '.join(unknown[:10])}",
                field="eventTypes",
            )

    def _apply_simple(self, row: WebhookEndpoint, name: str, value: Any) -> None:
        """Check and set one field that needs no I/O."""
        if name == "description":
            row.description = _check_text(value, "description", MAX_DESCRIPTION)
        elif name == "filter":
            row.filter = _check_filter(value)
        elif name == "transformation":
            row.transformation = _check_transformation(value)
        elif name == "headers":
            row.headers = _check_headers(value)
        elif name == "timeout_seconds":
            if value is None:
                raise ValidationFailed("timeoutSeconds cannot be null", field="timeoutSeconds")
            row.timeout_seconds = float(
                _check_number(value, "timeoutSeconds", MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)
            )
        elif name == "retry_schedule":
            row.retry_schedule = _check_retry_schedule(value)
        elif name == "rate_limit_per_second":
            row.rate_limit_per_second = (
                None
                if value is None
                else float(
                    _check_number(value, "rateLimitPerSecond", 0, MAX_RATE_LIMIT_PER_SECOND, low_open=True)
                )
            )
        elif name == "max_in_flight":
            if value is None:
                raise ValidationFailed("maxInFlight cannot be null", field="maxInFlight")
            row.max_in_flight = int(
                _check_number(value, "maxInFlight", MIN_IN_FLIGHT, MAX_IN_FLIGHT, integer=True)
            )
        elif name == "batch_config":
            row.batch_config = _check_batch_config(value)
        elif name == "retention":
            if value is None:
                raise ValidationFailed("retention cannot be null", field="retention")
            row.retention = _coerce_retention(value)
        elif name == "metadata":
            row.meta = _check_metadata(value)

    # -- mutations ---------------------------------------------------------------------------------

    async def create(self, session: AsyncSession, actor: Actor, spec: EndpointSpec) -> WebhookEndpoint:
        """Validate and store an endpoint with a new signing secret."""
        channel = _coerce_channel(spec.channel)
        now = utcnow()
        row = WebhookEndpoint(
            id=new_id(ENDPOINT_PREFIX),
            tenant_id=actor.tenant_id,
            channel=channel,
            enabled=True,
            disabled_reason=None,
            disabled_at=None,
            failing_since=None,
            last_success_at=None,
            consecutive_failures=0,
            circuit_state="CLOSED",
            circuit_opens=0,
            circuit_window_failures=0,
            created_at=now,
            updated_at=now,
        )
        if spec.timeout_seconds is None or spec.retention is None:  # the tenant's defaults
            tenant = await webhook_config.effective(session, actor.tenant_id)
            spec = replace(
                spec,
                timeout_seconds=tenant.default_timeout_seconds
                if spec.timeout_seconds is None
                else spec.timeout_seconds,
                retention=tenant.retention if spec.retention is None else spec.retention,
            )
        for name in (
            "description",
            "filter",
            "transformation",
            "headers",
            "timeout_seconds",
            "retry_schedule",
            "rate_limit_per_second",
            "max_in_flight",
            "batch_config",
            "retention",
            "metadata",
        ):
            self._apply_simple(row, name, getattr(spec, name))
        row.event_types = _check_event_types(spec.event_types)
        await self._check_subscriptions(session, actor.tenant_id, row.event_types)
        target, row.channel_config = await _check_target(
            channel, spec.url, spec.channel_config, self.allowed_target_networks, self._vetted_urls()
        )
        self._store_target(row, channel, target)
        session.add(row)
        await session.flush()
        secret = self._new_secret(row, now)
        session.add(secret)
        await session.flush()
        changes = audit.diff({}, _endpoint_snapshot(row))
        changes["secretId"] = {"old": None, "new": secret.id}
        audit.record(session, actor, "endpoint.created", "endpoint", row.id, changes)
        return row

    async def update(
        self, session: AsyncSession, actor: Actor, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint:
        """Apply ``changes`` (keys are :class:`EndpointSpec` field names; None clears optional fields).

        Channel, url and channelConfig are checked together as they will be stored, so changing the
        channel re-validates the target. The SSRF guard runs again whenever the url is checked.
        """
        unknown = set(changes) - ENDPOINT_FIELDS
        if unknown:
            raise ValidationFailed(f"cannot change {sorted(unknown)[0]}", field=sorted(unknown)[0])
        row = await self.get(session, actor, endpoint_id, for_update=True)
        before = _endpoint_snapshot(row)
        headers_before = dict(row.headers or {})
        for name, value in changes.items():
            self._apply_simple(row, name, value)
        if "event_types" in changes:
            row.event_types = _check_event_types(changes["event_types"])
            await self._check_subscriptions(session, actor.tenant_id, row.event_types)
        target_changed = False
        if {"channel", "url", "channel_config"} & set(changes):
            channel = (
                _coerce_channel(changes["channel"]) if changes.get("channel") is not None else row.channel
            )
            try:
                target_before: str | None = decrypt_target(self.keyring, row)
            except SecretUnreadable:
                target_before = None
            # No url, or the redacted form sent back as it was shown: the target stays.
            keep = "url" not in changes or (row.target_ciphertext is not None and changes["url"] == row.url)
            url = (target_before or decrypt_target(self.keyring, row)) if keep else changes["url"]
            if channel is DeliveryChannel.EMAIL and "url" not in changes:
                url = None
            if "channel_config" in changes:
                config = changes["channel_config"] or {}
            else:
                config = row.channel_config if channel is row.channel else {}
            target, row.channel_config = await _check_target(
                channel, url, config, self.allowed_target_networks, self._vetted_urls()
            )
            target_changed = target != target_before
            self._store_target(row, channel, target)
            row.channel = channel
        diff = audit.diff(before, _endpoint_snapshot(row))
        if target_changed and "url" not in diff:  # a new SLACK hook whose redacted form is the same
            diff["url"] = {"old": before["url"], "new": shown_url(row)}
        if dict(row.headers or {}) != headers_before and "headerNames" not in diff:
            diff["headers"] = {"old": "[changed]", "new": "[changed]"}
        if diff:
            row.updated_at = utcnow()
            audit.record(session, actor, "endpoint.updated", "endpoint", row.id, diff)
        return row

    async def disable(
        self, session: AsyncSession, actor: Actor, endpoint_id: str, reason: str | None = None
    ) -> WebhookEndpoint:
        """Stop deliveries to the endpoint, recording why."""
        reason = (reason or "").strip() or "disabled manually"
        if len(reason) > 500 or has_control_characters(reason):
            raise ValidationFailed("reason must be one line of at most 500 characters", field="reason")
        if reason == DELETED_REASON:
            raise ValidationFailed(
                f"reason {DELETED_REASON!r} is reserved; delete the endpoint instead", field="reason"
            )
        row = await self.get(session, actor, endpoint_id, for_update=True)
        before = _endpoint_snapshot(row)
        if row.enabled or row.disabled_reason != reason:
            row.disabled_at = row.disabled_at if not row.enabled else utcnow()
            row.enabled = False
            row.disabled_reason = reason
            row.updated_at = utcnow()
            audit.record(
                session,
                actor,
                "endpoint.disabled",
                "endpoint",
                row.id,
                audit.diff(before, _endpoint_snapshot(row)),
            )
        return row

    async def enable(self, session: AsyncSession, actor: Actor, endpoint_id: str) -> WebhookEndpoint:
        """Resume deliveries; a manual enable also clears the failure counters, closes the circuit
        and, when the endpoint was disabled or its circuit open, publishes ``endpoint.recovered``
        (webhooks/health.py)."""
        from interlink.webhooks import health  # health publishes through ingest, which imports us

        row = await self.get(session, actor, endpoint_id, for_update=True)
        before = _endpoint_snapshot(row)
        was = health.before_change(row)
        counters = {
            "consecutiveFailures": row.consecutive_failures,
            "failingSince": row.failing_since,
            "circuitState": row.circuit_state,
        }
        row.enabled = True
        row.disabled_reason = None
        row.disabled_at = None
        row.consecutive_failures = 0
        row.failing_since = None
        health.close_circuit(row)
        row.updated_at = utcnow()
        changes = audit.diff(before, _endpoint_snapshot(row))
        changes.update(
            audit.diff(counters, {"consecutiveFailures": 0, "failingSince": None, "circuitState": "CLOSED"})
        )
        audit.record(session, actor, "endpoint.enabled", "endpoint", row.id, changes)
        await health.enabled_manually(session, row, was)
        return row

    async def delete(self, session: AsyncSession, actor: Actor, endpoint_id: str) -> None:
        """Soft-delete: disable for good, expire every secret, hide from reads (see module docs)."""
        row = await self.get(session, actor, endpoint_id, for_update=True)
        before = _endpoint_snapshot(row)
        now = utcnow()
        row.enabled = False
        row.disabled_reason = DELETED_REASON
        row.disabled_at = now
        row.deleted_at = now
        row.updated_at = now
        await session.execute(
            sa.update(WebhookEndpointSecret)
            .where(
                WebhookEndpointSecret.tenant_id == actor.tenant_id,
                WebhookEndpointSecret.endpoint_id == row.id,
                _active(now),
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        # Nothing will ever be sent to a deleted endpoint: what was waiting is cancelled. A delivery
        # in flight right now finishes and records its own outcome.
        cancelled = await session.execute(
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.tenant_id == actor.tenant_id,
                WebhookDelivery.endpoint_id == row.id,
                WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            actor,
            "endpoint.deleted",
            "endpoint",
            row.id,
            {
                **audit.diff(before, _endpoint_snapshot(row)),
                "cancelledDeliveries": {"old": None, "new": int(cancelled.rowcount or 0)},  # type: ignore[attr-defined]
            },
        )

    # -- secrets -----------------------------------------------------------------------------------

    def _new_secret(self, endpoint: WebhookEndpoint, now: datetime) -> WebhookEndpointSecret:
        secret_id = new_id(SECRET_PREFIX)
        value = generate_secret()
        aad = secret_associated_data(endpoint.tenant_id, endpoint.id, secret_id)
        return WebhookEndpointSecret(
            id=secret_id,
            tenant_id=endpoint.tenant_id,
            endpoint_id=endpoint.id,
            ciphertext=self.keyring.encrypt(value.encode(), aad),
            key_id=self.keyring.primary_kid,
            created_at=now,
            expires_at=None,
        )

    async def _secrets(self, session: AsyncSession, endpoint: WebhookEndpoint) -> list[WebhookEndpointSecret]:
        rows = await session.scalars(
            sa.select(WebhookEndpointSecret)
            .where(
                WebhookEndpointSecret.tenant_id == endpoint.tenant_id,
                WebhookEndpointSecret.endpoint_id == endpoint.id,
                _active(utcnow()),
            )
            .order_by(WebhookEndpointSecret.id.desc())
        )
        return list(rows.all())

    async def reveal_secret(
        self, session: AsyncSession, actor: Actor, endpoint_id: str
    ) -> RevealedEndpointSecret:
        """The newest active signing secret; writes an ``endpoint.secret_read`` audit row."""
        endpoint = await self.get(session, actor, endpoint_id)
        active = await self._secrets(session, endpoint)
        if not active:
            raise NotFound(f"endpoint {endpoint_id} has no active signing secret; rotate to create one")
        newest = active[0]
        value = _decrypt(self.keyring, newest)
        audit.record(
            session,
            actor,
            "endpoint.secret_read",
            "endpoint",
            endpoint.id,
            {"secretId": {"old": None, "new": newest.id}},
        )
        return RevealedEndpointSecret(endpoint.id, newest.id, value, newest.created_at)

    async def rotate_secret(
        self, session: AsyncSession, actor: Actor, endpoint_id: str
    ) -> RevealedEndpointSecret:
        """Add a new secret; every older active one keeps signing for :data:`ROTATION_OVERLAP`."""
        endpoint = await self.get(session, actor, endpoint_id, for_update=True)
        now = utcnow()
        overlap_end = now + ROTATION_OVERLAP
        previous = await self._secrets(session, endpoint)
        for old in previous:
            if old.expires_at is None or old.expires_at > overlap_end:
                old.expires_at = overlap_end
        secret = self._new_secret(endpoint, now)
        session.add(secret)
        endpoint.updated_at = now  # what signs changed: workers read the endpoint's secrets again
        await session.flush()
        value = _decrypt(self.keyring, secret)
        audit.record(
            session,
            actor,
            "endpoint.secret_rotated",
            "endpoint",
            endpoint.id,
            {
                "secretId": {"old": previous[0].id if previous else None, "new": secret.id},
                "previousExpiresAt": {"old": None, "new": overlap_end if previous else None},
            },
        )
        return RevealedEndpointSecret(
            endpoint.id, secret.id, value, secret.created_at, overlap_end if previous else None
        )

    # -- transformation preview --------------------------------------------------------------------

    async def test_transformation(
        self,
        session: AsyncSession,
        actor: Actor,
        endpoint_id: str,
        *,
        payload: dict[str, Any],
        event_type: str,
        metadata: dict[str, Any] | None = None,
        template: str | None = None,
    ) -> Any:
        """Run ``template`` (else the endpoint's transformation) on a sample event; no side effects.

        Raises ValidationFailed naming ``template`` (or ``transformation``) when there is nothing to
        run, the template does not compile, or applying it fails.
        """
        endpoint = await self.get(session, actor, endpoint_id)
        field_name = "template" if template is not None else "transformation"
        source = template if template is not None else endpoint.transformation
        if source is None:
            raise ValidationFailed(
                "the endpoint has no transformation; pass a template to try", field="template"
            )
        compiled = _compile(source, field_name)
        document = {"type": event_type, "payload": payload, "metadata": dict(metadata or {})}
        try:
            return await asyncio.to_thread(compiled.apply, document)
        except transform.TransformationError as exc:
            raise ValidationFailed(exc.detail, field=field_name) from exc
