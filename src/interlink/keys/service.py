"""API key management (create, update, rotate, revoke) and verification.

Contracts:
* The plaintext key exists only in the return value of :meth:`KeyManager.create` and
  :meth:`KeyManager.rotate`; the database holds its HMAC-SHA256 under the server pepper.
* A key never grants more than its creator holds (no scope escalation); only platform keys, acting
  for their own tenant, create platform keys; tenant keys never see platform keys.
* Every change writes an audit row and a security event in the same transaction; the key row is
  :class:`~interlink.core.db.CachedInProcesses`, so the commit evicts it from every process's
  verification cache (see :mod:`interlink.core.invalidation`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.crypto import constant_time_equals, keyed_hash
from interlink.core.db import Database
from interlink.core.enums import ApiKeyScope, ApiKeyStatus, IntegrationEnvironment
from interlink.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from interlink.core.ids import new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.keys.cache import CachedKey, VerificationCache
from interlink.keys.format import display_prefix, generate_key, is_well_formed, parse_key
from interlink.keys.models import ApiKey
from interlink.keys.ratelimit import KeyRateLimiter, RateLimitDecision
from interlink.keys.security import SecurityContext, SecurityEventType, SecurityLog, add_event
from interlink.keys.usage import UsageRecorder

MAX_RATE_LIMIT_PERIOD = 86_400
VALID_SCOPES = frozenset(scope.value for scope in ApiKeyScope)


def effective_status(key: ApiKey, now: datetime | None = None) -> ApiKeyStatus:
    """The status as callers see it: expiry and ended grace periods show as EXPIRED."""
    now = now or utcnow()
    if key.status is ApiKeyStatus.REVOKED:
        return ApiKeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return ApiKeyStatus.EXPIRED
    if key.status is ApiKeyStatus.ROTATING and key.grace_until is not None and key.grace_until <= now:
        return ApiKeyStatus.EXPIRED
    return key.status


def parse_networks(values: Iterable[str], field: str = "allowedIps") -> list[str]:
    """Normalise CIDRs (``10.0.0.0/8``, ``2001:db8::/32``, or a bare address)."""
    out: list[str] = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError as exc:
            raise ValidationFailed(f"{value!r} is not an IP address or CIDR range", field=field) from exc
    return out


@dataclass(frozen=True)
class KeySpec:
    """What a caller may set on a key."""

    name: str
    scopes: list[str]
    kind: str = "tenant"
    environment: IntegrationEnvironment | None = None
    expires_at: datetime | None = None
    meta: dict[str, Any] | None = None
    allowed_ips: list[str] | None = None
    rate_limit: int | None = None
    rate_limit_period_seconds: int | None = None


@dataclass(frozen=True)
class KeyUpdate:
    """Fields to change; None leaves a field as it is. ``clear_*`` removes an optional value."""

    name: str | None = None
    scopes: list[str] | None = None
    expires_at: datetime | None = None
    clear_expiry: bool = False
    meta: dict[str, Any] | None = None
    allowed_ips: list[str] | None = None
    rate_limit: int | None = None
    rate_limit_period_seconds: int | None = None
    clear_rate_limit: bool = False


def _snapshot(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "scopes": sorted(key.scopes),
        "status": key.status.value,
        "expiresAt": key.expires_at,
        "graceUntil": key.grace_until,
        "metadata": key.meta,
        "allowedIps": key.allowed_ips,
        "rateLimit": key.rate_limit,
        "rateLimitPeriodSeconds": key.rate_limit_period_seconds,
        "revokedReason": key.revoked_reason,
    }


class KeyManager:
    """Key lifecycle for one process. Stateless apart from its configuration."""

    def __init__(
        self,
        pepper: bytes,
        *,
        default_environment: IntegrationEnvironment,
        default_grace_seconds: int,
        new_ip_window_days: int = 30,
    ) -> None:
        self.pepper = pepper
        self.default_environment = default_environment
        self.default_grace_seconds = default_grace_seconds
        self.new_ip_window = timedelta(days=new_ip_window_days)

    def hash(self, key: str) -> str:
        return keyed_hash(self.pepper, key)

    # -- queries ---------------------------------------------------------------------------

    def _visible(self, actor: Actor) -> sa.Select[ApiKey]:
        stmt = sa.select(ApiKey).where(ApiKey.tenant_id == actor.tenant_id)
        if not actor.is_platform:
            stmt = stmt.where(ApiKey.kind == "tenant")
        return stmt

    async def get(
        self, session: AsyncSession, actor: Actor, key_id: str, *, for_update: bool = False
    ) -> ApiKey:
        """A key the actor may see. ``for_update`` locks the row (PostgreSQL) so concurrent
        changes (say, a rotate racing a revoke) run one after the other instead of overwriting."""
        stmt = self._visible(actor).where(ApiKey.id == key_id)
        if for_update:
            stmt = stmt.with_for_update()
        key = await session.scalar(stmt)
        if key is None:
            raise NotFound(f"key {key_id} not found")
        return key

    async def list_keys(
        self, session: AsyncSession, actor: Actor, page: PageRequest, status: ApiKeyStatus | None = None
    ) -> Page[ApiKey]:
        stmt = self._visible(actor)
        now = utcnow()
        if status is ApiKeyStatus.REVOKED:
            stmt = stmt.where(ApiKey.status == ApiKeyStatus.REVOKED)
        elif status is ApiKeyStatus.EXPIRED:
            stmt = stmt.where(
                ApiKey.status != ApiKeyStatus.REVOKED,
                sa.or_(
                    ApiKey.expires_at <= now,
                    sa.and_(ApiKey.status == ApiKeyStatus.ROTATING, ApiKey.grace_until <= now),
                    ApiKey.status == ApiKeyStatus.EXPIRED,
                ),
            )
        elif status is not None:
            stmt = stmt.where(
                ApiKey.status == status,
                sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
            if status is ApiKeyStatus.ROTATING:
                stmt = stmt.where(ApiKey.grace_until > now)
        rows = (await session.scalars(paginate_query(stmt, ApiKey.id, page))).all()
        return make_page(rows, page, lambda k: k.id)

    # -- checks ----------------------------------------------------------------------------

    @staticmethod
    def _check_can_manage(actor: Actor, key: ApiKey, verb: str) -> None:
        """A key may change, rotate or revoke only keys whose every scope it holds itself.

        So a weaker key can neither loosen nor take over a stronger one, nor revoke it.
        """
        lacking = sorted(scope for scope in key.scopes if not actor.has_scope(scope))
        if lacking:
            raise Forbidden(f"you cannot {verb} a key with scope {lacking[0]!r}: your key does not hold it")

    def _check_scopes(self, actor: Actor, scopes: Iterable[str]) -> list[str]:
        result = sorted(set(scopes))
        if not result:
            raise ValidationFailed("a key needs at least one scope", field="scopes")
        for scope in result:
            if scope not in VALID_SCOPES:
                raise ValidationFailed(f"unknown scope {scope!r}", field="scopes")
            if not actor.has_scope(scope):
                raise Forbidden(f"you cannot grant scope {scope!r}: your key does not hold it")
        return result

    @staticmethod
    def _check_rate_limit(limit: int | None, period: int | None) -> tuple[int | None, int | None]:
        if limit is None:
            return None, None
        if limit < 1:
            raise ValidationFailed("rateLimit.limit must be at least 1", field="rateLimit.limit")
        period = period or 60
        if not 1 <= period <= MAX_RATE_LIMIT_PERIOD:
            raise ValidationFailed(
                f"rateLimit.periodSeconds must be between 1 and {MAX_RATE_LIMIT_PERIOD}",
                field="rateLimit.periodSeconds",
            )
        return limit, period

    @staticmethod
    def _check_expiry(expires_at: datetime | None) -> None:
        if expires_at is not None and expires_at <= utcnow():
            raise ValidationFailed("expiresAt must be in the future", field="expiresAt")

    def _security_context(self, actor: Actor) -> SecurityContext:
        return SecurityContext(actor.source_ip, actor.user_agent, actor.correlation_id)

    # -- mutations -------------------------------------------------------------------------

    async def create(self, session: AsyncSession, actor: Actor, spec: KeySpec) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the plaintext key (shown once)."""
        if spec.kind not in ("tenant", "platform"):
            raise ValidationFailed("kind must be 'tenant' or 'platform'", field="kind")
        if spec.kind == "platform" and (not actor.is_platform or actor.acts_for_other_tenant):
            raise Forbidden("only a platform key acting for its own tenant can create platform keys")
        scopes = self._check_scopes(actor, spec.scopes)
        self._check_expiry(spec.expires_at)
        limit, period = self._check_rate_limit(spec.rate_limit, spec.rate_limit_period_seconds)
        environment = spec.environment or self.default_environment
        plaintext = generate_key(environment)
        parsed = parse_key(plaintext)
        assert parsed is not None
        now = utcnow()
        key = ApiKey(
            id=new_id("key"),
            tenant_id=actor.tenant_id,
            kind=spec.kind,
            name=spec.name,
            prefix=parsed.prefix,
            key_hash=self.hash(plaintext),
            environment=environment,
            scopes=scopes,
            status=ApiKeyStatus.ACTIVE,
            expires_at=spec.expires_at,
            meta=spec.meta or {},
            allowed_ips=parse_networks(spec.allowed_ips or []),
            rate_limit=limit,
            rate_limit_period_seconds=period,
            usage_count=0,
            created_by_key_id=actor.key_id,
            created_at=now,
            updated_at=now,
        )
        session.add(key)
        await session.flush()
        audit.record(session, actor, "key.created", "api_key", key.id, audit.diff({}, _snapshot(key)))
        await add_event(
            session,
            SecurityEventType.KEY_CREATED,
            tenant_id=key.tenant_id,
            key_id=key.id,
            key_prefix=key.prefix,
            context=self._security_context(actor),
            details={"byKeyId": actor.key_id, "scopes": scopes, "kind": key.kind},
            new_ip_window=self.new_ip_window,
        )
        return key, plaintext

    async def update(self, session: AsyncSession, actor: Actor, key_id: str, change: KeyUpdate) -> ApiKey:
        key = await self.get(session, actor, key_id, for_update=True)
        self._check_can_manage(actor, key, "change")
        if effective_status(key) in (ApiKeyStatus.REVOKED, ApiKeyStatus.EXPIRED):
            raise Conflict(f"key {key_id} is {effective_status(key).value.lower()} and cannot be changed")
        before = _snapshot(key)
        if change.name is not None:
            key.name = change.name
        if change.scopes is not None:
            key.scopes = self._check_scopes(actor, change.scopes)
        if change.clear_expiry:
            key.expires_at = None
        elif change.expires_at is not None:
            self._check_expiry(change.expires_at)
            key.expires_at = change.expires_at
        if change.meta is not None:
            key.meta = change.meta
        if change.allowed_ips is not None:
            key.allowed_ips = parse_networks(change.allowed_ips)
        if change.clear_rate_limit:
            key.rate_limit, key.rate_limit_period_seconds = None, None
        elif change.rate_limit is not None:
            key.rate_limit, key.rate_limit_period_seconds = self._check_rate_limit(
                change.rate_limit, change.rate_limit_period_seconds or key.rate_limit_period_seconds
            )
        key.updated_at = utcnow()
        changes = audit.diff(before, _snapshot(key))
        audit.record(session, actor, "key.updated", "api_key", key.id, changes)
        if {"scopes", "allowedIps", "expiresAt"} & set(changes):
            await add_event(
                session,
                SecurityEventType.KEY_UPDATED,
                tenant_id=key.tenant_id,
                key_id=key.id,
                key_prefix=key.prefix,
                context=self._security_context(actor),
                details={"byKeyId": actor.key_id, "fields": sorted(changes)},
                new_ip_window=self.new_ip_window,
            )
        return key

    async def rotate(
        self, session: AsyncSession, actor: Actor, key_id: str, grace_seconds: int | None
    ) -> tuple[ApiKey, ApiKey, str]:
        """Replace a key. The old one keeps working for the grace period. Returns (old, new, plaintext)."""
        grace = self.default_grace_seconds if grace_seconds is None else grace_seconds
        if grace < 0 or grace > 30 * 86_400:
            raise ValidationFailed(
                "gracePeriodSeconds must be between 0 and 2592000", field="gracePeriodSeconds"
            )
        old = await self.get(session, actor, key_id, for_update=True)
        status = effective_status(old)
        if status is not ApiKeyStatus.ACTIVE:
            raise Conflict(f"key {key_id} is {status.value.lower()}; only active keys can be rotated")
        before = _snapshot(old)
        spec = KeySpec(
            name=old.name,
            scopes=list(old.scopes),
            kind=old.kind,
            environment=old.environment,
            expires_at=old.expires_at,
            meta=dict(old.meta),
            allowed_ips=list(old.allowed_ips),
            rate_limit=old.rate_limit,
            rate_limit_period_seconds=old.rate_limit_period_seconds,
        )
        # Rotation hands the caller a usable copy of the old key (no escalation through rotation).
        self._check_can_manage(actor, old, "rotate")
        new, plaintext = await self.create(session, actor, spec)
        now = utcnow()
        new.rotated_from_id = old.id
        old.status = ApiKeyStatus.ROTATING
        old.grace_until = now + timedelta(seconds=grace)
        old.rotated_to_id = new.id
        old.updated_at = now
        audit.record(
            session,
            actor,
            "key.rotated",
            "api_key",
            old.id,
            {**audit.diff(before, _snapshot(old)), "rotatedToId": {"old": None, "new": new.id}},
        )
        await add_event(
            session,
            SecurityEventType.KEY_ROTATED,
            tenant_id=old.tenant_id,
            key_id=old.id,
            key_prefix=old.prefix,
            context=self._security_context(actor),
            details={"byKeyId": actor.key_id, "newKeyId": new.id, "gracePeriodSeconds": grace},
            new_ip_window=self.new_ip_window,
        )
        return old, new, plaintext

    async def revoke(self, session: AsyncSession, actor: Actor, key_id: str, reason: str | None) -> ApiKey:
        """Revoke at once (idempotent: revoking a revoked key changes nothing)."""
        key = await self.get(session, actor, key_id, for_update=True)
        self._check_can_manage(actor, key, "revoke")
        if key.status is ApiKeyStatus.REVOKED:
            return key
        if key.id == actor.key_id:
            raise Conflict("a key cannot revoke itself; use another key")
        before = _snapshot(key)
        now = utcnow()
        key.status = ApiKeyStatus.REVOKED
        key.revoked_at = now
        key.revoked_reason = reason
        key.updated_at = now
        audit.record(session, actor, "key.revoked", "api_key", key.id, audit.diff(before, _snapshot(key)))
        await add_event(
            session,
            SecurityEventType.KEY_REVOKED,
            tenant_id=key.tenant_id,
            key_id=key.id,
            key_prefix=key.prefix,
            context=self._security_context(actor),
            reason="revoked",
            details={"byKeyId": actor.key_id, "reason": reason},
            new_ip_window=self.new_ip_window,
        )
        return key


