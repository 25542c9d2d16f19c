"""The event type registry: REST API, JSON Schema checks, subscription rule, audit, scopes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core.errors import ValidationFailed
from interlink.core.models import AuditEvent
from interlink.runtime import Runtime
from interlink.webhooks.endpoints import check_json_schema, validate_payload
from tests.conftest import auth

INVOICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "amount"],
    "properties": {"id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}},
}


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def _key(client: httpx.AsyncClient, admin: BootstrapResult, scopes: list[str]) -> str:
    made = await client.post("/v1/keys", json={"name": "scoped", "scopes": scopes}, headers=auth(admin.key))
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def _audit(runtime: Runtime, resource_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.resource_id == resource_id).order_by(AuditEvent.id)
        )
        return list(rows.all())


async def test_event_type_lifecycle(
    client: httpx.AsyncClient, admin_headers: dict[str, str], admin: BootstrapResult, runtime: Runtime
) -> None:
    made = await client.post(
        "/v1/event-types",
        json={"name": "invoice.paid", "description": "An invoice was paid", "schema": INVOICE_SCHEMA},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    info = made.json()
    assert info["id"].startswith("etp_")
    assert info["tenantId"] == admin.tenant_id
    assert info["schema"] == INVOICE_SCHEMA
    assert info["deprecated"] is False
    assert set(info) >= {"createdAt", "updatedAt", "description"}

    by_id = await client.get(f"/v1/event-types/{info['id']}", headers=admin_headers)
    by_name = await client.get("/v1/event-types/invoice.paid", headers=admin_headers)
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == info

    clash = await client.post("/v1/event-types", json={"name": "invoice.paid"}, headers=admin_headers)
    assert clash.status_code == 409
    assert "invoice.paid" in clash.json()["detail"]

    changed = await client.patch(
        f"/v1/event-types/{info['id']}",
        json={"description": "Paid in full", "schema": None},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "Paid in full"
    assert changed.json()["schema"] is None

    deprecated = await client.post(f"/v1/event-types/{info['id']}/deprecate", headers=admin_headers)
    assert deprecated.status_code == 200
    assert deprecated.json()["deprecated"] is True
    again = await client.post(f"/v1/event-types/{info['id']}/deprecate", headers=admin_headers)
    assert again.status_code == 200 and again.json()["deprecated"] is True

    await client.post("/v1/event-types", json={"name": "invoice.created"}, headers=admin_headers)
    everything = (await client.get("/v1/event-types", headers=admin_headers)).json()
    assert [t["name"] for t in everything["data"]] == ["invoice.created", "invoice.paid"]  # newest first
    current = (await client.get("/v1/event-types?deprecated=false", headers=admin_headers)).json()
    assert [t["name"] for t in current["data"]] == ["invoice.created"]
    first = (await client.get("/v1/event-types?limit=1", headers=admin_headers)).json()
    assert first["hasMore"] is True and first["nextCursor"]

    actions = [e.action for e in await _audit(runtime, info["id"])]
    assert actions == ["event_type.created", "event_type.updated", "event_type.deprecated"]  # idempotent
    created = (await _audit(runtime, info["id"]))[0]
    assert created.changes["name"] == {"old": None, "new": "invoice.paid"}
    assert created.actor_key_id == admin.key_id


async def test_names_and_schemas_are_validated(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body, field in [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": ".leading-dot"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "schema": {"type": "no-such-type"}}, "schema"),
        ({"name": "ok", "schema": {"type": "object", "properties": {"a": {"minimum": "zero"}}}}, "schema"),
        ({"name": "ok", "schema": {"$ref": "https://example.com/schema.json"}}, "schema"),
        ({"name": "ok", "schema": {"properties": {"a": {"$ref": "file:///etc/passwd"}}}}, "schema"),
        ({"name": "ok", "unknown": 1}, "unknown"),
    ]:
        response = await client.post("/v1/event-types", json=body, headers=admin_headers)
        assert field in _fields(response), (body, response.text)

    made = await client.post("/v1/event-types", json={"name": "order.created"}, headers=admin_headers)
    type_id = made.json()["id"]
    rename = await client.patch(
        f"/v1/event-types/{type_id}", json={"name": "order.made"}, headers=admin_headers
    )
    assert "name" in _fields(rename)
    bad_schema = await client.patch(
        f"/v1/event-types/{type_id}", json={"schema": {"type": 5}}, headers=admin_headers
    )
    assert "schema" in _fields(bad_schema)
    local_ref = await client.patch(
        f"/v1/event-types/{type_id}",
        json={"schema": {"$defs": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/id"}}}},
        headers=admin_headers,
    )
    assert local_ref.status_code == 200, local_ref.text
    missing = await client.get("/v1/event-types/etp_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=admin_headers)
    assert missing.status_code == 404


def test_payloads_are_checked_against_the_schema() -> None:
    assert check_json_schema(INVOICE_SCHEMA) == INVOICE_SCHEMA
    validate_payload(INVOICE_SCHEMA, {"id": "inv_1", "amount": 5})
    validate_payload(None, "anything")
    with pytest.raises(ValidationFailed) as missing:
        validate_payload(INVOICE_SCHEMA, {"id": "inv_1"})
    assert missing.value.extra["errors"][0]["field"] == "payload"
    assert "amount" in missing.value.detail
    with pytest.raises(ValidationFailed) as negative:
        validate_payload(INVOICE_SCHEMA, {"id": "inv_1", "amount": -1})
    assert negative.value.extra["errors"][0]["field"] == "payload.amount"
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["a"]}
    assert check_json_schema(draft7) == draft7
    with pytest.raises(ValidationFailed):
        validate_payload(draft7, {})


async def test_scopes_and_tenants(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    reader = await _key(client, admin, ["webhooks:read"])
    refused = await client.post("/v1/event-types", json={"name": "a.b"}, headers=auth(reader))
    assert refused.status_code == 403
    assert (await client.get("/v1/event-types", headers=auth(reader))).status_code == 200

    other = await client.post("/v1/tenants", json={"name": "Other"}, headers=admin_headers)
    other_id = other.json()["id"]
    mine = await client.post("/v1/event-types", json={"name": "shared.name"}, headers=admin_headers)
    theirs = await client.post(
        "/v1/event-types", json={"name": "shared.name"}, headers=auth(admin.key, other_id)
    )
    assert mine.status_code == theirs.status_code == 201  # unique per tenant, not globally
    assert theirs.json()["tenantId"] == other_id
    listed = (await client.get("/v1/event-types", headers=admin_headers)).json()["data"]
    assert [t["id"] for t in listed] == [mine.json()["id"]]


async def test_subscriptions_follow_the_registry_once_it_is_used(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    email = {"channel": "EMAIL", "channelConfig": {"to": ["ops@example.com"]}}
    free = await client.post(
        "/v1/endpoints", json={**email, "eventTypes": ["anything.goes"]}, headers=admin_headers
    )
    assert free.status_code == 201, free.text  # no registry yet: any well-formed name

    await client.post("/v1/event-types", json={"name": "invoice.paid"}, headers=admin_headers)
    unknown = await client.post(
        "/v1/endpoints", json={**email, "eventTypes": ["invoice.paid", "invoice.typo"]}, headers=admin_headers
    )
    assert _fields(unknown) == ["eventTypes"]
    assert "invoice.typo" in unknown.json()["detail"]
    known = await client.post(
        "/v1/endpoints",
        json={**email, "eventTypes": ["invoice.paid", "webhook.test", "endpoint.disabled", "invoice.paid"]},
        headers=admin_headers,
    )
    assert known.status_code == 201, known.text
    assert known.json()["eventTypes"] == ["invoice.paid", "webhook.test", "endpoint.disabled"]
    everything = await client.post("/v1/endpoints", json={**email, "eventTypes": []}, headers=admin_headers)
    assert everything.status_code == 201 and everything.json()["eventTypes"] == []
    retarget = await client.patch(
        f"/v1/endpoints/{free.json()['id']}", json={"eventTypes": ["anything.goes"]}, headers=admin_headers
    )
    assert _fields(retarget) == ["eventTypes"]
