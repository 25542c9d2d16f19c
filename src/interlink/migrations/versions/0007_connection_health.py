"""connection health: health check history, health columns on connections

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # -- health check history (connections/models.py, IntegrationHealthCheck) --
    op.create_table(
        "integration_health_checks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("health_score", sa.Integer(), nullable=False),
        sa.Column("response_time_ms", sa.Float(), nullable=True),
        sa.Column("checks", JSON_TYPE, nullable=False),
        sa.Column("connectivity", JSON_TYPE, nullable=False),
        sa.Column("performance", JSON_TYPE, nullable=False),
        sa.Column("tls_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_integration_health_checks_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_health_checks")),
    )
    with op.batch_alter_table("integration_health_checks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_integration_health_checks_tenant_connection_checked",
            ["tenant_id", "connection_id", "checked_at"],
            unique=False,
        )
        batch_op.create_index("ix_integration_health_checks_checked_at", ["checked_at"], unique=False)

    # -- health columns on connections (connections/models.py, IntegrationConnection) --
    with op.batch_alter_table("integration_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("health_status", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("health_score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_health_check_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_health_check_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_integration_connections_next_health_check_at", ["next_health_check_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("integration_connections", schema=None) as batch_op:
        batch_op.drop_index("ix_integration_connections_next_health_check_at")
        batch_op.drop_column("next_health_check_at")
        batch_op.drop_column("last_health_check_at")
        batch_op.drop_column("health_score")
        batch_op.drop_column("health_status")
    with op.batch_alter_table("integration_health_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_integration_health_checks_checked_at")
        batch_op.drop_index("ix_integration_health_checks_tenant_connection_checked")
    op.drop_table("integration_health_checks")
