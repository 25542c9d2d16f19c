"""Records through a connection: the connector serving the connection's provider, called with the
connection's client (credentials, base URL, rate limits, retries, request log).

Contracts:

* The connection is read tenant-scoped (another tenant's id is 404) by
  :meth:`~interlink.connections.client.ConnectionClients.open`; a connection that cannot be used
  (disabled, revoked, never authorized) is 409 before anything is sent.
* The connector is :meth:`ConnectorRegistry.for_provider` of the connection's provider; none is 404.
* Cursors handed to callers are the connector's cursor plus an HMAC-SHA256 tag over the
  connection id, the resource and the cursor (key derived from the key pepper), so a cursor
  works only for the connection and resource it came from, in every process; anything else is
  422 naming ``cursor``.
* Creates, updates and deletes write an audit row (``connection.record.created`` / ``updated`` /
  ``deleted``, resource type ``connection``) carrying the resource, the record id and the names
  of the fields sent, never their values.
* The fields of a create or update are checked before anything is sent to the provider
  (:func:`~interlink.core.jsoncheck.check_record_fields`): top-level names are non-empty, at most
  200 characters, without control characters; no string anywhere (names or values, at any depth)
  holds a NUL character and no number is NaN or Infinity. Anything else is 422 naming the field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from interlink.connections.client import ConnectionClient, ConnectionClients
from interlink.connectors.base import Connector, ProviderError, Record, RecordPage, check_record_id
from interlink.connectors.registry import ConnectorRegistry
from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.db import Database
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.jsoncheck import check_record_fields

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from interlink.runtime import Runtime

TAG_BYTES = 16


def cursor_key(pepper: bytes) -> bytes:
    """The key that tags cursors, derived from the key pepper (the same in every process)."""
    return hmac.new(pepper, b"interlink.connectors.cursor.v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class CursorSigner:
    key: bytes

    def _tag(self, connection_id: str, resource: str, inner: str) -> str:
        message = f"{connection_id}\n{resource}\n{inner}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()[:TAG_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, connection_id: str, resource: str, inner: str | None) -> str | None:
        if inner is None:
            return None
        return f"{inner}.{self._tag(connection_id, resource, inner)}"

    def verify(self, connection_id: str, resource: str, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        inner, _, tag = cursor.rpartition(".")
        if not inner or not hmac.compare_digest(tag, self._tag(connection_id, resource, inner)):
            raise ValidationFailed(
                "cursor is not a nextCursor of this connection and resource (pass it back unchanged)",
                field="cursor",
            )
        return inner


class ConnectorRecords:
    """Record operations through connections (see the module doc)."""

    def __init__(
        self, registry: ConnectorRegistry, clients: ConnectionClients, db: Database, signer: CursorSigner
    ) -> None:
        self.registry = registry
        self.clients = clients
        self.db = db
        self.signer = signer

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> ConnectorRecords:
        """The process's record service (its connectors, connection clients, database and cursor
        key), which the REST API and the dashboard both call."""
        signer = CursorSigner(cursor_key(runtime.local_secrets.key_pepper))
        return cls(runtime.connectors, runtime.connection_clients, runtime.db, signer)

    async def _open(self, actor: Actor, connection_id: str) -> tuple[ConnectionClient, Connector]:
        client = await self.clients.open(actor, connection_id)
        provider = client.connection.provider_key
        connector = self.registry.for_provider(provider)
        if connector is None:
            raise NotFound(f"no connector serves provider {provider!r} (see GET /v1/connectors)")
        return client, connector

    async def list(
        self,
        actor: Actor,
        connection_id: str,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        inner = self.signer.verify(connection_id, resource, cursor)
        client, connector = await self._open(actor, connection_id)
        page = await connector.list_records(client, resource, cursor=inner, since=since, limit=limit)
        if page.truncated:
            log.warning(
                "connector_listing_truncated",
                connection_id=connection_id,
                resource=resource,
                connector=connector.key,
            )
        return RecordPage(
            page.records, self.signer.sign(connection_id, resource, page.next_cursor), page.truncated
        )

    async def get(self, actor: Actor, connection_id: str, resource: str, record_id: str) -> Record:
        check_record_id(record_id)
        client, connector = await self._open(actor, connection_id)
        return await connector.get_record(client, resource, record_id)

    async def create(
        self, actor: Actor, connection_id: str, resource: str, data: Mapping[str, Any]
    ) -> Record:
        check_record_fields(data)
        client, connector = await self._open(actor, connection_id)
        try:
            record = await connector.create_record(client, resource, data)
        except ProviderError as exc:
            await self._taken_unread(exc, actor, "created", connection_id, connector, resource, None, data)
            raise
        await self._audit(actor, "created", connection_id, connector, resource, record.id, data)
        return record

    async def update(
        self, actor: Actor, connection_id: str, resource: str, record_id: str, data: Mapping[str, Any]
    ) -> Record:
        check_record_id(record_id)
        check_record_fields(data)
        client, connector = await self._open(actor, connection_id)
        try:
            record = await connector.update_record(client, resource, record_id, data)
        except ProviderError as exc:
            await self._taken_unread(
                exc, actor, "updated", connection_id, connector, resource, record_id, data
            )
            raise
        await self._audit(actor, "updated", connection_id, connector, resource, record_id, data)
        return record

    async def delete(self, actor: Actor, connection_id: str, resource: str, record_id: str) -> None:
        check_record_id(record_id)
        client, connector = await self._open(actor, connection_id)
        await connector.delete_record(client, resource, record_id)
        await self._audit(actor, "deleted", connection_id, connector, resource, record_id, None)

    async def _taken_unread(
        self,
        exc: ProviderError,
        actor: Actor,
        verb: str,
        connection_id: str,
        connector: Connector,
        resource: str,
        record_id: str | None,
        data: Mapping[str, Any],
    ) -> None:
        """When the provider took a create or update (2xx) but its answer had no usable record: the
        change most likely happened there, so the audit trail records it (a create without its
        id) and the problem says so, lest the caller simply send it again. Otherwise nothing."""
        status = exc.upstream_status
        if status is None or not 200 <= status < 300:
            return
        await self._audit(actor, verb, connection_id, connector, resource, record_id, data)
        exc.detail = f"{exc.detail}; the provider answered {status}, so the record was probably {verb}"
        if verb == "created":
            exc.detail += ": look it up before creating it again"
        exc.args = (exc.detail,)

    async def _audit(
        self,
        actor: Actor,
        verb: str,
        connection_id: str,
        connector: Connector,
        resource: str,
        record_id: str | None,
        data: Mapping[str, Any] | None,
    ) -> None:
        changes: dict[str, Any] = {"connector": connector.key, "resource": resource, "recordId": record_id}
        if data is not None:
            changes["fields"] = sorted(str(k) for k in data)
        async with self.db.unit_of_work() as session:
            audit.record(session, actor, f"connection.record.{verb}", "connection", connection_id, changes)
