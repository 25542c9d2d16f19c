"""Pydantic types of encrypted secrets (the guide's IntegrationSecret). Values go in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, Field, SecretStr

from interlink.core.enums import TokenType
from interlink.core.schemas import ApiModel, RequestModel

if TYPE_CHECKING:  # the SDK imports these types: keep SQLAlchemy out of its import path
    from interlink.core.models import IntegrationSecret
    from interlink.core.secrets import SecretRisk

MAX_VALUE_BYTES = 65_536

_VALUE_DOC = (
    f"The secret itself (at most {MAX_VALUE_BYTES} bytes as UTF-8). Stored encrypted; "
    "never returned by any endpoint."
)


class SecretCreate(RequestModel):
    """A new secret. ``ownerType``/``ownerId`` default to the tenant itself."""

    name: str = Field(min_length=1, max_length=200, description="Unique within the tenant.")
    value: SecretStr = Field(min_length=1, max_length=MAX_VALUE_BYTES, description=_VALUE_DOC)
    token_type: TokenType
    owner_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=r"^[a-z][a-z0-9_.-]*$",
        description="What the secret belongs to, e.g. `connection` or `endpoint`.",
    )
    owner_id: str | None = Field(default=None, min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    rotate_by: AwareDatetime | None = Field(
        default=None, description="When the value should be rotated; default now + the rotation period."
    )
    expires_at: AwareDatetime | None = Field(default=None, description="When the value stops working.")


class SecretRotate(RequestModel):
    """A replacement value. ``expiresAt`` is the new value's expiry (the old one's does not carry over)."""

    value: SecretStr = Field(min_length=1, max_length=MAX_VALUE_BYTES, description=_VALUE_DOC)
    rotate_by: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


class SecretRiskFactor(ApiModel):
    """One reason for a secret's risk score, with the points it adds."""

    code: str
    points: int


class SecretInfo(ApiModel):
    """A stored secret's metadata and rotation tracking. Never the value."""

    id: str
    tenant_id: str
    name: str
    token_type: TokenType
    owner_type: str
    owner_id: str
    key_id: str = Field(description="Id of the master key that encrypts the value.")
    version: int = Field(description="1 at creation, +1 on every rotation.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_rotated_at: datetime | None
    rotate_by: datetime | None
    expires_at: datetime | None
    last_accessed_at: datetime | None
    access_count: int
    risk_score: int = Field(ge=0, le=100, description="0–100, higher is worse; see riskFactors.")
    risk_factors: list[SecretRiskFactor]


def secret_info(secret: IntegrationSecret, risk: SecretRisk) -> SecretInfo:
    """The API view of a stored secret."""
    return SecretInfo(
        id=secret.id,
        tenant_id=secret.tenant_id,
        name=secret.name,
        token_type=secret.token_type,
        owner_type=secret.owner_type,
        owner_id=secret.owner_id,
        key_id=secret.key_id,
        version=secret.version,
        metadata=secret.meta,
        created_at=secret.created_at,
        updated_at=secret.updated_at,
        last_rotated_at=secret.last_rotated_at,
        rotate_by=secret.rotate_by,
        expires_at=secret.expires_at,
        last_accessed_at=secret.last_accessed_at,
        access_count=secret.access_count,
        risk_score=risk.score,
        risk_factors=[SecretRiskFactor(code=f.code, points=f.points) for f in risk.factors],
    )
