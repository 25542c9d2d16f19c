"""The tenant's webhook configuration (the guide's ``WebhookConfig``): read, change, resolve.

Contracts
---------
* At most one ``webhook_configs`` row per tenant (unique ``tenant_id``). A tenant without a row
  uses :data:`BUILT_IN`; :func:`get` then answers the built-in values with ``created_at`` None.
* :func:`update` changes only the fields given, re-checks every value (422 naming the field, in
  camelCase), creates the row on the first change (fields not given take the built-in values) and
  writes a ``webhook_config.updated`` audit row with the diff in the same transaction. Concurrent
  first changes are safe: the loser of the insert race updates the winner's row.
* Precedence everywhere is *endpoint value > tenant configuration > built-in default*. The
  delivery engine reads the tenants' retry schedules with its claim query (a join on this
  table); endpoint creation takes ``retention`` and ``default_timeout_seconds`` from
  :func:`effective`; endpoint health reads :func:`effective_many` (one query per recorded batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.enums import RetentionPolicy
from interlink.core.errors import ValidationFailed
from interlink.core.ids import new_id
from interlink.webhooks.config_schemas import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_DISABLE_AFTER_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_WINDOW_SECONDS,
    MAX_COOLDOWN_SECONDS,
    MAX_DISABLE_AFTER_SECONDS,
    MAX_FAILURE_THRESHOLD,
    MAX_WINDOW_SECONDS,
    MIN_DISABLE_AFTER_SECONDS,
    CircuitBreakerConfig,
    WebhookConfig,
)
from interlink.webhooks.models import TenantWebhookConfig
from interlink.webhooks.schemas import (
    DEFAULT_RETENTION,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_RETRY_ENTRIES,
    MAX_RETRY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_RETRY_SECONDS,
    MIN_TIMEOUT_SECONDS,
)

CONFIG_PREFIX: Final = "whc"
FIELDS: Final = frozenset(
    {"retry_schedule", "retention", "disable_after_seconds", "circuit_breaker", "default_timeout_seconds"}
)


@dataclass(frozen=True)
class CircuitBreaker:
    """Open after ``failure_threshold`` failures in a row within ``window_seconds``; hold the
    endpoint back for ``cooldown_seconds`` (doubling after each failed probe)."""

    failure_threshold: int
    window_seconds: int
    cooldown_seconds: int


@dataclass(frozen=True)
class EffectiveConfig:
    """A tenant's configuration with the built-in defaults filled in."""

    tenant_id: str
    retry_schedule: tuple[int, ...] | None
    retention: RetentionPolicy
    disable_after_seconds: int
    circuit_breaker: CircuitBreaker | None
    default_timeout_seconds: float
    created_at: datetime | None = None
    updated_at: datetime | None = None


DEFAULT_CIRCUIT_BREAKER: Final = CircuitBreaker(
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_WINDOW_SECONDS, DEFAULT_COOLDOWN_SECONDS
)
BUILT_IN: Final = EffectiveConfig(
    tenant_id="",
    retry_schedule=None,
    retention=DEFAULT_RETENTION,
    disable_after_seconds=DEFAULT_DISABLE_AFTER_SECONDS,
    circuit_breaker=DEFAULT_CIRCUIT_BREAKER,
    default_timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
)


# -- checks ----------------------------------------------------------------------------------------


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{name} must be an integer", field=name)
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be at least {low} and at most {high}", field=name)
    return value


def check_retry_schedule(value: Any) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValidationFailed("retrySchedule must be a list of seconds", field="retrySchedule")
    if len(value) > MAX_RETRY_ENTRIES:
        raise ValidationFailed(
            f"retrySchedule may hold at most {MAX_RETRY_ENTRIES} entries", field="retrySchedule"
        )
    return [_integer(v, "retrySchedule", MIN_RETRY_SECONDS, MAX_RETRY_SECONDS) for v in value]


