"""The provider table: the catalogue mirrored into the database so connections can reference keys.

:func:`sync_providers` runs when a process starts. It reads the stored hashes first and writes
only what changed, so an unchanged catalogue costs one SELECT. Writes are race-safe with any
number of processes starting at once: rows are upserted (``INSERT ... ON CONFLICT (key) DO
UPDATE ... WHERE spec_hash differs``, in key order so concurrent writers lock rows in the same
order), and keys that left the catalogue are marked ``listed = false``, never deleted.

The table is service-owned reference data, not a tenant's: changes are logged
(``provider_catalogue_synced``), not written to a tenant's audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.connections.catalogue import ProviderCatalogue, spec_hash
from interlink.connections.models import IntegrationProvider
from interlink.core.clock import utcnow
from interlink.core.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SyncResult:
    written: int
    """Rows inserted or changed."""
    unlisted: int
    """Rows whose key left the catalogue."""


def _row(catalogue: ProviderCatalogue, key: str, now: datetime) -> dict[str, Any]:
    provider = catalogue.providers[key]
    return {
        "key": key,
        "name": provider.name,
        "category": provider.category,
        "status": provider.status,
        "auth_types": [t.value for t in provider.auth_types],
        "spec": provider.model_dump(mode="json", by_alias=True),
        "spec_hash": spec_hash(provider),
        "source": catalogue.sources.get(key, "builtin"),
        "listed": True,
        "created_at": now,
        "updated_at": now,
    }


async def sync_providers(db: Database, catalogue: ProviderCatalogue) -> SyncResult:
    """Make ``integration_providers`` match ``catalogue`` (see the module docstring)."""
    async with db.unit_of_work(write=False) as session:
        stored = {
            key: (digest, source, listed)
            for key, digest, source, listed in (
                await session.execute(
                    sa.select(
                        IntegrationProvider.key,
                        IntegrationProvider.spec_hash,
                        IntegrationProvider.source,
                        IntegrationProvider.listed,
                    )
                )
            ).all()
        }
    now = utcnow()
    changed = [
        key
        for key in catalogue.providers
        if stored.get(key) != (catalogue.spec_hash(key), catalogue.sources.get(key, "builtin"), True)
    ]
    gone = sorted(key for key, (_, _, listed) in stored.items() if listed and key not in catalogue.providers)
    if not changed and not gone:
        return SyncResult(0, 0)
    async with db.unit_of_work() as session:
        written = await _upsert(session, [_row(catalogue, key, now) for key in sorted(changed)])
        unlisted = 0
        if gone:
            result = await session.execute(
                sa.update(IntegrationProvider)
                .where(IntegrationProvider.key.in_(gone), IntegrationProvider.listed.is_(True))
                .values(listed=False, updated_at=now)
            )
            unlisted = int(getattr(result, "rowcount", 0) or 0)
    log.info("provider_catalogue_synced", written=written, unlisted=unlisted, providers=len(catalogue))
    return SyncResult(written, unlisted)


async def _upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(IntegrationProvider).values(rows)
    excluded = stmt.excluded
    table = IntegrationProvider.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "name": excluded.name,
            "category": excluded.category,
            "status": excluded.status,
            "auth_types": excluded.auth_types,
            "spec": excluded.spec,
            "spec_hash": excluded.spec_hash,
            "source": excluded.source,
            "listed": excluded.listed,
            "updated_at": excluded.updated_at,
        },
        where=sa.or_(
            table.c.spec_hash != excluded.spec_hash,
            table.c.source != excluded.source,
            table.c.listed.is_(False),
        ),
    )
    # RETURNING counts what was really written (rowcount is not reliable for this statement).
    return len((await session.execute(stmt.returning(table.c.key))).all())


async def provider_keys(session: AsyncSession, *, listed_only: bool = True) -> list[str]:
    """Keys in the provider table (what connections may reference)."""
    stmt = sa.select(IntegrationProvider.key).order_by(IntegrationProvider.key)
    if listed_only:
        stmt = stmt.where(IntegrationProvider.listed.is_(True))
    return list((await session.execute(stmt)).scalars())
