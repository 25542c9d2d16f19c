"""Deleting old rows in bounded batches, the way every retention purge does it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.db import Database

PURGE_BATCH: Final = 5000

BatchHook = Callable[[AsyncSession, dict[str, int]], Awaitable[None]]
"""Called in the transaction of each purge batch with the rows it deletes per tenant."""


async def purge_in_batches(
    db: Database,
    model: Any,
    condition: sa.ColumnElement[bool],
    *,
    order_by: Any = None,
    on_batch: BatchHook | None = None,
    batch_size: int = PURGE_BATCH,
) -> dict[Any, int]:
    """Delete the rows of ``model`` (which has ``id`` and ``tenant_id``) matching ``condition``, at
    most ``batch_size`` per transaction, until none is left; rows deleted per tenant. ``on_batch``
    gets each batch's counts (tenants that are None left out) in the batch's own transaction, so a
    purge cut short has recorded exactly what it deleted."""
    counts: dict[Any, int] = {}
    while True:
        async with db.unit_of_work() as session:
            pick = sa.select(model.id, model.tenant_id).where(condition)
            if order_by is not None:
                pick = pick.order_by(order_by)
            rows = (await session.execute(pick.limit(batch_size))).all()
            if not rows:
                return counts
            batch: dict[Any, int] = {}
            for _id, tenant_id in rows:
                batch[tenant_id] = batch.get(tenant_id, 0) + 1
            await session.execute(
                sa.delete(model)
                .where(model.id.in_([r[0] for r in rows]))
                .execution_options(synchronize_session=False)
            )
            if on_batch is not None:
                await on_batch(session, {t: n for t, n in batch.items() if t is not None})
        for tenant_id, count in batch.items():
            counts[tenant_id] = counts.get(tenant_id, 0) + count
        if len(rows) < batch_size:
            return counts
