"""integrations: provider catalogue, outbound request log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # -- provider catalogue (connections/models.py, IntegrationProvider) --
    op.create_table(
        "integration_providers",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("auth_types", JSON_TYPE, nullable=False),
        sa.Column("spec", JSON_TYPE, nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_integration_providers")),
    )
    # -- end provider catalogue --
    # -- outbound request log (outbound/models.py, ExternalApiRequest) --
    op.create_table(
        "external_api_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("provider_key", sa.String(length=100), nullable=True),
        sa.Column("operation", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.String(length=1000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reused", sa.Boolean(), nullable=False),
        sa.Column("dns_ms", sa.Float(), nullable=True),
        sa.Column("connect_ms", sa.Float(), nullable=True),
        sa.Column("tls_ms", sa.Float(), nullable=True),
        sa.Column("first_byte_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_headers", JSON_TYPE, nullable=False),
        sa.Column("response_headers", JSON_TYPE, nullable=True),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("request_bytes", sa.Integer(), nullable=False),
        sa.Column("response_bytes", sa.Integer(), nullable=True),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("external_api_requests", schema=None) as batch_op:
        batch_op.create_index("ix_external_api_requests_tenant_id_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_external_api_requests_tenant_connection_id",
            ["tenant_id", "connection_id", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_external_api_requests_tenant_provider_id", ["tenant_id", "provider_key", "id"], unique=False
        )
    # -- end outbound request log --
    # -- connections (connections/models.py, IntegrationConnection) --
    op.create_table(
        "integration_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("provider_key", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("auth_type", sa.String(length=40), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("scopes", JSON_TYPE, nullable=False),
        sa.Column("secret_ids", JSON_TYPE, nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_integration_connections_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_connections")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_integration_connections_tenant_name"),
    )
    with op.batch_alter_table("integration_connections", schema=None) as batch_op:
        batch_op.create_index("ix_integration_connections_tenant_id_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_integration_connections_tenant_provider_id", ["tenant_id", "provider_key", "id"], unique=False
        )
        batch_op.create_index(
            "ix_integration_connections_token_expires_at", ["token_expires_at"], unique=False
        )
    # -- end connections --

    # -- inbound webhooks (webhooks/inbound/models.py) --
    op.create_table(
        "webhook_inbound_sources",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("scheme", sa.String(length=20), nullable=False),
        sa.Column("scheme_options", JSON_TYPE, nullable=False),
        sa.Column("tolerance_seconds", sa.Integer(), nullable=False),
        sa.Column("ip_allowlist", JSON_TYPE, nullable=False),
        sa.Column("max_body_bytes", sa.Integer(), nullable=False),
        sa.Column("event_type_config", JSON_TYPE, nullable=False),
        sa.Column("dedupe_config", JSON_TYPE, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_inbound_sources_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbound_sources")),
    )
    with op.batch_alter_table("webhook_inbound_sources", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_inbound_sources_tenant_id_id", ["tenant_id", "id"], unique=False)
    op.create_table(
        "webhook_inbound_secrets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["webhook_inbound_sources.id"],
            name=op.f("fk_webhook_inbound_secrets_source_id_webhook_inbound_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_inbound_secrets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbound_secrets")),
    )
    with op.batch_alter_table("webhook_inbound_secrets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_inbound_secrets_tenant_source", ["tenant_id", "source_id"], unique=False
        )
    op.create_table(
        "webhook_inbound_receipts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["webhook_inbound_sources.id"],
            name=op.f("fk_webhook_inbound_receipts_source_id_webhook_inbound_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_inbound_receipts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbound_receipts")),
        sa.UniqueConstraint("source_id", "dedupe_key", name="uq_webhook_inbound_receipts_source_key"),
    )
    with op.batch_alter_table("webhook_inbound_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_inbound_receipts_tenant_id_id", ["tenant_id", "id"], unique=False)
    # -- end inbound webhooks --


def downgrade() -> None:
    # -- inbound webhooks --
    with op.batch_alter_table("webhook_inbound_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbound_receipts_tenant_id_id")
    op.drop_table("webhook_inbound_receipts")
    with op.batch_alter_table("webhook_inbound_secrets", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbound_secrets_tenant_source")
    op.drop_table("webhook_inbound_secrets")
    with op.batch_alter_table("webhook_inbound_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbound_sources_tenant_id_id")
    op.drop_table("webhook_inbound_sources")
    # -- end inbound webhooks --
    # -- connections --
    with op.batch_alter_table("integration_connections", schema=None) as batch_op:
        batch_op.drop_index("ix_integration_connections_token_expires_at")
        batch_op.drop_index("ix_integration_connections_tenant_provider_id")
        batch_op.drop_index("ix_integration_connections_tenant_id_id")
    op.drop_table("integration_connections")
    # -- end connections --
    # -- outbound request log --
    with op.batch_alter_table("external_api_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_external_api_requests_tenant_provider_id")
        batch_op.drop_index("ix_external_api_requests_tenant_connection_id")
        batch_op.drop_index("ix_external_api_requests_tenant_id_id")
    op.drop_table("external_api_requests")
    # -- end outbound request log --
    # -- provider catalogue (dropped last: connections reference it) --
    op.drop_table("integration_providers")
    # -- end provider catalogue --