class VerifyCode(StrEnum):
    """Outcome of a verification. Only ``valid`` grants access."""

    VALID = "valid"
    MALFORMED = "malformed"
    """Not an Interlink key, or its checksum is wrong."""
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    """Past expiresAt, or a rotated key past its grace period."""
    REVOKED = "revoked"
    IP_DENIED = "ip_denied"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_SCOPE = "insufficient_scope"


_FAILURE_EVENTS = {
    VerifyCode.MALFORMED: SecurityEventType.AUTH_FAILED,
    VerifyCode.UNKNOWN: SecurityEventType.AUTH_FAILED,
    VerifyCode.EXPIRED: SecurityEventType.EXPIRED_KEY_USED,
    VerifyCode.REVOKED: SecurityEventType.REVOKED_KEY_USED,
    VerifyCode.IP_DENIED: SecurityEventType.IP_DENIED,
    VerifyCode.RATE_LIMITED: SecurityEventType.RATE_LIMITED,
    VerifyCode.INSUFFICIENT_SCOPE: SecurityEventType.INSUFFICIENT_SCOPE,
}


@dataclass(slots=True)
class Verification:
    """The outcome of :meth:`KeyVerifier.verify` (not frozen: that would add 0.4 µs to every call)."""

    code: VerifyCode
    key: CachedKey | None = None
    rate_limit: RateLimitDecision | None = None
    missing_scopes: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.code is VerifyCode.VALID


