"""The connectors a process knows: Python classes and declarative specs, built in and the operator's.

Built in: :class:`~interlink.connectors.stripe.StripeConnector` and the specs of
``connectors.yaml`` in this package. ``INTERLINK_CONNECTORS_FILE`` (same YAML format) adds
connectors; an entry whose ``key`` is a built-in spec's is merged into it field by field (lists
and plain values replace), and one whose key is a Python connector's replaces that connector.

Python connectors of other installed packages are found through the ``interlink.connectors``
entry point group (``acme = acme_connectors:AcmeConnector`` in the package's metadata): each entry
point names a :class:`~interlink.connectors.base.Connector` subclass (or any callable without
arguments that returns a connector). Such a connector replaces a built-in one of the same key and
is listed with ``source: custom``; a key that ``INTERLINK_CONNECTORS_FILE`` defines too is a problem
(say which one wins by removing the other).

Every connector's ``providers`` must be keys of the provider catalogue. Problems are reported
together as :class:`~interlink.connectors.spec.ConnectorSpecError` (``file:line: connector
'key': field: message``, or ``entry point 'name' (module:attr): message``). Loaded registries are
cached by the files' paths, sizes and modification times and by the catalogue's keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.connectors.base import (
    Connector,
    ConnectorTransport,
    IntegrationConnectorInfo,
    Record,
    RecordPage,
)
from interlink.connectors.rest import DeclarativeRestConnector
from interlink.connectors.spec import CONNECTOR_KEY_PATTERN, ConnectorSpecError, load_specs
from interlink.connectors.stripe import StripeConnector

if TYPE_CHECKING:
    from interlink.connections.catalogue import ProviderCatalogue
    from interlink.runtime import Runtime

BUILTIN_FILE = Path(__file__).with_name("connectors.yaml")
PYTHON_CONNECTORS: dict[str, Callable[[], Connector]] = {"stripe": StripeConnector}
"""Python connectors by key (a factory each)."""
ENTRY_POINT_GROUP = "interlink.connectors"
"""The entry point group other packages list their Python connectors in."""


class PluginConnector(Connector):
    """A connector from an entry point, listed as ``source: custom`` (it is the operator's)."""

    def __init__(self, inner: Connector, info: IntegrationConnectorInfo) -> None:
        self.inner = inner
        self.key = inner.key
        self._info = info.model_copy(update={"source": "custom"})

    def info(self) -> IntegrationConnectorInfo:
        return self._info

    async def list_records(
        self,
        transport: ConnectorTransport,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        self.require(resource, "list")
        return await self.inner.list_records(transport, resource, cursor=cursor, since=since, limit=limit)

    async def get_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> Record:
        self.require(resource, "get")
        return await self.inner.get_record(transport, resource, record_id)

    async def create_record(
        self, transport: ConnectorTransport, resource: str, data: Mapping[str, Any]
    ) -> Record:
        self.require(resource, "create")
        return await self.inner.create_record(transport, resource, data)

    async def update_record(
        self, transport: ConnectorTransport, resource: str, record_id: str, data: Mapping[str, Any]
    ) -> Record:
        self.require(resource, "update")
        return await self.inner.update_record(transport, resource, record_id, data)

    async def delete_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> None:
        self.require(resource, "delete")
        await self.inner.delete_record(transport, resource, record_id)


def plugin_connectors(known_providers: set[str] | None, problems: list[str]) -> dict[str, PluginConnector]:
    """The connectors of the ``interlink.connectors`` entry points, by key; problems (an entry
    point that does not load, does not make a :class:`Connector`, or names an unknown provider)
    are appended and the connector left out."""
    found: dict[str, PluginConnector] = {}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: (p.name, p.value)):
        where = f"entry point {point.name!r} ({point.value})"
        try:
            connector = point.load()()
            info = connector.info() if isinstance(connector, Connector) else None
        except Exception as exc:  # any failure of the package's code is reported, not raised
            problems.append(f"{where}: cannot load the connector: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(connector, Connector) or not isinstance(info, IntegrationConnectorInfo):
            problems.append(
                f"{where}: does not make an interlink.connectors.base.Connector whose info() is an "
                "IntegrationConnectorInfo"
            )
            continue
        key = getattr(connector, "key", None)
        if not isinstance(key, str) or not re.match(CONNECTOR_KEY_PATTERN, key) or info.key != key:
            problems.append(
                f"{where}: key {key!r} must match {CONNECTOR_KEY_PATTERN} and equal info().key ({info.key!r})"
            )
            continue
        if key in found:
            problems.append(f"{where}: connector key {key!r} is provided by two entry points")
            continue
        unknown = [p for p in info.providers if known_providers is not None and p not in known_providers]
        if unknown:
            problems.append(
                f"{where}: connector {key!r}: providers: {unknown[0]!r} is not in the provider catalogue"
            )
            continue
        found[key] = PluginConnector(connector, info)
    return found


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
    known = set(providers) if providers is not None else None
    if known is not None:
        for key, spec in specs.items():
            for index, provider in enumerate(spec.providers):
                if provider not in known:
                    problems.append(
                        f"{origin[key]}: connector {key!r}: providers[{index}]: {provider!r} is not in the "
                        "provider catalogue"
                    )
    custom = {key for key, path in origin.items() if path != paths[0]}
    plugins = plugin_connectors(known, problems)
    for key in sorted(set(plugins) & custom):
        problems.append(
            f"{origin[key]}: connector {key!r}: also provided by an {ENTRY_POINT_GROUP} entry point "
            "(remove one of them)"
        )
    if problems:
        raise ConnectorSpecError(problems)
    connectors: dict[str, Connector] = {key: factory() for key, factory in PYTHON_CONNECTORS.items()}
    for key, spec in specs.items():
        connectors[key] = DeclarativeRestConnector(spec, source="custom" if key in custom else "builtin")
    connectors.update(plugins)  # the operator's code replaces a built-in connector of the same key
    return ConnectorRegistry(dict(sorted(connectors.items())), tuple(paths))


def registry_for(runtime: Runtime) -> ConnectorRegistry:
    """The process's registry, loaded and checked when the runtime was built (an invalid operator
    file stops the process from starting, like an invalid provider catalogue)."""
    return runtime.connectors
