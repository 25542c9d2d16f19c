"""Encrypted secrets (IntegrationSecret): store, list, rotate, delete, reveal, re-encrypt.

Contracts:

* A value is encrypted with the keyring's primary master key (AES-256-GCM). The associated data
  binds the ciphertext to its tenant, owner type, owner id and secret id (see
  :func:`associated_data`), so a ciphertext copied to another row or tenant fails to decrypt.
* A value is never returned by the REST API, never logged and never written to the audit trail;
  only :meth:`SecretStore.reveal` (for other domains, inside the server) returns it. Each reveal
  bumps ``lastAccessedAt``/``accessCount`` and writes a ``secret.accessed`` audit row, so it must
  run in a writing unit of work.
* Every query is tenant-scoped, except the operator's master-key maintenance
  (:func:`reencrypt_all`, :func:`count_by_key_id`), which covers every tenant by design.

Risk score
----------
``riskScore`` is 0 to 100 (higher is worse): the sum of the points of every factor that applies,
capped at 100. ``riskFactors`` lists those factors with their points.

=====================  ======  ==================================================================
factor                 points  applies when
=====================  ======  ==================================================================
``expired``              40    ``expiresAt`` has passed: the value should no longer work
``unknownMasterKey``     40    encrypted under a master key this process does not have: unreadable
``rotationOverdue``      25    ``rotateBy`` has passed
``rotationLongOverdue``  15    ... by more than 30 days (on top of ``rotationOverdue``)
``stale``              10/20   180 / 365 days or more since the last rotation (or creation)
``neverRotated``         10    still version 1 and older than ``secret_rotation_days``
``oldMasterKey``         15    encrypted under a configured master key that is not the primary
``tokenType``           0-10   long-lived, broad credentials (OAUTH2_REFRESH, OAUTH2_CLIENT_SECRET,
                               API_KEY, BASIC) 10; BEARER, WEBHOOK_SECRET, GENERIC 5;
                               short-lived OAUTH2_ACCESS 0
=====================  ======  ==================================================================

Reading: 70 or more — act now (rotate or replace); 40 to 69 — plan a rotation; below 40 — fine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from interlink.core import audit
from interlink.core.actor import Actor, system_actor
from interlink.core.clock import utcnow
from interlink.core.crypto import CryptoError, Keyring
from interlink.core.enums import TokenType
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.ids import new_id
from interlink.core.models import IntegrationSecret
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.core.secret_schemas import MAX_VALUE_BYTES
from interlink.core.text import has_control_characters

if TYPE_CHECKING:
    from interlink.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_METADATA_BYTES = 16_384
DEFAULT_OWNER_TYPE = "tenant"
OWNER_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,39}$")
OWNER_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_AAD_LABEL = "interlink.secret.v1"

RISK_EXPIRED = 40
RISK_UNKNOWN_MASTER_KEY = 40
RISK_ROTATION_OVERDUE = 25
RISK_ROTATION_LONG_OVERDUE = 15
RISK_STALE = ((365, 20), (180, 10))
RISK_NEVER_ROTATED = 10
RISK_OLD_MASTER_KEY = 15
RISK_TOKEN_TYPE = {
    TokenType.OAUTH2_REFRESH: 10,
    TokenType.OAUTH2_CLIENT_SECRET: 10,
    TokenType.API_KEY: 10,
    TokenType.BASIC: 10,
    TokenType.BEARER: 5,
    TokenType.WEBHOOK_SECRET: 5,
    TokenType.GENERIC: 5,
    TokenType.OAUTH2_ACCESS: 0,
}
LONG_OVERDUE = timedelta(days=30)


class SecretUnreadable(InterlinkError):
    """A stored ciphertext cannot be decrypted: its master key is missing, or it was tampered with."""

    status = 500
    code = "secret-unreadable"
    title = "Secret unreadable"


class SecretExpired(Conflict):
    """The secret's ``expiresAt`` has passed; rotate it before use."""

    code = "secret-expired"
    title = "Secret expired"


def associated_data(tenant_id: str, owner_type: str, owner_id: str, secret_id: str) -> bytes:
    """The AES-GCM associated data of a secret: binds a ciphertext to exactly one row and tenant."""
    return json.dumps(
        [_AAD_LABEL, tenant_id, owner_type, owner_id, secret_id], separators=(",", ":")
    ).encode()


