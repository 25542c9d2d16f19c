"""Shared pydantic types: camelCase models, pages, problems, tenants, audit events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from interlink.core.jsoncheck import find_unstorable

T = TypeVar("T")


class ApiModel(BaseModel):
    """Response model: camelCase JSON, built from attributes."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is outside the range of representable times") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware time, converted to UTC at validation (out-of-range times are a 422, not a 500)."""


def _refuse_nul(value: Any) -> Any:
    found = find_unstorable(value)
    if found is not None:
        place, problem = found
        raise ValueError(f"{place}: {problem}" if place else problem)
    return value


class RequestModel(BaseModel):
    """Request model: camelCase JSON; unknown fields are refused (named in the error).

    Text anywhere in a request (including nested metadata) may not contain NUL characters, which
    PostgreSQL cannot store, and numbers must be finite (JSON has no NaN or Infinity): both
    databases answer the same 422 naming the field.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        return _refuse_nul(value)


class PageOut(ApiModel, Generic[T]):
    """One page of a list, newest first. Pass ``nextCursor`` as ``after`` for the next page."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = None


class FieldError(ApiModel):
    field: str
    message: str


class Problem(ApiModel):
    """RFC 9457 problem details. ``type`` is stable: ``urn:interlink:problem:<code>``."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    reason: str | None = None
    errors: list[FieldError] | None = None
    retry_after: int | None = None


class TenantCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class TenantUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class TenantInfo(ApiModel):
    id: str
    name: str
    slug: str
    metadata: dict[str, Any] = Field(validation_alias="meta")
    created_at: datetime
    updated_at: datetime


class AuditEventInfo(ApiModel):
    id: str
    tenant_id: str
    occurred_at: datetime
    action: str
    resource_type: str
    resource_id: str | None
    actor_key_id: str | None
    actor_tenant_id: str | None
    actor_type: str
    correlation_id: str | None
    source_ip: str | None
    user_agent: str | None
    changes: dict[str, Any]
