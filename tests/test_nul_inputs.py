"""NUL characters (which PostgreSQL stores in no text or JSON), non-finite numbers and arrays and
objects nested beyond ``MAX_JSON_DEPTH`` in what the REST API takes as free-form JSON: a 422
problem naming the field on both databases, never a 500, and nothing written or sent first.

Every JSON request body of the OpenAPI document gets, in each of its top-level members in turn, a
string holding NUL and an object whose key holds NUL; the routes that take raw JSON objects (records
through a connection, the inbound receiver) are checked end to end."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from interlink.core import clock
from interlink.core.errors import ValidationFailed
from interlink.core.jsoncheck import (
    MAX_JSON_DEPTH,
    check_field_names,
    check_json,
    check_record_fields,
    deeper_than,
    shown,
)
from interlink.runtime import Runtime
from interlink.webhooks.models import WebhookEvent
from tests.api_helpers import assert_problem

NUL = "\u0000"
FAKE_IDS = {"tenant_id": "ten_missing", "key_id": "key_missing", "connection_id": "conn_missing"}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return _resolve(spec, spec["components"]["schemas"][name])
    for choice in schema.get("anyOf", []):
        if "$ref" in choice or "properties" in choice:
            return _resolve(spec, choice)
    return schema


def _body_members(app: FastAPI) -> list[tuple[str, str, str]]:
    """``(method, path, member)`` for each top-level member of each JSON request body model."""
    spec = app.openapi()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if not schema:
                continue
            for member in _resolve(spec, schema).get("properties", {}):
                found.append((method.upper(), path, member))
    return found


async def test_every_request_model_refuses_nul(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    members = _body_members(app)
    assert len(members) > 50
    routes = {(m, p) for m, p, _ in members}
    for path in ("/v1/events", "/v1/connections", "/v1/endpoints", "/v1/inbound-sources", "/v1/tenants"):
        assert ("POST", path) in routes
    headers = {**admin_headers, "Content-Type": "application/json"}
    for method, path, member in members:
        url = path
        for name in ("tenant_id", "key_id", "connection_id", "source_id", "secret_id"):
            url = url.replace("{" + name + "}", FAKE_IDS.get(name, f"x_{name}"))
        url = url.replace("{", "x_").replace("}", "")
        for value in (f"x{NUL}", {f"a{NUL}": "b"}, {"a": [f"b{NUL}"]}):
            body = json.dumps({member: value})
            response = await client.request(method, url, content=body, headers=headers)
            assert response.status_code == 422, (method, path, member, value, response.text)
            problem = response.json()
            assert problem["type"] == "urn:interlink:problem:validation-error"
            named = [e["field"] for e in problem["errors"] if "NUL" in e["message"]]
            assert any(member in f for f in named), (method, path, member, problem)


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for n in range(levels):
        value = {"k": value} if (levels - n) % 2 else [value]  # an object outermost
    return value


async def test_every_request_model_refuses_json_nested_too_deep(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    too_deep = _nested(MAX_JSON_DEPTH + 1)
    for method, path, member in _body_members(app):
        url = path
        for name in ("tenant_id", "key_id", "connection_id", "source_id", "secret_id"):
            url = url.replace("{" + name + "}", FAKE_IDS.get(name, f"x_{name}"))
        url = url.replace("{", "x_").replace("}", "")
        response = await client.request(method, url, content=json.dumps({member: too_deep}), headers=headers)
        assert response.status_code == 422, (method, path, member, response.text)
        problem = response.json()
        named = [e["field"] for e in problem["errors"] if "levels deep" in e["message"]]
        assert any(member in f for f in named), (method, path, member, problem)


async def test_an_event_nested_to_the_limit_is_stored_and_read_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    deepest = {"type": "order.created", "payload": _nested(MAX_JSON_DEPTH)}
    created = await client.post("/v1/events", json=deepest, headers=admin_headers)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    one = await client.get(f"/v1/events/{event_id}", headers=admin_headers)
    assert one.status_code == 200 and one.json()["payload"] == deepest["payload"]
    listed = await client.get("/v1/events", headers=admin_headers)
    assert listed.status_code == 200 and [e["id"] for e in listed.json()["data"]] == [event_id]
    refused = await client.post(
        "/v1/events",
        json={"type": "order.created", "payload": {"wrapped": deepest["payload"]}},
        headers=admin_headers,
    )
    problem = assert_problem(refused, 422)
    assert problem["errors"][0]["field"] == "payload", problem
    assert f"more than {MAX_JSON_DEPTH} levels deep" in problem["errors"][0]["message"]
    async with runtime.db.unit_of_work(write=False) as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent))
    assert count == 1


async def test_inbound_receiver_refuses_nul_before_storing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await client.post(
        "/v1/inbound-sources",
        json={"name": "nul", "scheme": "standard", "eventType": {"from": "body", "field": "type"}},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    source = made.json()
    bodies = [
        json.dumps({"type": "x.created", f"a{NUL}": 1}),
        json.dumps({"type": "x.created", "data": {"name": f"b{NUL}"}}),
        json.dumps({"type": f"x{NUL}", "data": 1}),
        '{"type": "x.created", "data": {"score": NaN}}',
    ]
    fields = ["a\\u0000", "data.name", "type", "data.score"]
    webhook = Webhook(source["signingSecret"]["secret"])
    for n, body in enumerate(bodies):
        message_id = f"msg_{n}"
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(clock.utcnow().timestamp())),
            "webhook-signature": webhook.sign(message_id, clock.utcnow(), body),
            "content-type": "application/json",
        }
        response = await client.post(f"/v1/inbound/{source['id']}", content=body, headers=headers)
        problem = assert_problem(response, 422)
        assert problem["reason"] == "malformed_body"
        assert problem["errors"][0]["field"] == fields[n], problem
    async with runtime.db.unit_of_work(write=False) as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent))
    assert count == 0
    refusals = await client.get(
        "/v1/security-events", params={"eventType": "inbound.rejected"}, headers=admin_headers
    )
    assert len(refusals.json()["data"]) == len(bodies)


def test_json_checks_name_the_place() -> None:
    def field(call: Any, *args: Any) -> str:
        with pytest.raises(ValidationFailed) as caught:
            call(*args)
        return str(caught.value.extra["errors"][0]["field"])

    assert field(check_json, {"a": [{"b": f"x{NUL}"}]}, "data") == "data.a.0.b"
    assert field(check_json, {f"k{NUL}": 1}) == "k\\u0000"
    assert field(check_json, f"x{NUL}") == "body"
    assert field(check_json, [1.0, float("inf")]) == "1"
    assert field(check_field_names, {"": 1}) == "body"
    assert field(check_field_names, {"x" * 300: 1}) == "x" * 200
    assert field(check_field_names, {"tab\there": 1}) == "tab\\u0009here"
    assert field(check_record_fields, {"ok": {"nested\nkey": f"v{NUL}"}}) == "ok.nested\\u000akey"
    assert shown("a\x7fb") == "a\\u007fb"
    too_deep = field(check_json, {"a": _nested(MAX_JSON_DEPTH)}, "data")  # 101 levels with the object
    assert too_deep.startswith("data.a.k.0.k.0.") and too_deep.endswith("…") and len(too_deep) == 61
    check_json(_nested(MAX_JSON_DEPTH))
    check_json({"a": _nested(MAX_JSON_DEPTH - 1)})
    assert not deeper_than(_nested(MAX_JSON_DEPTH)) and deeper_than(_nested(MAX_JSON_DEPTH + 1))
    assert deeper_than(_nested(5000)) and field(check_json, _nested(5000)).endswith("…")
    check_record_fields({"name": "Ada\tLovelace", "nested": {"any key\n": ["line\nbreak", 1.5, None]}})