def check_circuit_breaker(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationFailed("circuitBreaker must be an object or null", field="circuitBreaker")
    names = {"failureThreshold", "windowSeconds", "cooldownSeconds"}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValidationFailed(f"circuitBreaker has an unknown field {unknown[0]!r}", field="circuitBreaker")
    missing = sorted(names - set(value))
    if missing:
        raise ValidationFailed(f"circuitBreaker needs {missing[0]}", field=f"circuitBreaker.{missing[0]}")
    return {
        "failureThreshold": _integer(
            value["failureThreshold"], "circuitBreaker.failureThreshold", 1, MAX_FAILURE_THRESHOLD
        ),
        "windowSeconds": _integer(
            value["windowSeconds"], "circuitBreaker.windowSeconds", 1, MAX_WINDOW_SECONDS
        ),
        "cooldownSeconds": _integer(
            value["cooldownSeconds"], "circuitBreaker.cooldownSeconds", 1, MAX_COOLDOWN_SECONDS
        ),
    }


def _check(name: str, value: Any) -> Any:
    if name == "retry_schedule":
        return check_retry_schedule(value)
    if name == "circuit_breaker":
        return check_circuit_breaker(value)
    if name == "retention":
        if value is None:
            raise ValidationFailed("retention cannot be null", field="retention")
        try:
            return RetentionPolicy(value)
        except ValueError as exc:
            choices = ", ".join(p.value for p in RetentionPolicy)
            raise ValidationFailed(f"retention must be one of {choices}", field="retention") from exc
    if name == "disable_after_seconds":
        if value is None:
            raise ValidationFailed("disableAfterSeconds cannot be null", field="disableAfterSeconds")
        return _integer(value, "disableAfterSeconds", MIN_DISABLE_AFTER_SECONDS, MAX_DISABLE_AFTER_SECONDS)
    # default_timeout_seconds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed("defaultTimeoutSeconds must be a number", field="defaultTimeoutSeconds")
    if not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        raise ValidationFailed(
            f"defaultTimeoutSeconds must be at least {MIN_TIMEOUT_SECONDS:g} and at most "
            f"{MAX_TIMEOUT_SECONDS:g}",
            field="defaultTimeoutSeconds",
        )
    return float(value)


# -- reads -----------------------------------------------------------------------------------------


def _effective(row: TenantWebhookConfig) -> EffectiveConfig:
    breaker = row.circuit_breaker
    return EffectiveConfig(
        tenant_id=row.tenant_id,
        retry_schedule=tuple(row.retry_schedule) if row.retry_schedule else None,
        retention=row.retention,
        disable_after_seconds=int(row.disable_after_seconds),
        circuit_breaker=CircuitBreaker(
            int(breaker["failureThreshold"]), int(breaker["windowSeconds"]), int(breaker["cooldownSeconds"])
        )
        if breaker
        else None,
        default_timeout_seconds=float(row.default_timeout_seconds),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _built_in(tenant_id: str) -> EffectiveConfig:
    return EffectiveConfig(
        tenant_id=tenant_id,
        retry_schedule=BUILT_IN.retry_schedule,
        retention=BUILT_IN.retention,
        disable_after_seconds=BUILT_IN.disable_after_seconds,
        circuit_breaker=BUILT_IN.circuit_breaker,
        default_timeout_seconds=BUILT_IN.default_timeout_seconds,
    )


async def effective(session: AsyncSession, tenant_id: str) -> EffectiveConfig:
    """The tenant's configuration, built-in values where it has none."""
    return (await effective_many(session, [tenant_id]))[tenant_id]


async def effective_many(session: AsyncSession, tenant_ids: Iterable[str]) -> dict[str, EffectiveConfig]:
    """:func:`effective` for several tenants in one query."""
    wanted = sorted(set(tenant_ids))
    out = {t: _built_in(t) for t in wanted}
    if wanted:
        rows = await session.scalars(
            sa.select(TenantWebhookConfig).where(TenantWebhookConfig.tenant_id.in_(wanted))
        )
        for row in rows.all():
            out[row.tenant_id] = _effective(row)
    return out


def info(config: EffectiveConfig) -> WebhookConfig:
    """The API view."""
    breaker = config.circuit_breaker
    return WebhookConfig(
        tenant_id=config.tenant_id,
        retry_schedule=list(config.retry_schedule) if config.retry_schedule else None,
        retention=config.retention,
        disable_after_seconds=config.disable_after_seconds,
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=breaker.failure_threshold,
            window_seconds=breaker.window_seconds,
            cooldown_seconds=breaker.cooldown_seconds,
        )
        if breaker
        else None,
        default_timeout_seconds=config.default_timeout_seconds,
        created_at=config.created_at,
        updated_at=config.updated_at,
    )


async def get(session: AsyncSession, actor: Actor) -> WebhookConfig:
    """The actor's tenant's configuration (built-in values until it is first changed)."""
    return info(await effective(session, actor.tenant_id))


# -- changes ---------------------------------------------------------------------------------------


def _snapshot(row: TenantWebhookConfig) -> dict[str, Any]:
    return {
        "retrySchedule": row.retry_schedule,
        "retention": row.retention,
        "disableAfterSeconds": row.disable_after_seconds,
        "circuitBreaker": row.circuit_breaker,
        "defaultTimeoutSeconds": row.default_timeout_seconds,
    }


def _breaker_dict(breaker: CircuitBreaker | None) -> dict[str, int] | None:
    if breaker is None:
        return None
    return {
        "failureThreshold": breaker.failure_threshold,
        "windowSeconds": breaker.window_seconds,
        "cooldownSeconds": breaker.cooldown_seconds,
    }


async def _locked_row(session: AsyncSession, tenant_id: str) -> TenantWebhookConfig | None:
    return await session.scalar(
        sa.select(TenantWebhookConfig)
        .where(TenantWebhookConfig.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def update(session: AsyncSession, actor: Actor, changes: Mapping[str, Any]) -> WebhookConfig:
    """Change the given fields (keys: :data:`FIELDS`); see the module contracts."""
    unknown = sorted(set(changes) - FIELDS)
    if unknown:
        raise ValidationFailed(f"cannot change {unknown[0]}", field=unknown[0])
    checked = {name: _check(name, value) for name, value in changes.items()}
    tenant_id = actor.tenant_id
    now = utcnow()
    row = await _locked_row(session, tenant_id)
    created = False
    if row is None:
        fresh = TenantWebhookConfig(
            id=new_id(CONFIG_PREFIX),
            tenant_id=tenant_id,
            retry_schedule=None,
            retention=BUILT_IN.retention,
            disable_after_seconds=BUILT_IN.disable_after_seconds,
            circuit_breaker=_breaker_dict(BUILT_IN.circuit_breaker),
            default_timeout_seconds=BUILT_IN.default_timeout_seconds,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(fresh)
            row, created = fresh, True
        except IntegrityError:  # created concurrently: change the winner's row
            row = await _locked_row(session, tenant_id)
            if row is None:
                raise
    before = {} if created else _snapshot(row)
    for name, value in checked.items():
        setattr(row, name, value)
    diff = audit.diff(before, _snapshot(row))
    if diff:
        row.updated_at = now
        audit.record(session, actor, "webhook_config.updated", "webhook_config", row.id, diff)
    await session.flush()
    return info(_effective(row))