def _to_cached(row: ApiKey) -> CachedKey:
    return CachedKey(
        id=row.id,
        tenant_id=row.tenant_id,
        kind=row.kind,
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        environment=row.environment.value,
        scopes=frozenset(row.scopes),
        status=row.status.value,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        grace_until=row.grace_until.timestamp() if row.grace_until else None,
        allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in row.allowed_ips),
        rate_limit=row.rate_limit,
        rate_limit_period_seconds=row.rate_limit_period_seconds,
        meta=dict(row.meta),
        expires_at_dt=row.expires_at,
    )


class KeyVerifier:
    """Verifies presented keys: offline checksum, keyed hash, cache, then the database.

    The hot path (a cached, valid key without a rate limit) touches no database and does no I/O.
    """

    def __init__(
        self,
        db: Database,
        pepper: bytes,
        cache: VerificationCache,
        limiter: KeyRateLimiter,
        usage: UsageRecorder,
        security: SecurityLog,
    ) -> None:
        self.db = db
        self.pepper = pepper
        self.cache = cache
        self.limiter = limiter
        self.usage = usage
        self.security = security

    async def _lookup(self, key_hash: str) -> CachedKey | None:
        entry = self.cache.get(key_hash)
        if entry is not None:
            return entry
        generation = self.cache.generation
        async with self.db.unit_of_work(write=False) as session:
            row = await session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == key_hash))
        if row is None:
            return None
        entry = _to_cached(row)
        self.cache.put(entry, generation)
        return entry

    async def verify(
        self,
        key: str,
        *,
        ip: str | None,
        context: SecurityContext,
        required_scopes: Collection[str] = (),
        restrict_tenant: str | None = None,
        now: float | None = None,
    ) -> Verification:
        """Check ``key`` and count one use of it. Failures are written as security events.

        Hot path (see ``bench/keys.py``): a cached key costs a format check, one HMAC and a dict
        lookup; the clock is read only for keys that can expire.
        """
        if not is_well_formed(key):
            return await self._fail(VerifyCode.MALFORMED, None, context)
        key_hash = keyed_hash(self.pepper, key)
        entry = self.cache.get(key_hash)
        if entry is None:
            entry = await self._lookup(key_hash)
        if entry is None or not constant_time_equals(entry.key_hash, key_hash):
            return await self._fail(VerifyCode.UNKNOWN, None, context, prefix=display_prefix(key))
        if restrict_tenant is not None and entry.tenant_id != restrict_tenant:
            return await self._fail(VerifyCode.UNKNOWN, None, context, prefix=display_prefix(key))
        status = entry.status
        if status == "REVOKED":
            return await self._fail(VerifyCode.REVOKED, entry, context)
        # Expired when past expiresAt, or a rotated key past its grace period: the earlier deadline.
        deadline = entry.expires_at
        if status == "ROTATING" and entry.grace_until is not None:
            deadline = entry.grace_until if deadline is None else min(deadline, entry.grace_until)
        if status == "EXPIRED" or (
            deadline is not None and deadline <= (now if now is not None else utcnow().timestamp())
        ):
            return await self._fail(VerifyCode.EXPIRED, entry, context)
        if entry.allowed_networks:
            try:
                address = ipaddress.ip_address(ip) if ip else None
            except ValueError:
                address = None
            if address is None or not any(address in net for net in entry.allowed_networks):
                return await self._fail(VerifyCode.IP_DENIED, entry, context)
        scopes = entry.scopes
        if required_scopes and "admin" not in scopes and not scopes.issuperset(required_scopes):
            missing = tuple(s for s in required_scopes if s not in scopes)
            return await self._fail(VerifyCode.INSUFFICIENT_SCOPE, entry, context, missing=missing)
        decision = None
        if entry.rate_limit is not None and entry.rate_limit_period_seconds is not None:
            decision = await self.limiter.hit(entry.id, entry.rate_limit, entry.rate_limit_period_seconds)
            if not decision.allowed:
                await self._fail(VerifyCode.RATE_LIMITED, entry, context)
                return Verification(VerifyCode.RATE_LIMITED, entry, decision)
        self.usage.record(entry.id, ip)
        return Verification(VerifyCode.VALID, entry, decision)

    async def _fail(
        self,
        code: VerifyCode,
        entry: CachedKey | None,
        context: SecurityContext,
        *,
        prefix: str | None = None,
        missing: tuple[str, ...] = (),
    ) -> Verification:
        details: dict[str, Any] = {"missingScopes": list(missing)} if missing else {}
        await self.security.failure(
            _FAILURE_EVENTS[code],
            tenant_id=entry.tenant_id if entry else None,
            key_id=entry.id if entry else None,
            key_prefix=entry.prefix if entry else prefix,
            context=context,
            reason=code.value,
            details=details,
        )
        return Verification(code, entry, None, missing)