def _aad_of(secret: IntegrationSecret) -> bytes:
    return associated_data(secret.tenant_id, secret.owner_type, secret.owner_id, secret.id)


@dataclass(frozen=True)
class RiskFactor:
    code: str
    points: int


@dataclass(frozen=True)
class SecretRisk:
    """The documented risk score (0–100) and the factors that make it up."""

    score: int
    factors: list[RiskFactor]


def assess_risk(
    secret: IntegrationSecret, keyring: Keyring, rotation_days: int, now: datetime | None = None
) -> SecretRisk:
    """Score a secret as documented at the top of this module."""
    now = now or utcnow()
    factors: list[RiskFactor] = []
    if secret.expires_at is not None and secret.expires_at <= now:
        factors.append(RiskFactor("expired", RISK_EXPIRED))
    if secret.key_id not in keyring.key_ids:
        factors.append(RiskFactor("unknownMasterKey", RISK_UNKNOWN_MASTER_KEY))
    elif secret.key_id != keyring.primary_kid:
        factors.append(RiskFactor("oldMasterKey", RISK_OLD_MASTER_KEY))
    if secret.rotate_by is not None and secret.rotate_by <= now:
        factors.append(RiskFactor("rotationOverdue", RISK_ROTATION_OVERDUE))
        if now - secret.rotate_by > LONG_OVERDUE:
            factors.append(RiskFactor("rotationLongOverdue", RISK_ROTATION_LONG_OVERDUE))
    age = now - (secret.last_rotated_at or secret.created_at)
    for days, points in RISK_STALE:
        if age >= timedelta(days=days):
            factors.append(RiskFactor("stale", points))
            break
    if secret.version <= 1 and now - secret.created_at > timedelta(days=rotation_days):
        factors.append(RiskFactor("neverRotated", RISK_NEVER_ROTATED))
    type_points = RISK_TOKEN_TYPE.get(secret.token_type, 5)
    if type_points:
        factors.append(RiskFactor("tokenType", type_points))
    return SecretRisk(min(100, sum(f.points for f in factors)), factors)


@dataclass(frozen=True)
class SecretSpec:
    """A new secret. ``value`` is the plaintext; it is encrypted before it touches the session."""

    name: str
    value: str
    token_type: TokenType
    owner_type: str | None = None
    owner_id: str | None = None
    meta: dict[str, Any] | None = None
    rotate_by: datetime | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # the value must never reach a log line or a traceback
        return f"SecretSpec(name={self.name!r}, token_type={self.token_type.value!r}, value=[redacted])"


@dataclass(frozen=True)
class RevealedSecret:
    """A decrypted secret, for use inside the server only."""

    secret: IntegrationSecret
    value: str = field(repr=False)


def _snapshot(secret: IntegrationSecret) -> dict[str, Any]:
    return {
        "name": secret.name,
        "ownerType": secret.owner_type,
        "ownerId": secret.owner_id,
        "keyId": secret.key_id,
        "version": secret.version,
        "metadata": secret.meta,
        "lastRotatedAt": secret.last_rotated_at,
        "rotateBy": secret.rotate_by,
        "expiresAt": secret.expires_at,
    }


