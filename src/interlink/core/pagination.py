"""Cursor pagination over time-sortable ids, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from interlink.core.errors import ValidationFailed
from interlink.core.ids import is_id

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageRequest:
    """``limit`` rows after the cursor ``after`` (an id from a previous page)."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if self.after is not None and not is_id(self.after):
            raise ValidationFailed("after must be an id from a previous page", field="after")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None


def paginate_query(stmt: sa.Select[Any], id_column: Any, page: PageRequest) -> sa.Select[Any]:
    """Apply the cursor and fetch one row more than asked, to learn whether there is more."""
    if page.after:
        stmt = stmt.where(id_column < page.after)
    return stmt.order_by(id_column.desc()).limit(page.limit + 1)


def make_page(rows: Sequence[T], page: PageRequest, id_of: Any) -> Page[T]:
    items = list(rows[: page.limit])
    has_more = len(rows) > page.limit
    return Page(items=items, has_more=has_more, next_cursor=id_of(items[-1]) if has_more and items else None)
