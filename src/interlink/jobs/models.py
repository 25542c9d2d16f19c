"""Job tables: one row per unit of background work, and named cron schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from interlink.core.db import Base, JSONType, UTCDateTime


class Job(Base):
    """A unit of background work.

    ``status``: ``queued`` (waiting for ``run_at``), ``running`` (claimed; ``locked_by`` holds it
    until ``lease_expires_at``), ``succeeded``, ``dead`` (attempts exhausted or a permanent error),
    ``cancelled``. A running job whose lease expired is claimable again: a crashed worker loses
    nothing. ``tenant_id`` is empty for service-wide jobs (retention, schedules).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_claim", "status", "priority", "run_at"),
        sa.Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(40))
    kind: Mapped[str] = mapped_column(sa.String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16))
    priority: Mapped[int] = mapped_column(sa.SmallInteger(), default=5)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer(), default=8)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(sa.String(80))
    last_error: Mapped[str | None] = mapped_column(sa.Text())
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobSchedule(Base):
    """A named cron schedule that enqueues one job per tick, once across every worker."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(40))
    kind: Mapped[str] = mapped_column(sa.String(80))
    cron: Mapped[str] = mapped_column(sa.String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(sa.Boolean(), default=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
