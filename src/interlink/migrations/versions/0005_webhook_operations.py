"""webhook operations: replays, tenant webhook config, endpoint health, batch attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # -- replays (webhooks/replay.py) --
    op.create_table(
        "webhook_replays",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("request", JSON_TYPE, nullable=False),
        sa.Column("delivery_ids", JSON_TYPE, nullable=False),
        sa.Column("created_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("skipped", JSON_TYPE, nullable=False),
        sa.Column("actor_key_id", sa.String(length=40), nullable=True),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "request_id", name="uq_webhook_replays_tenant_request"),
    )
    with op.batch_alter_table("webhook_replays", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_replays_tenant_id_id", ["tenant_id", "id"], unique=False)
    # A requeued delivery restarts its retry schedule from ``retry_base`` (its attempts so far).
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_base", sa.Integer(), server_default="0", nullable=False))
    # The retention purge finds a tenant's old events whose payload is still there.
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_events_retention", ["tenant_id", "payload_purged_at", "created_at"], unique=False
        )

    # -- batch delivery (webhooks/delivery.py) --
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))

    # -- endpoint lifecycle --
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))

    # -- endpoint health and tenant webhook config (webhooks/health.py, webhooks/config.py) --
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("circuit_state", sa.String(length=20), server_default="CLOSED", nullable=False)
        )
        batch_op.add_column(sa.Column("circuit_open_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("circuit_opens", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("circuit_window_start", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("circuit_window_failures", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "webhook_configs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("retry_schedule", JSON_TYPE, nullable=True),
        sa.Column("retention", sa.String(length=40), nullable=False),
        sa.Column("disable_after_seconds", sa.Integer(), nullable=False),
        sa.Column("circuit_breaker", JSON_TYPE, nullable=True),
        sa.Column("default_timeout_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", name="uq_webhook_configs_tenant"),
    )

    # -- delivery metrics (webhooks/metrics.py): one endpoint's attempts in a time window --
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_attempts_tenant_endpoint_started",
            ["tenant_id", "endpoint_id", "started_at"],
            unique=False,
        )
    # ... and the waiting deliveries (queue depth, oldest waiting) of a tenant or endpoint.
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_waiting",
            ["tenant_id", "endpoint_id", "created_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('PENDING', 'RETRYING')"),
            sqlite_where=sa.text("status IN ('PENDING', 'RETRYING')"),
        )

    # -- channels: SLACK hook urls encrypted (webhooks/channels) --
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_ciphertext", sa.Text(), nullable=True))

    # -- delivery engine (webhooks/delivery.py): queue indexes, rate limits, batches, deletes --
    queued = sa.text("status IN ('PENDING', 'RETRYING')")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_queued",
            ["priority", "next_attempt_at"],
            unique=False,
            postgresql_where=queued,
            sqlite_where=queued,
        )
        batch_op.create_index(
            "ix_webhook_deliveries_queued_endpoint",
            ["endpoint_id", "priority", "next_attempt_at"],
            unique=False,
            postgresql_where=queued,
            sqlite_where=queued,
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_next_at", sa.DateTime(timezone=True), nullable=True))
    # Endpoints deleted before ``deleted_at`` existed.
    op.execute(
        "UPDATE webhook_endpoints SET deleted_at = COALESCE(disabled_at, updated_at) "
        "WHERE disabled_reason = 'deleted' AND deleted_at IS NULL AND enabled = false"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("rate_next_at")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_queued_endpoint")
        batch_op.drop_index("ix_webhook_deliveries_queued")
        batch_op.drop_column("batch_id")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("target_ciphertext")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_waiting")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_tenant_endpoint_started")
    op.drop_table("webhook_configs")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("circuit_window_failures")
        batch_op.drop_column("circuit_window_start")
        batch_op.drop_column("circuit_opens")
        batch_op.drop_column("circuit_open_until")
        batch_op.drop_column("circuit_state")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_column("batch_id")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_retention")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("retry_base")
    with op.batch_alter_table("webhook_replays", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_replays_tenant_id_id")
    op.drop_table("webhook_replays")
