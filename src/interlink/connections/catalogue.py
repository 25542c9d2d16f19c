"""The provider catalogue: ``providers.yaml`` shipped in the package, plus the operator's file.

:func:`load_catalogue` reads the built-in file and, when ``INTERLINK_PROVIDERS_FILE`` names one,
the operator's file (same format). An operator entry whose ``key`` is already in the catalogue is
merged into it (mappings merge key by key; lists and plain values replace), so an override may be
as small as ``{key: stripe, status: DISABLED}``; a new key adds a provider.

Every entry is validated with :class:`~interlink.connections.schemas.IntegrationProviderExtended`.
Errors name the file, the line and the field (``providers.yaml:42: provider 'stripe':
oauth2.token_url: ...``): the YAML is composed into nodes first, which keep their position, and
each pydantic error location is walked down those nodes. A bad catalogue raises
:class:`CatalogueError`; ``interlink serve`` prints it and refuses to start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from interlink.connections.schemas import IntegrationProviderExtended
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus
from interlink.core.yaml_nodes import (
    merge_nodes,
    read_keyed_entries,
    validate_entry,
)

BUILTIN_FILE = Path(__file__).with_name("providers.yaml")
MAX_ERRORS = 20


class CatalogueError(Exception):
    """The catalogue cannot be used. ``problems`` are ``file:line: ...`` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_ERRORS]
        more = len(self.problems) - len(shown)
        text = "invalid provider catalogue:\n  " + "\n  ".join(shown)
        if more > 0:
            text += f"\n  ... and {more} more"
        super().__init__(text)


@dataclass(frozen=True)
class ProviderFilter:
    category: IntegrationCategory | None = None
    status: IntegrationProviderStatus | None = None
    auth_type: AuthenticationType | None = None
    q: str | None = None

    def matches(self, provider: IntegrationProviderExtended) -> bool:
        if self.category is not None and provider.category is not self.category:
            return False
        if self.status is not None and provider.status is not self.status:
            return False
        if self.auth_type is not None and self.auth_type not in provider.auth_types:
            return False
        return not self.q or self.q.lower() in provider.search_text()


@dataclass(frozen=True)
class ProviderPage:
    items: list[IntegrationProviderExtended]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class ProviderCatalogue:
    """The validated providers, by key (sorted), with where each came from."""

    providers: dict[str, IntegrationProviderExtended]
    sources: dict[str, str] = field(default_factory=dict)
    """``builtin``, ``custom`` or ``builtin+custom`` per key."""
    files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.providers)

    def get(self, key: str) -> IntegrationProviderExtended | None:
        return self.providers.get(key)

    def list(self, flt: ProviderFilter, *, limit: int, after: str | None = None) -> ProviderPage:
        """Providers matching ``flt`` in key order, ``limit`` after the key ``after``."""
        matching = [
            p for key, p in self.providers.items() if (after is None or key > after) and flt.matches(p)
        ]
        page = matching[:limit]
        has_more = len(matching) > limit
        return ProviderPage(page, has_more, page[-1].key if has_more and page else None)

    def spec_hash(self, key: str) -> str:
        return spec_hash(self.providers[key])


def spec_hash(provider: IntegrationProviderExtended) -> str:
    """SHA-256 of the provider's canonical JSON (what the provider table stores to detect changes)."""
    canonical = json.dumps(
        provider.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_catalogue(
    override: Path | str | None = None, *, builtin: Path | str = BUILTIN_FILE
) -> ProviderCatalogue:
    """The built-in catalogue merged with ``override``; raises :class:`CatalogueError`.

    Parsed files are cached by path, size and modification time (tests build many runtimes).
    """
    paths = [Path(builtin)] + ([Path(override)] if override else [])
    stamps = tuple((str(p), *_stamp(p)) for p in paths)
    return _load_cached(stamps)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_cached(stamps: tuple[tuple[str, int, int], ...]) -> ProviderCatalogue:
    return _load([Path(s[0]) for s in stamps])


def _load(paths: list[Path]) -> ProviderCatalogue:
    problems: list[str] = []
    merged: dict[str, yaml.Node] = {}
    sources: dict[str, str] = {}
    for index, path in enumerate(paths):
        origin = "builtin" if index == 0 else "custom"
        entries = read_keyed_entries(path, "provider", problems)
        for key, node in entries:
            if key in merged and index > 0:
                merged[key] = merge_nodes(merged[key], node)
                sources[key] = "builtin+custom" if sources[key] == "builtin" else sources[key]
            else:
                merged[key] = node
                sources[key] = origin
    providers: dict[str, IntegrationProviderExtended] = {}
    for key in sorted(merged):
        provider = validate_entry(IntegrationProviderExtended, key, merged[key], "provider", problems)
        if provider is not None:
            providers[key] = provider
    if problems:
        raise CatalogueError(problems)
    return ProviderCatalogue(providers, sources, tuple(str(p) for p in paths))
