"""Pydantic types of inbound sources and the receiver's answer (camelCase; requests refuse
unknown fields). A signing secret appears only in :class:`InboundSourceSecret`, returned by create
and rotate."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from interlink.core.schemas import ApiModel, RequestModel

if TYPE_CHECKING:  # the SDK imports these types: keep SQLAlchemy out of its import path
    from interlink.webhooks.inbound.models import WebhookInboundSource

SchemeName = Literal["standard", "stripe", "github", "shopify", "hmac"]
FIELD_PATTERN = r"^[A-Za-z0-9_.:/-]+$"


class FieldMapping(RequestModel):
    """Where a value comes from: a dotted path in the JSON body, a header, or a fixed value."""

    from_: Literal["body", "header", "fixed"] = Field(alias="from")
    field: str = Field(min_length=1, max_length=200, pattern=FIELD_PATTERN)
    prefix: str | None = Field(default=None, max_length=50, description="Prepended to the value (`stripe.`).")


class SchemeOptions(RequestModel):
    """Options of the generic ``hmac`` scheme (other schemes take none)."""

    header: str | None = Field(default=None, max_length=100, description="The signature header.")
    algorithm: Literal["sha256", "sha1", "sha512"] | None = None
    encoding: Literal["hex", "base64"] | None = None
    prefix: str | None = Field(default=None, max_length=40, description="Stripped from the header value.")
    timestamp_header: str | None = Field(default=None, max_length=100)
    signed_content: Literal["body", "timestamp.body"] | None = None


def _options(value: SchemeOptions | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(by_alias=True, exclude_none=True)


def _mapping(value: FieldMapping | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(by_alias=True, exclude_none=True)


class InboundSourceCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    scheme: SchemeName
    connection_id: str | None = Field(default=None, max_length=64, description="A connection of the tenant.")
    description: str | None = Field(default=None, max_length=1000)
    scheme_options: SchemeOptions | None = None
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The signing secret the provider issued; a `whsec_` secret is generated when absent.",
    )
    tolerance_seconds: int | None = Field(default=None, ge=1, le=86_400)
    ip_allowlist: list[str] | None = Field(default=None, max_length=100, description="CIDR ranges.")
    max_body_bytes: int | None = Field(default=None, ge=64)
    event_type: FieldMapping | None = None
    dedupe: FieldMapping | None = Field(
        default=None, description="The provider's event id (`body` or `header`); `null` turns dedupe off."
    )
    enabled: bool = True

    def options_dict(self) -> dict[str, Any] | None:
        return _options(self.scheme_options)

    def event_type_dict(self) -> dict[str, Any] | None:
        return _mapping(self.event_type)

    def dedupe_dict(self) -> dict[str, Any] | None:
        return _mapping(self.dedupe)


class InboundSourceUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    connection_id: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    scheme_options: SchemeOptions | None = None
    tolerance_seconds: int | None = Field(default=None, ge=1, le=86_400)
    ip_allowlist: list[str] | None = Field(default=None, max_length=100)
    max_body_bytes: int | None = Field(default=None, ge=64)
    event_type: FieldMapping | None = None
    dedupe: FieldMapping | None = None
    enabled: bool | None = None

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name == "scheme_options":
                value = _options(value)
            elif name in ("event_type", "dedupe"):
                value = _mapping(value)
            out[name] = value
        return out


class InboundSecretRotate(RequestModel):
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The provider's new secret; generated when absent.",
    )
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86_400,
        description="How long older secrets keep verifying (default 86400).",
    )


class InboundSourceSecret(ApiModel):
    """A signing secret of a source, shown once (create and rotate)."""

    source_id: str
    secret_id: str
    secret: str = Field(description="Configure it at the provider (or it is the one the provider issued).")
    created_at: datetime
    previous_expires_at: datetime | None = None


class InboundSourceInfo(ApiModel):
    id: str
    name: str
    description: str | None = None
    connection_id: str | None = None
    scheme: str
    scheme_options: dict[str, Any]
    tolerance_seconds: int
    ip_allowlist: list[str]
    max_body_bytes: int
    event_type: dict[str, Any]
    dedupe: dict[str, Any] | None = None
    enabled: bool
    receive_path: str = Field(description="Where the provider posts: `/v1/inbound/{id}`.")
    created_at: datetime
    updated_at: datetime


class InboundSourceCreated(InboundSourceInfo):
    signing_secret: InboundSourceSecret


class InboundAccepted(ApiModel):
    """The receiver's answer: the event the request became (the first one for a repeat)."""

    event_id: str
    event_type: str
    duplicate: bool
    deliveries: int = Field(description="Deliveries created (0 for a duplicate).")


def source_info(row: WebhookInboundSource) -> InboundSourceInfo:
    return InboundSourceInfo(
        id=row.id,
        name=row.name,
        description=row.description,
        connection_id=row.connection_id,
        scheme=row.scheme,
        scheme_options=row.scheme_options or {},
        tolerance_seconds=row.tolerance_seconds,
        ip_allowlist=row.ip_allowlist or [],
        max_body_bytes=row.max_body_bytes,
        event_type=row.event_type_config or {},
        dedupe=row.dedupe_config,
        enabled=row.enabled,
        receive_path=f"/v1/inbound/{row.id}",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
