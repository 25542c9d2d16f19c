"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import interlink.all_models  # noqa: F401
from interlink.core.db import Base
from interlink.core.migrate import head_revision


async def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = create_async_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as conn:

            def check(sync_conn: sa.Connection) -> tuple[str | None, list[object]]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
                return context.get_current_revision(), compare_metadata(context, Base.metadata)

            revision, differences = await conn.run_sync(check)
    finally:
        await engine.dispose()
    assert revision == head_revision()
    assert differences == [], f"models and migrations differ: {differences}"