def _check_value(value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValidationFailed("value must be a non-empty string", field="value")
    raw = value.encode("utf-8")
    if len(raw) > MAX_VALUE_BYTES:
        raise ValidationFailed(f"value must be at most {MAX_VALUE_BYTES} bytes (UTF-8)", field="value")
    return raw


def _check_future(when: datetime | None, name: str, now: datetime) -> None:
    if when is None:
        return
    if when.tzinfo is None:
        raise ValidationFailed(f"{name} must carry a timezone", field=name)
    if when <= now:
        raise ValidationFailed(f"{name} must be in the future", field=name)


def _check_metadata(meta: dict[str, Any] | None) -> dict[str, Any]:
    meta = dict(meta or {})
    try:
        size = len(json.dumps(meta, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("metadata must be a JSON object", field="metadata") from exc
    if size > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON", field="metadata"
        )
    return meta


def _check_name(name: str) -> str:
    if not name or len(name) > 200 or name != name.strip() or has_control_characters(name):
        raise ValidationFailed(
            "name must be 1–200 characters without control characters or surrounding spaces",
            field="name",
        )
    return name


def _check_owner(actor: Actor, owner_type: str | None, owner_id: str | None) -> tuple[str, str]:
    if owner_type is None and owner_id is None:
        return DEFAULT_OWNER_TYPE, actor.tenant_id
    if owner_type is None:
        raise ValidationFailed("ownerType is required when ownerId is given", field="ownerType")
    if owner_id is None:
        raise ValidationFailed("ownerId is required when ownerType is given", field="ownerId")
    if not OWNER_TYPE_RE.match(owner_type):
        raise ValidationFailed(
            "ownerType must be lowercase letters, digits, '_', '.' or '-' (at most 40)", field="ownerType"
        )
    if not OWNER_ID_RE.match(owner_id):
        raise ValidationFailed(
            "ownerId must be letters, digits, '_', '.', ':' or '-' (at most 80)", field="ownerId"
        )
    return owner_type, owner_id


class SecretStore:
    """Secret operations for one keyring. Cheap to build; holds no state but its configuration."""

    def __init__(self, keyring: Keyring, rotation_days: int) -> None:
        self.keyring = keyring
        self.rotation_period = timedelta(days=rotation_days)
        self.rotation_days = rotation_days

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> SecretStore:
        return cls(runtime.keyring, runtime.settings.secret_rotation_days)

    def risk(self, secret: IntegrationSecret, now: datetime | None = None) -> SecretRisk:
        return assess_risk(secret, self.keyring, self.rotation_days, now)

    # -- queries ---------------------------------------------------------------------------

    @staticmethod
    def _visible(actor: Actor) -> sa.Select[IntegrationSecret]:
        return sa.select(IntegrationSecret).where(IntegrationSecret.tenant_id == actor.tenant_id)

    async def get(
        self, session: AsyncSession, actor: Actor, secret_id: str, *, for_update: bool = False
    ) -> IntegrationSecret:
        """A secret of the actor's tenant (metadata only), or NotFound."""
        stmt = self._visible(actor).where(IntegrationSecret.id == secret_id)
        if for_update:
            stmt = stmt.with_for_update()
        secret = await session.scalar(stmt)
        if secret is None:
            raise NotFound(f"secret {secret_id} not found")
        return secret

    async def list_secrets(
        self,
        session: AsyncSession,
        actor: Actor,
        page: PageRequest,
        *,
        owner_type: str | None = None,
        owner_id: str | None = None,
    ) -> Page[IntegrationSecret]:
        """Secrets of the actor's tenant, newest first, optionally of one owner type and/or id."""
        stmt = self._visible(actor)
        if owner_type is not None:
            stmt = stmt.where(IntegrationSecret.owner_type == owner_type)
        if owner_id is not None:
            stmt = stmt.where(IntegrationSecret.owner_id == owner_id)
        rows = (await session.scalars(paginate_query(stmt, IntegrationSecret.id, page))).all()
        return make_page(rows, page, lambda s: s.id)

    # -- mutations -------------------------------------------------------------------------

    async def create(self, session: AsyncSession, actor: Actor, spec: SecretSpec) -> IntegrationSecret:
        """Encrypt and store a new secret; its name must be unique within the tenant (else 409)."""
        name = _check_name(spec.name)
        raw = _check_value(spec.value)
        owner_type, owner_id = _check_owner(actor, spec.owner_type, spec.owner_id)
        meta = _check_metadata(spec.meta)
        try:
            token_type = TokenType(spec.token_type)
        except ValueError as exc:
            raise ValidationFailed(f"unknown tokenType {spec.token_type!r}", field="tokenType") from exc
        now = utcnow()
        _check_future(spec.rotate_by, "rotateBy", now)
        _check_future(spec.expires_at, "expiresAt", now)
        taken = await session.scalar(
            sa.select(IntegrationSecret.id).where(
                IntegrationSecret.tenant_id == actor.tenant_id, IntegrationSecret.name == name
            )
        )
        if taken is not None:
            raise Conflict(f"a secret named {name!r} exists already in this tenant")
        secret = IntegrationSecret(
            id=new_id("sec"),
            tenant_id=actor.tenant_id,
            name=name,
            owner_type=owner_type,
            owner_id=owner_id,
            token_type=token_type,
            version=1,
            meta=meta,
            created_at=now,
            updated_at=now,
            last_rotated_at=None,
            rotate_by=spec.rotate_by or now + self.rotation_period,
            expires_at=spec.expires_at,
            last_accessed_at=None,
            access_count=0,
        )
        secret.ciphertext = self.keyring.encrypt(raw, _aad_of(secret))
        secret.key_id = self.keyring.primary_kid
        session.add(secret)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"a secret named {name!r} exists already in this tenant") from exc
        changes = audit.diff({}, _snapshot(secret))
        changes["tokenType"] = {"old": None, "new": secret.token_type.value}
        audit.record(session, actor, "secret.created", "secret", secret.id, changes)
        return secret

    async def rotate(
        self,
        session: AsyncSession,
        actor: Actor,
        secret_id: str,
        value: str,
        *,
        rotate_by: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> IntegrationSecret:
        """Replace the value: version + 1, ``lastRotatedAt`` now, ``rotateBy`` as given or now +
        the rotation period, ``expiresAt`` as given (the old value's expiry does not carry over)."""
        raw = _check_value(value)
        now = utcnow()
        _check_future(rotate_by, "rotateBy", now)
        _check_future(expires_at, "expiresAt", now)
        secret = await self.get(session, actor, secret_id, for_update=True)
        before = _snapshot(secret)
        secret.ciphertext = self.keyring.encrypt(raw, _aad_of(secret))
        secret.key_id = self.keyring.primary_kid
        secret.version = secret.version + 1
        secret.last_rotated_at = now
        secret.rotate_by = rotate_by or now + self.rotation_period
        secret.expires_at = expires_at
        secret.updated_at = now
        audit.record(
            session, actor, "secret.rotated", "secret", secret.id, audit.diff(before, _snapshot(secret))
        )
        await session.flush()
        return secret

    async def delete(self, session: AsyncSession, actor: Actor, secret_id: str) -> None:
        """Delete a secret and its ciphertext."""
        secret = await self.get(session, actor, secret_id, for_update=True)
        changes = audit.diff(_snapshot(secret), {})
        changes["tokenType"] = {"old": secret.token_type.value, "new": None}
        await session.delete(secret)
        audit.record(session, actor, "secret.deleted", "secret", secret_id, changes)
        await session.flush()

    async def reveal(
        self,
        session: AsyncSession,
        actor: Actor,
        secret_id: str,
        *,
        purpose: str | None = None,
        allow_expired: bool = False,
    ) -> RevealedSecret:
        """Decrypt a secret of the actor's tenant for use inside the server (never over HTTP).

        Raises NotFound, SecretExpired (unless ``allow_expired``) or SecretUnreadable. Bumps
        ``lastAccessedAt`` and ``accessCount`` and writes a ``secret.accessed`` audit row.
        """
        secret = await self.get(session, actor, secret_id)
        now = utcnow()
        if not allow_expired and secret.expires_at is not None and secret.expires_at <= now:
            raise SecretExpired(f"secret {secret_id} expired at {secret.expires_at.isoformat()}")
        value = self.decrypt(secret)
        count = await session.scalar(
            sa.update(IntegrationSecret)
            .where(IntegrationSecret.id == secret.id, IntegrationSecret.tenant_id == actor.tenant_id)
            .values(access_count=IntegrationSecret.access_count + 1, last_accessed_at=now)
            .returning(IntegrationSecret.access_count)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(secret, "access_count", count)
        set_committed_value(secret, "last_accessed_at", now)
        changes: dict[str, Any] = {"accessCount": {"old": (count or 1) - 1, "new": count}}
        if purpose:
            changes["purpose"] = {"old": None, "new": purpose[:200]}
        audit.record(
            session,
            actor,
            "secret.accessed",
            "secret",
            secret.id,
            changes,
        )
        return RevealedSecret(secret, value)

    def decrypt(self, secret: IntegrationSecret) -> str:
        """The plaintext of a loaded row (no bookkeeping). Raises SecretUnreadable."""
        try:
            return self.keyring.decrypt(secret.ciphertext, _aad_of(secret)).decode("utf-8")
        except (CryptoError, ValueError) as exc:
            log.warning(
                "secret_unreadable",
                secret_id=secret.id,
                tenant_id=secret.tenant_id,
                master_key_id=secret.key_id,
                error=type(exc).__name__,
            )
            raise SecretUnreadable(
                f"secret {secret.id} cannot be decrypted (master key {secret.key_id!r} missing or "
                "ciphertext altered)"
            ) from exc


# -- master key maintenance ----------------------------------------------------------------


@dataclass
class ReencryptResult:
    """Outcome of :func:`reencrypt_all`. ``failed`` holds ``(secret id, master key id)`` pairs."""

    primary_key_id: str
    reencrypted: int = 0
    already_primary: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    remaining: int = 0

    @property
    def complete(self) -> bool:
        """True when every secret is now under the primary key."""
        return self.remaining == 0 and not self.failed


@dataclass(frozen=True)
class EncryptedColumn:
    """A column outside ``integration_secrets`` that holds keyring ciphertexts (e.g. webhook
    signing secrets), so master key rotation re-encrypts and counts it too.

    ``associated_data`` rebuilds a row's AES-GCM associated data from the selected row (which has
    the id, ``tenant_id`` and the ciphertext column, plus ``extra_columns``). ``key_id_column``,
    when the table has one, is kept in step with the ciphertext's key id."""

    label: str
    table: sa.Table
    ciphertext_column: str
    associated_data: Callable[[Any], bytes]
    resource_type: str
    key_id_column: str | None = None
    extra_columns: tuple[str, ...] = ()

    def _columns(self) -> list[sa.ColumnElement[Any]]:
        names = ["id", "tenant_id", self.ciphertext_column, *self.extra_columns]
        return [self.table.c[n] for n in dict.fromkeys(names)]

    def _ciphertext(self) -> sa.Column[Any]:
        return self.table.c[self.ciphertext_column]


async def count_by_key_id(session: AsyncSession, columns: Sequence[EncryptedColumn] = ()) -> dict[str, int]:
    """How many secrets (of every tenant) each master key id encrypts, in ``integration_secrets``
    and in ``columns``."""
    rows = await session.execute(
        sa.select(IntegrationSecret.key_id, sa.func.count()).group_by(IntegrationSecret.key_id)
    )
    counts = {str(kid): int(n) for kid, n in rows.all()}
    for column in columns:
        ciphertexts = await session.stream_scalars(
            sa.select(column._ciphertext()).where(column._ciphertext().is_not(None))
        )
        async for token in ciphertexts:
            try:
                kid = Keyring.key_id_of(str(token))
            except CryptoError:
                kid = "(unreadable)"
            counts[kid] = counts.get(kid, 0) + 1
    return counts


async def _reencrypt_batch(
    session: AsyncSession, keyring: Keyring, rows: Sequence[IntegrationSecret], result: ReencryptResult
) -> None:
    primary = keyring.primary_kid
    now = utcnow()
    for secret in rows:
        aad = _aad_of(secret)
        try:
            plaintext = keyring.decrypt(secret.ciphertext, aad)
        except (CryptoError, ValueError) as exc:
            log.warning(
                "secret_reencrypt_failed",
                secret_id=secret.id,
                tenant_id=secret.tenant_id,
                master_key_id=secret.key_id,
                error=type(exc).__name__,
            )
            result.failed.append((secret.id, secret.key_id))
            continue
        token = keyring.encrypt(plaintext, aad)
        # Compare-and-set on the old ciphertext: a rotation that won the race is never overwritten.
        outcome = await session.execute(
            sa.update(IntegrationSecret)
            .where(
                IntegrationSecret.id == secret.id,
                IntegrationSecret.tenant_id == secret.tenant_id,
                IntegrationSecret.ciphertext == secret.ciphertext,
            )
            .values(ciphertext=token, key_id=primary, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(outcome, "rowcount", 0) != 1:
            continue
        result.reencrypted += 1
        audit.record(
            session,
            system_actor(secret.tenant_id),
            "secret.reencrypted",
            "secret",
            secret.id,
            {"keyId": {"old": secret.key_id, "new": primary}},
        )


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _reencrypt_column(
    runtime: Runtime, column: EncryptedColumn, batch_size: int, result: ReencryptResult
) -> None:
    keyring = runtime.keyring
    primary = keyring.primary_kid
    ciphertext = column._ciphertext()
    ids = column.table.c["id"]
    cursor = ""
    while True:
        async with runtime.db.unit_of_work() as session:
            rows = (
                await session.execute(
                    sa.select(*column._columns())
                    .where(
                        ciphertext.is_not(None),
                        ciphertext.not_like(f"v1.{_like_literal(primary)}.%", escape="\\"),
                        ids > cursor,
                    )
                    .order_by(ids)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return
            cursor = rows[-1].id
            for row in rows:
                old = getattr(row, column.ciphertext_column)
                aad = column.associated_data(row)
                try:
                    token = keyring.encrypt(keyring.decrypt(old, aad), aad)
                    old_kid = Keyring.key_id_of(old)
                except (CryptoError, ValueError) as exc:
                    log.warning(
                        "secret_reencrypt_failed",
                        secret_id=row.id,
                        tenant_id=row.tenant_id,
                        kind=column.label,
                        error=type(exc).__name__,
                    )
                    kid = old.split(".")[1] if old.count(".") >= 2 else "(unreadable)"
                    result.failed.append((row.id, kid))
                    continue
                values: dict[str, Any] = {column.ciphertext_column: token}
                if column.key_id_column:
                    values[column.key_id_column] = primary
                outcome = await session.execute(
                    sa.update(column.table).where(ids == row.id, ciphertext == old).values(**values)
                )
                if getattr(outcome, "rowcount", 0) != 1:
                    continue  # changed meanwhile (rotated, deleted): the newer value wins
                result.reencrypted += 1
                audit.record(
                    session,
                    system_actor(row.tenant_id),
                    "secret.reencrypted",
                    column.resource_type,
                    row.id,
                    {"keyId": {"old": old_kid, "new": primary}, "kind": {"old": None, "new": column.label}},
                )
        result.batches += 1


async def reencrypt_all(
    runtime: Runtime,
    *,
    batch_size: int = 100,
    max_batches: int | None = None,
    columns: Sequence[EncryptedColumn] = (),
) -> ReencryptResult:
    """Re-encrypt every secret not under the primary master key: ``integration_secrets`` and
    every column in ``columns`` (see :data:`interlink.encrypted_columns.ENCRYPTED_COLUMNS`).

    Each batch is its own transaction, so an interrupted run keeps what it finished and a rerun
    resumes with what is left; secrets already under the primary key are never touched
    (idempotent). Secrets that cannot be decrypted are reported in ``failed`` and skipped.
    ``max_batches`` bounds the ``integration_secrets`` pass only (tests of resumption).
    """
    if batch_size < 1:
        raise ValidationFailed("batch size must be at least 1", field="batchSize")
    keyring = runtime.keyring
    primary = keyring.primary_kid
    result = ReencryptResult(primary_key_id=primary)
    cursor = ""
    while max_batches is None or result.batches < max_batches:
        async with runtime.db.unit_of_work() as session:
            rows = (
                await session.scalars(
                    sa.select(IntegrationSecret)
                    .where(IntegrationSecret.key_id != primary, IntegrationSecret.id > cursor)
                    .order_by(IntegrationSecret.id)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                break
            await _reencrypt_batch(session, keyring, rows, result)
            cursor = rows[-1].id
        result.batches += 1
        log.info(
            "secrets_reencrypt_batch",
            batch=result.batches,
            reencrypted=result.reencrypted,
            failed=len(result.failed),
            primary_key_id=primary,
        )
    if max_batches is None:
        for column in columns:
            await _reencrypt_column(runtime, column, batch_size, result)
    async with runtime.db.unit_of_work(write=False) as session:
        counts = await count_by_key_id(session, columns)
    result.already_primary = max(0, counts.get(primary, 0) - result.reencrypted)
    result.remaining = sum(n for kid, n in counts.items() if kid != primary)
    return result
