"""Inbound sources: configuration and signing secrets of the places providers post webhooks to.

Contracts
---------
* Every query is tenant-scoped by the actor, except :func:`load_for_receiver`, which the public
  receiver calls with nothing but the source id from the URL (source ids are unguessable, globally
  unique ids; the secrets it decrypts are bound to the row's tenant).
* Every mutation writes an audit row (``inbound_source.*``) in the same transaction; audit rows
  never hold a secret.
* ``connectionId``, when given, must name a connection of the same tenant (422 otherwise).
* ``scheme`` is one of :class:`~interlink.webhooks.inbound.schemes.Scheme`; ``schemeOptions`` are
  checked by :func:`~interlink.webhooks.inbound.schemes.check_options`.
* ``eventType`` says where the event type comes from: ``{"from": "body", "field": "type"}`` (a
  dotted path into the JSON body), ``{"from": "header", "field": "X-GitHub-Event"}`` or
  ``{"from": "fixed", "field": "billing.changed"}``, plus a ``prefix`` (``stripe.``). ``dedupe``
  names the provider's event id the same way (``body``/``header`` only), or is ``null`` for no
  deduplication. Both default per scheme (:data:`DEFAULTS`).
* **Signing secrets** are AES-256-GCM encrypted with the master keyring, bound by associated data
  to tenant, source and secret id. The provider usually issues the secret, so create and rotate
  take one (``secret``); without it a ``whsec_`` secret is generated. The value is returned only
  by create and rotate. Rotation lets every older active secret keep verifying for
  ``overlapSeconds`` (default 24 h, 0 = at once).
* **Delete** is soft: the source is hidden from every read (404), its secrets expire at once and
  the receiver answers 404.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.crypto import CryptoError, Keyring
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.ids import is_id, new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.webhooks.endpoints import SecretUnreadable
from interlink.webhooks.inbound import schemes
from interlink.webhooks.inbound.models import WebhookInboundSecret, WebhookInboundSource
from interlink.webhooks.inbound.schemes import Scheme

SOURCE_PREFIX: Final = "isrc"
SECRET_ID_PREFIX: Final = "isec"  # noqa: S105 - an id prefix, not a secret
ROTATION_OVERLAP: Final = timedelta(hours=24)
MAX_OVERLAP_SECONDS: Final = 7 * 24 * 3600
DEFAULT_TOLERANCE: Final = 300
MAX_TOLERANCE: Final = 24 * 3600
DEFAULT_MAX_BODY: Final = 256 * 1024
MIN_MAX_BODY: Final = 64
MAX_ALLOWLIST: Final = 100
MAX_SECRETS: Final = 10
FIELD_RE: Final = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")
_AAD_LABEL: Final = "inbound-source-secret"

DEFAULTS: Final[dict[Scheme, tuple[dict[str, str], dict[str, str] | None]]] = {
    Scheme.STANDARD: (
        {"from": "body", "field": "type", "prefix": ""},
        {"from": "header", "field": "webhook-id"},
    ),
    Scheme.STRIPE: ({"from": "body", "field": "type", "prefix": "stripe."}, {"from": "body", "field": "id"}),
    Scheme.GITHUB: (
        {"from": "header", "field": "X-GitHub-Event", "prefix": "github."},
        {"from": "header", "field": "X-GitHub-Delivery"},
    ),
    Scheme.SHOPIFY: (
        {"from": "header", "field": "X-Shopify-Topic", "prefix": "shopify."},
        {"from": "header", "field": "X-Shopify-Webhook-Id"},
    ),
    Scheme.HMAC: ({"from": "fixed", "field": "inbound.received", "prefix": ""}, None),
}


def secret_associated_data(tenant_id: str, source_id: str, secret_id: str) -> bytes:
    """AES-GCM associated data of a source secret: binds it to one tenant, source and row."""
    return json.dumps([_AAD_LABEL, tenant_id, source_id, secret_id], separators=(",", ":")).encode()


def _decrypt(keyring: Keyring, row: WebhookInboundSecret) -> str:
    try:
        aad = secret_associated_data(row.tenant_id, row.source_id, row.id)
        return keyring.decrypt(row.ciphertext, aad).decode("utf-8")
    except (CryptoError, ValueError) as exc:
        raise SecretUnreadable(
            f"signing secret {row.id} of inbound source {row.source_id} cannot be decrypted "
            f"(master key {row.key_id!r} missing or ciphertext altered)"
        ) from exc


# -- validation ------------------------------------------------------------------------------------


def _scheme(value: Any) -> Scheme:
    try:
        return Scheme(value)
    except ValueError:
        raise ValidationFailed(
            f"scheme must be one of {', '.join(s.value for s in Scheme)}", field="scheme"
        ) from None


def _options(scheme: Scheme, value: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        return schemes.check_options(scheme, value)
    except ValueError as exc:
        option, _, message = str(exc).partition(": ")
        raise ValidationFailed(message or str(exc), field=f"schemeOptions.{option}") from None


def _secret(scheme: Scheme, value: str | None, name: str = "secret") -> str:
    if value is None:
        return schemes.generate_secret(scheme)
    try:
        return schemes.check_secret(scheme, value)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=name) from None


def _allowlist(value: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for i, item in enumerate(value or []):
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ValidationFailed(
                f"{str(item)[:100]!r} is not an IP address or CIDR range", field=f"ipAllowlist.{i}"
            ) from None
    if len(out) > MAX_ALLOWLIST:
        raise ValidationFailed(f"at most {MAX_ALLOWLIST} ranges", field="ipAllowlist")
    return out


def _field_config(value: Mapping[str, Any], name: str, kinds: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(value) - {"from", "field", "prefix"})
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r}", field=f"{name}.{unknown[0]}")
    kind = value.get("from")
    if kind not in kinds:
        raise ValidationFailed(f"from must be one of {', '.join(kinds)}", field=f"{name}.from")
    target = value.get("field")
    if not isinstance(target, str) or not FIELD_RE.match(target):
        raise ValidationFailed("field must be 1-200 letters, digits or _ . : / -", field=f"{name}.field")
    out = {"from": kind, "field": target}
    if "prefix" in value:
        prefix = value.get("prefix") or ""
        if not isinstance(prefix, str) or len(prefix) > 50 or (prefix and not FIELD_RE.match(prefix)):
            raise ValidationFailed(
                "prefix must be at most 50 letters, digits or _ . : / -", field=f"{name}.prefix"
            )
        out["prefix"] = prefix
    return out


def _event_type_config(scheme: Scheme, value: Mapping[str, Any] | None) -> dict[str, str]:
    if value is None:
        return dict(DEFAULTS[scheme][0])
    out = _field_config(value, "eventType", ("body", "header", "fixed"))
    out.setdefault("prefix", "")
    return out


def _dedupe_config(scheme: Scheme, value: Mapping[str, Any] | None, given: bool) -> dict[str, str] | None:
    if not given:
        default = DEFAULTS[scheme][1]
        return dict(default) if default else None
    if value is None:
        return None
    if "prefix" in value:
        raise ValidationFailed("unknown key 'prefix'", field="dedupe.prefix")
    return _field_config(value, "dedupe", ("body", "header"))


def _int(value: int | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}", field=name)
    return value


def _text(value: str | None, name: str, max_length: int, *, required: bool = False) -> str | None:
    if value is None or not value.strip():
        if required:
            raise ValidationFailed(f"{name} is required", field=name)
        return None
    if len(value) > max_length or not value.isprintable():
        raise ValidationFailed(f"{name} must be at most {max_length} printable characters", field=name)
    return value.strip()


@dataclass(frozen=True)
class SourceSpec:
    name: str
    scheme: str
    connection_id: str | None = None
    description: str | None = None
    scheme_options: dict[str, Any] | None = None
    secret: str | None = field(default=None, repr=False)
    tolerance_seconds: int | None = None
    ip_allowlist: list[str] | None = None
    max_body_bytes: int | None = None
    event_type: dict[str, Any] | None = None
    dedupe: dict[str, Any] | None = None
    dedupe_given: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class RevealedSourceSecret:
    source_id: str
    secret_id: str
    value: str = field(repr=False)
    created_at: datetime
    previous_expires_at: datetime | None = None


def _snapshot(row: WebhookInboundSource) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "connectionId": row.connection_id,
        "scheme": row.scheme,
        "schemeOptions": row.scheme_options,
        "toleranceSeconds": row.tolerance_seconds,
        "ipAllowlist": row.ip_allowlist,
        "maxBodyBytes": row.max_body_bytes,
        "eventType": row.event_type_config,
        "dedupe": row.dedupe_config,
        "enabled": row.enabled,
    }


async def _check_connection(session: AsyncSession, tenant_id: str, connection_id: str | None) -> None:
    if connection_id is None:
        return
    from interlink.connections.models import IntegrationConnection

    if (
        not is_id(connection_id)
        or (
            await session.scalar(
                sa.select(IntegrationConnection.id).where(
                    IntegrationConnection.tenant_id == tenant_id, IntegrationConnection.id == connection_id
                )
            )
        )
        is None
    ):
        raise ValidationFailed(f"no connection {connection_id} in this tenant", field="connectionId")


def _active(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(WebhookInboundSecret.expires_at.is_(None), WebhookInboundSecret.expires_at > now)


class InboundSources:
    """CRUD of inbound sources and their secrets for one process (the master keyring)."""

    def __init__(self, keyring: Keyring, max_body_limit: int) -> None:
        self.keyring = keyring
        self.max_body_limit = max_body_limit

    def _new_secret(self, row: WebhookInboundSource, value: str, now: datetime) -> WebhookInboundSecret:
        secret_id = new_id(SECRET_ID_PREFIX)
        return WebhookInboundSecret(
            id=secret_id,
            tenant_id=row.tenant_id,
            source_id=row.id,
            ciphertext=self.keyring.encrypt(
                value.encode(), secret_associated_data(row.tenant_id, row.id, secret_id)
            ),
            key_id=self.keyring.primary_kid,
            created_at=now,
            expires_at=None,
        )

    async def get(
        self, session: AsyncSession, actor: Actor, source_id: str, *, for_update: bool = False
    ) -> WebhookInboundSource:
        """The tenant's live source; 404 for anything else (an id of another form is not looked up:
        PostgreSQL cannot compare a NUL character)."""
        if not is_id(source_id, SOURCE_PREFIX):
            raise NotFound(f"inbound source {source_id} not found")
        stmt = sa.select(WebhookInboundSource).where(
            WebhookInboundSource.tenant_id == actor.tenant_id,
            WebhookInboundSource.id == source_id,
            WebhookInboundSource.deleted_at.is_(None),
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = await session.scalar(stmt)
        if row is None:
            raise NotFound(f"inbound source {source_id} not found")
        return row

    async def list_sources(
        self, session: AsyncSession, actor: Actor, page: PageRequest, *, connection_id: str | None = None
    ) -> Page[WebhookInboundSource]:
        """The tenant's live sources, newest first; only those of ``connection_id`` when given."""
        stmt = sa.select(WebhookInboundSource).where(
            WebhookInboundSource.tenant_id == actor.tenant_id, WebhookInboundSource.deleted_at.is_(None)
        )
        if connection_id is not None:
            stmt = stmt.where(WebhookInboundSource.connection_id == connection_id)
        rows = (await session.scalars(paginate_query(stmt, WebhookInboundSource.id, page))).all()
        return make_page(rows, page, lambda r: r.id)

    async def secret_count(self, session: AsyncSession, source: WebhookInboundSource) -> int:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookInboundSecret)
            .where(
                WebhookInboundSecret.tenant_id == source.tenant_id,
                WebhookInboundSecret.source_id == source.id,
                _active(utcnow()),
            )
        )
        return int(count or 0)

    async def create(
        self, session: AsyncSession, actor: Actor, spec: SourceSpec
    ) -> tuple[WebhookInboundSource, RevealedSourceSecret]:
        scheme = _scheme(spec.scheme)
        name = _text(spec.name, "name", 200, required=True)
        assert name is not None
        options = _options(scheme, spec.scheme_options)
        secret = _secret(scheme, spec.secret)
        await _check_connection(session, actor.tenant_id, spec.connection_id)
        now = utcnow()
        row = WebhookInboundSource(
            id=new_id(SOURCE_PREFIX),
            tenant_id=actor.tenant_id,
            connection_id=spec.connection_id,
            name=name,
            description=_text(spec.description, "description", 1000),
            scheme=scheme.value,
            scheme_options=options,
            tolerance_seconds=_int(
                spec.tolerance_seconds, "toleranceSeconds", DEFAULT_TOLERANCE, 1, MAX_TOLERANCE
            ),
            ip_allowlist=_allowlist(spec.ip_allowlist),
            max_body_bytes=_int(
                spec.max_body_bytes,
                "maxBodyBytes",
                min(DEFAULT_MAX_BODY, self.max_body_limit),
                MIN_MAX_BODY,
                self.max_body_limit,
            ),
            event_type_config=_event_type_config(scheme, spec.event_type),
            dedupe_config=_dedupe_config(scheme, spec.dedupe, spec.dedupe_given),
            enabled=spec.enabled,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        stored = self._new_secret(row, secret, now)
        session.add(stored)
        await session.flush()
        audit.record(
            session,
            actor,
            "inbound_source.created",
            "inbound_source",
            row.id,
            {**audit.diff({}, _snapshot(row)), "secretId": {"old": None, "new": stored.id}},
        )
        return row, RevealedSourceSecret(row.id, stored.id, secret, now)

    async def update(
        self, session: AsyncSession, actor: Actor, source_id: str, changes: Mapping[str, Any]
    ) -> WebhookInboundSource:
        row = await self.get(session, actor, source_id, for_update=True)
        before = _snapshot(row)
        scheme = _scheme(changes.get("scheme", row.scheme))
        if "scheme" in changes and scheme.value != row.scheme:
            raise ValidationFailed(
                "the scheme of a source cannot change; create a new source", field="scheme"
            )
        for name, value in changes.items():
            if name == "name":
                row.name = _text(value, "name", 200, required=True) or row.name
            elif name == "description":
                row.description = _text(value, "description", 1000)
            elif name == "connection_id":
                await _check_connection(session, actor.tenant_id, value)
                row.connection_id = value
            elif name == "scheme_options":
                row.scheme_options = _options(scheme, value)
            elif name == "tolerance_seconds":
                row.tolerance_seconds = _int(value, "toleranceSeconds", DEFAULT_TOLERANCE, 1, MAX_TOLERANCE)
            elif name == "ip_allowlist":
                row.ip_allowlist = _allowlist(value)
            elif name == "max_body_bytes":
                row.max_body_bytes = _int(
                    value,
                    "maxBodyBytes",
                    min(DEFAULT_MAX_BODY, self.max_body_limit),
                    MIN_MAX_BODY,
                    self.max_body_limit,
                )
            elif name == "event_type":
                row.event_type_config = _event_type_config(scheme, value)
            elif name == "dedupe":
                row.dedupe_config = _dedupe_config(scheme, value, True)
            elif name == "enabled":
                if value is None:
                    raise ValidationFailed("enabled must be true or false", field="enabled")
                row.enabled = bool(value)
        row.updated_at = utcnow()
        changed = audit.diff(before, _snapshot(row))
        if changed:
            audit.record(session, actor, "inbound_source.updated", "inbound_source", row.id, changed)
        return row

    async def delete(self, session: AsyncSession, actor: Actor, source_id: str) -> None:
        row = await self.get(session, actor, source_id, for_update=True)
        now = utcnow()
        row.deleted_at = now
        row.enabled = False
        row.updated_at = now
        await session.execute(
            sa.update(WebhookInboundSecret)
            .where(
                WebhookInboundSecret.tenant_id == row.tenant_id,
                WebhookInboundSecret.source_id == row.id,
                _active(now),
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            actor,
            "inbound_source.deleted",
            "inbound_source",
            row.id,
            {"deletedAt": {"old": None, "new": now}},
        )

    async def rotate_secret(
        self,
        session: AsyncSession,
        actor: Actor,
        source_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: int | None = None,
    ) -> RevealedSourceSecret:
        """Add a secret (given, or generated); older active ones verify for ``overlap_seconds`` more."""
        row = await self.get(session, actor, source_id, for_update=True)
        value = _secret(Scheme(row.scheme), secret)
        overlap = timedelta(
            seconds=_int(
                overlap_seconds,
                "overlapSeconds",
                int(ROTATION_OVERLAP.total_seconds()),
                0,
                MAX_OVERLAP_SECONDS,
            )
        )
        now = utcnow()
        overlap_end = now + overlap
        previous = list(
            (
                await session.scalars(
                    sa.select(WebhookInboundSecret)
                    .where(
                        WebhookInboundSecret.tenant_id == row.tenant_id,
                        WebhookInboundSecret.source_id == row.id,
                        _active(now),
                    )
                    .order_by(WebhookInboundSecret.id.desc())
                )
            ).all()
        )
        if len(previous) >= MAX_SECRETS and overlap.total_seconds() > 0:
            raise ValidationFailed(
                f"a source holds at most {MAX_SECRETS} active secrets; rotate with overlapSeconds 0",
                field="overlapSeconds",
            )
        for old in previous:
            if old.expires_at is None or old.expires_at > overlap_end:
                old.expires_at = overlap_end
        stored = self._new_secret(row, value, now)
        session.add(stored)
        row.updated_at = now
        await session.flush()
        audit.record(
            session,
            actor,
            "inbound_source.secret_rotated",
            "inbound_source",
            row.id,
            {
                "secretId": {"old": previous[0].id if previous else None, "new": stored.id},
                "previousExpiresAt": {"old": None, "new": overlap_end if previous else None},
            },
        )
        return RevealedSourceSecret(row.id, stored.id, value, now, overlap_end if previous else None)


@dataclass(frozen=True)
class ReceiverSource:
    """What the receiver needs of a source: its settings and the plaintext secrets that verify now."""

    id: str
    tenant_id: str
    connection_id: str | None
    scheme: Scheme
    scheme_options: dict[str, Any]
    tolerance_seconds: int
    ip_allowlist: list[str]
    max_body_bytes: int
    event_type_config: dict[str, str]
    dedupe_config: dict[str, str] | None
    enabled: bool
    secrets: list[str] = field(repr=False)


async def load_for_receiver(session: AsyncSession, keyring: Keyring, source_id: str) -> ReceiverSource | None:
    """A live source by id with its active secrets (newest first), or None. Not tenant-scoped:
    the receiver only has the id from the URL."""
    if not is_id(source_id, SOURCE_PREFIX):
        return None
    row = await session.scalar(
        sa.select(WebhookInboundSource).where(
            WebhookInboundSource.id == source_id, WebhookInboundSource.deleted_at.is_(None)
        )
    )
    if row is None:
        return None
    stored = (
        await session.scalars(
            sa.select(WebhookInboundSecret)
            .where(
                WebhookInboundSecret.tenant_id == row.tenant_id,
                WebhookInboundSecret.source_id == row.id,
                _active(utcnow()),
            )
            .order_by(WebhookInboundSecret.id.desc())
        )
    ).all()
    return ReceiverSource(
        id=row.id,
        tenant_id=row.tenant_id,
        connection_id=row.connection_id,
        scheme=Scheme(row.scheme),
        scheme_options=dict(row.scheme_options or {}),
        tolerance_seconds=row.tolerance_seconds,
        ip_allowlist=list(row.ip_allowlist or []),
        max_body_bytes=row.max_body_bytes,
        event_type_config=dict(row.event_type_config or {}),
        dedupe_config=dict(row.dedupe_config) if row.dedupe_config else None,
        enabled=row.enabled,
        secrets=[_decrypt(keyring, s) for s in stored],
    )
