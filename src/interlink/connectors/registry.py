"""The connectors a process knows: Python classes and declarative specs, built in and the operator's.

Built in: :class:`~interlink.connectors.stripe.StripeConnector` and the specs of
``connectors.yaml`` in this package. ``INTERLINK_CONNECTORS_FILE`` (same YAML format) adds
connectors; an entry whose ``key`` is a built-in spec's is merged into it field by field (lists
and plain values replace), and one whose key is a Python connector's replaces that connector.

Every spec's ``providers`` must be keys of the provider catalogue. Problems are reported
together as :class:`~interlink.connectors.spec.ConnectorSpecError` (``file:line: connector
'key': field: message``). Loaded registries are cached by the files' paths, sizes and
modification times and by the catalogue's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from interlink.connectors.base import Connector, IntegrationConnectorInfo
from interlink.connectors.rest import DeclarativeRestConnector
from interlink.connectors.spec import ConnectorSpecError, load_specs
from interlink.connectors.stripe import StripeConnector

if TYPE_CHECKING:
    from interlink.connections.catalogue import ProviderCatalogue
    from interlink.runtime import Runtime

BUILTIN_FILE = Path(__file__).with_name("connectors.yaml")
PYTHON_CONNECTORS: dict[str, Callable[[], Connector]] = {"stripe": StripeConnector}
"""Python connectors by key (a factory each)."""


@dataclass(frozen=True)
class ConnectorRegistry:
    """Connectors by key (sorted)."""

    connectors: dict[str, Connector]
    files: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.connectors)

    def get(self, key: str) -> Connector | None:
        return self.connectors.get(key)

    def infos(self, provider: str | None = None) -> list[IntegrationConnectorInfo]:
        """Every connector's info in key order, or only those serving ``provider``."""
        infos = [c.info() for c in self.connectors.values()]
        return [i for i in infos if provider is None or provider in i.providers]

    def for_provider(self, provider: str) -> Connector | None:
        """The connector for a provider's connections: the operator's first, then by key."""
        serving = [c for c in self.connectors.values() if provider in c.info().providers]
        serving.sort(key=lambda c: (c.info().source != "custom", c.key))
        return serving[0] if serving else None


def load_registry(
    override: Path | str | None = None,
    catalogue: ProviderCatalogue | None = None,
    *,
    builtin: Path | str = BUILTIN_FILE,
) -> ConnectorRegistry:
    """The built-in connectors with ``override`` merged in; raises ConnectorSpecError."""
    paths = [Path(builtin)] + ([Path(override)] if override else [])
    stamps = tuple((str(p), *_stamp(p)) for p in paths)
    providers = tuple(sorted(catalogue.providers)) if catalogue is not None else None
    return _load_cached(stamps, providers)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_cached(
    stamps: tuple[tuple[str, int, int], ...], providers: tuple[str, ...] | None
) -> ConnectorRegistry:
    paths = [s[0] for s in stamps]
    specs, origin = load_specs(paths)
    problems: list[str] = []
    if providers is not None:
        known = set(providers)
        for key, spec in specs.items():
            for index, provider in enumerate(spec.providers):
                if provider not in known:
                    problems.append(
                        f"{origin[key]}: connector {key!r}: providers[{index}]: {provider!r} is not in the "
                        "provider catalogue"
                    )
    if problems:
        raise ConnectorSpecError(problems)
    custom = {key for key, path in origin.items() if path != paths[0]}
    connectors: dict[str, Connector] = {key: factory() for key, factory in PYTHON_CONNECTORS.items()}
    for key, spec in specs.items():
        connectors[key] = DeclarativeRestConnector(spec, source="custom" if key in custom else "builtin")
    return ConnectorRegistry(dict(sorted(connectors.items())), tuple(paths))


def registry_for(runtime: Runtime) -> ConnectorRegistry:
    """The process's registry, loaded and checked when the runtime was built (an invalid operator
    file stops the process from starting, like an invalid provider catalogue)."""
    return runtime.connectors
