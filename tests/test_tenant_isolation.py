"""Tenant isolation over every route of the app, found by walking the app's routes.

Tenant B owns a real resource for every path parameter any route takes; tenant A's key (a tenant
key holding ``admin`` within A) must get 404 for every such route and method, must not see any of
B's ids in any list, and must get 404 when it names B. Platform keys act for another tenant by
naming it, and each such act is audited with both identities.

REST routes authenticate with ``Authorization`` and name a tenant with ``X-Tenant-Id``; dashboard
routes (``/ui``) use the session cookie holding the same key, a CSRF token on every form, and the
tenant cookie in place of ``X-Tenant-Id``.

A new router whose routes take a path parameter unknown to :data:`RESOURCE_FACTORIES` makes the
test fail until a factory for that parameter is added here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from interlink.bootstrap import BootstrapResult
from interlink.http.errors import effective_routes
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.outbound.response import OutboundError
from interlink.runtime import Runtime
from interlink.ui.session import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, TENANT_COOKIE, csrf_key, csrf_token
from tests.conftest import auth

# Routes anyone may call without a key; every other route must authenticate.
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/ui/static/{name}",
    "/ui/login",
    "/ui/logout",
    # a provider's webhook, authenticated by the source's signature scheme (tests/test_inbound_webhooks.py)
    "/v1/inbound/{source_id}",
    # where an OAuth2 provider sends the user back, authenticated by the signed state (tests/test_oauth.py)
    "/v1/oauth/callback",
}
# Service-wide reference data that no tenant owns (the same answer for every key): the per-tenant
# 404 checks skip these paths; the values fill their path parameters where a call is still made.
SHARED_PATHS: dict[str, dict[str, str]] = {
    "/v1/providers/{key}": {"key": "stripe"},
    "/ui/providers/{key}": {"key": "stripe"},
    "/v1/connectors/{key}": {"key": "stripe"},
}
UI_PREFIX = "/ui"
FUTURE = "2099-01-01T00:00:00Z"
CSRF_NONCE = "n" * 32


@dataclass(frozen=True)
class Caller:
    """Who calls: a key (or none) and the tenant it names, whatever the route's transport."""

    key: str | None
    tenant: str | None = None


@dataclass
class World:
    """Tenant A with its admin-scoped tenant key, and tenant B with one resource of each kind."""

    client: httpx.AsyncClient
    admin: BootstrapResult
    tenant_a: str
    tenant_b: str
    key_a: str
    csrf_signing_key: bytes
    resources_b: dict[str, str] = field(default_factory=dict)
    runtime: Runtime | None = None

    @property
    def platform(self) -> dict[str, str]:
        return auth(self.admin.key)

    def as_b(self) -> dict[str, str]:
        """Headers of the platform key acting for tenant B."""
        return auth(self.admin.key, self.tenant_b)

    @property
    def platform_for_b(self) -> Caller:
        return Caller(self.admin.key, self.tenant_b)

    @property
    def tenant_key_a(self) -> Caller:
        return Caller(self.key_a)


Factory = Callable[[World], Awaitable[str]]


async def _created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _tenant_b(world: World) -> str:
    return world.tenant_b


async def _key_of_b(world: World) -> str:
    return await _created(
        await world.client.post(
            "/v1/keys", json={"name": "b-service", "scopes": ["keys:read"]}, headers=world.as_b()
        )
    )


async def _secret_of_b(world: World) -> str:
    return await _created(
        await world.client.post(
            "/v1/secrets",
            json={"name": "b-secret", "value": "b-plaintext-value", "tokenType": "GENERIC"},
            headers=world.as_b(),
        )
    )


async def _event_type_of_b(world: World) -> str:
    return await _created(
        await world.client.post("/v1/event-types", json={"name": "b.created"}, headers=world.as_b())
    )


async def _endpoint_of_b(world: World) -> str:
    body = {"channel": "EMAIL", "channelConfig": {"to": ["ops@b.example.com"]}, "transformation": "payload"}
    return await _created(await world.client.post("/v1/endpoints", json=body, headers=world.as_b()))


async def _event_of_b(world: World) -> str:
    body = {"type": "b.created", "payload": {"n": 1}, "endpointIds": [world.resources_b["endpoint_id"]]}
    return await _created(await world.client.post("/v1/events", json=body, headers=world.as_b()))


async def _delivery_of_b(world: World) -> str:
    event = await world.client.get(f"/v1/events/{world.resources_b['event_id']}", headers=world.as_b())
    return str(event.json()["deliveries"][0]["id"])


async def _inbound_source_of_b(world: World) -> str:
    body = {"name": "b-provider", "scheme": "github", "secret": "b-provider-secret"}
    return await _created(await world.client.post("/v1/inbound-sources", json=body, headers=world.as_b()))


async def _connection_of_b(world: World) -> str:
    body = {"providerKey": "github", "name": "b-github", "credentials": {"clientId": "b-client-id"}}
    return await _created(await world.client.post("/v1/connections", json=body, headers=world.as_b()))


async def _api_request_of_b(world: World) -> str:
    """An outbound call of tenant B, logged (there is no route that makes one: the client does)."""
    assert world.runtime is not None and world.runtime.outbound.log is not None
    client = world.runtime.outbound.client(
        ApiClientConfig(
            tenant_id=world.tenant_b, base_url="http://127.0.0.1:1", retry=RetryPolicy(max_attempts=1)
        )
    )
    with pytest.raises(OutboundError) as refused:  # the address guard refuses loopback: nothing is sent
        await client.call("GET", "/b")
    await world.runtime.outbound.log.flush()
    assert refused.value.request_id is not None
    return refused.value.request_id


async def _health_check_of_b(world: World) -> str:
    """A stored health check of B's connection (running one would probe the provider's real host)."""
    assert world.runtime is not None
    from interlink.connections.models import (
        HealthCheckTrigger,
        IntegrationHealthCheck,
        IntegrationHealthStatus,
    )
    from interlink.core.clock import utcnow
    from interlink.core.ids import new_id

    check_id = new_id("hc")
    async with world.runtime.db.unit_of_work() as session:
        session.add(
            IntegrationHealthCheck(
                id=check_id,
                tenant_id=world.tenant_b,
                connection_id=world.resources_b["connection_id"],
                status=IntegrationHealthStatus.HEALTHY,
                health_score=100,
                response_time_ms=12.5,
                checks=[],
                connectivity={},
                performance={},
                tls_expires_at=None,
                trigger=HealthCheckTrigger.MANUAL,
                error=None,
                checked_at=utcnow(),
            )
        )
    return check_id


async def _resource_name(_world: World) -> str:
    """A connector resource name: not owned by anyone; the connection id in the path is B's."""
    return "zq_b_resource"


async def _provider_path(_world: World) -> str:
    """A path on the provider's API (the proxy's passthrough form); the connection id is B's."""
    return "zq_b_path"


async def _record_id(_world: World) -> str:
    """A provider's record id (owned by the provider); the connection id in the path is B's."""
    return "zq_b_record_1"


async def _replay_of_b(world: World) -> str:
    body = {"requestId": "b-replay", "deliveryId": world.resources_b["delivery_id"]}
    return await _created(await world.client.post("/v1/replays", json=body, headers=world.as_b()))


# Path parameter name → how to create a resource of that kind in tenant B (through the API).
RESOURCE_FACTORIES: dict[str, Factory] = {
    "tenant_id": _tenant_b,
    "key_id": _key_of_b,
    "secret_id": _secret_of_b,
    "event_type_id": _event_type_of_b,
    "endpoint_id": _endpoint_of_b,
    "event_id": _event_of_b,
    "delivery_id": _delivery_of_b,
    "replay_id": _replay_of_b,
    "source_id": _inbound_source_of_b,
    "connection_id": _connection_of_b,
    "request_id": _api_request_of_b,
    "check_id": _health_check_of_b,
    "resource": _resource_name,
    "record_id": _record_id,
    "path": _provider_path,
}

# Provider data read through a connection (records of a connector): reading them as B would call
# the provider's real host, so B's own access is not exercised here (tests/test_connector_records.py
# does, against local servers); A's calls with B's connection id are still checked to be 404s.
PROVIDER_VIEWS = frozenset(
    {
        "/v1/connections/{connection_id}/resources/{resource}",
        "/v1/connections/{connection_id}/resources/{resource}/{record_id}",
        "/v1/connections/{connection_id}/proxy/{path:path}",
    }
)

# Request bodies the schema-derived minimal body cannot express, by (method, path).
BODY_OVERRIDES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/connections/{connection_id}/proxy"): {"path": "/user"},
}

# Dashboard forms that need fields besides the CSRF token, by (method, path).
UI_FORM_FIELDS: dict[tuple[str, str], Callable[[Caller], dict[str, str]]] = {
    ("POST", "/ui/tenant"): lambda caller: {"tenant_id": caller.tenant or "ten_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
    ("POST", "/ui/keys"): lambda caller: {"name": "from the dashboard", "scopes": "keys:read"},
    ("POST", "/ui/endpoints"): lambda caller: {"url": "https://example.com/hook", "channel": "WEBHOOK"},
    ("POST", "/ui/endpoints/{endpoint_id}/delete"): lambda caller: {"confirm": "yes"},
    ("POST", "/ui/endpoints/{endpoint_id}/recover"): lambda caller: {
        "since": "2000-01-01T00:00",
        "statuses": "DELIVERED",
    },
    ("POST", "/ui/event-types"): lambda caller: {"name": "from.the.dashboard"},
}


# -- route discovery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    body: Any
    has_body: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def ui(self) -> bool:
        return self.path == UI_PREFIX or self.path.startswith(UI_PREFIX + "/")

    @property
    def public(self) -> bool:
        return self.path in PUBLIC_PATHS

    @property
    def shared(self) -> bool:
        return self.path in SHARED_PATHS


def api_operations(app: FastAPI) -> Iterator[Operation]:
    """Every method of every API route of the app, with a minimal valid body where one is taken."""
    schema = app.openapi()
    for route in effective_routes(app.routes):
        original = getattr(route, "original_route", route)
        if not isinstance(original, APIRoute):
            continue
        params = tuple(p.name for p in route.dependant.path_params)
        for method in sorted(route.methods or ()):
            operation = schema["paths"].get(route.path, {}).get(method.lower(), {})
            request_body = operation.get("requestBody")
            body: Any = None
            if request_body is not None:
                body = BODY_OVERRIDES.get((method, route.path))
                if body is None:
                    media = request_body["content"]["application/json"]["schema"]
                    body = minimal_instance(media, schema)
            yield Operation(method, route.path, params, body, request_body is not None)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def minimal_instance(node: dict[str, Any], root: dict[str, Any]) -> Any:
    """The smallest value valid for a JSON schema: required properties only, shortest strings."""
    node = _resolve(node, root)
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            options = [o for o in node[combinator] if _resolve(o, root).get("type") != "null"]
            return minimal_instance(options[0], root)
    if "allOf" in node:
        return minimal_instance(node["allOf"][0], root)
    if "enum" in node:
        return node["enum"][0]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        return {name: minimal_instance(properties[name], root) for name in node.get("required", [])}
    if kind == "array":
        return [minimal_instance(node.get("items", {}), root) for _ in range(node.get("minItems", 0))]
    if kind == "string":
        if node.get("format") == "date-time":
            return FUTURE
        return "x" * max(1, node.get("minLength", 1))
    if kind in ("integer", "number"):
        return node.get("minimum", node.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    return {}


_ROUTE_CONVERTER = re.compile(r"\{(\w+):\w+\}")


async def call(world: World, op: Operation, path_values: dict[str, str], caller: Caller) -> httpx.Response:
    """Call ``op`` as ``caller``: headers for the REST API, cookies and a CSRF form for the dashboard."""
    url = _ROUTE_CONVERTER.sub(r"{\1}", op.path).format(**path_values)  # {path:path} → {path}
    if op.ui:
        cookies = [f"{CSRF_COOKIE}={CSRF_NONCE}"]
        if caller.key:
            cookies.append(f"{SESSION_COOKIE}={caller.key}")
        if caller.tenant:
            cookies.append(f"{TENANT_COOKIE}={caller.tenant}")
        headers = {"Cookie": "; ".join(cookies)}
        if op.method == "POST":
            form = UI_FORM_FIELDS.get((op.method, op.path), lambda _: {})(caller)
            form[CSRF_FIELD] = csrf_token(world.csrf_signing_key, CSRF_NONCE, caller.key)
            return await world.client.post(url, data=form, headers=headers)
        return await world.client.request(op.method, url, headers=headers)
    headers = auth(caller.key, caller.tenant) if caller.key else {}
    if op.has_body:
        return await world.client.request(op.method, url, json=op.body, headers=headers)
    return await world.client.request(op.method, url, headers=headers)


def strings_in(payload: Any) -> Iterator[str]:
    """Every string anywhere in a JSON document."""
    if isinstance(payload, str):
        yield payload
    elif isinstance(payload, dict):
        for value in payload.values():
            yield from strings_in(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from strings_in(value)


def assert_not_found(response: httpx.Response, what: str) -> None:
    assert response.status_code == 404, f"{what}: expected 404, got {response.status_code}: {response.text}"
    if response.headers["content-type"].startswith("text/html"):  # a dashboard page
        return
    assert response.headers["content-type"].startswith("application/problem+json"), what
    if response.request.method == "HEAD":  # an answer to HEAD has no body
        assert response.content == b"", what
        return
    assert response.json()["type"] == "urn:interlink:problem:not-found", what


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def world(client: httpx.AsyncClient, admin: BootstrapResult, app: FastAPI, runtime: Runtime) -> World:
    platform = auth(admin.key)
    tenant_a = await _created(await client.post("/v1/tenants", json={"name": "Tenant A"}, headers=platform))
    tenant_b = await _created(await client.post("/v1/tenants", json={"name": "Tenant B"}, headers=platform))
    made = await client.post(
        "/v1/keys", json={"name": "a-admin", "scopes": ["admin"]}, headers=auth(admin.key, tenant_a)
    )
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "tenant"
    world = World(client, admin, tenant_a, tenant_b, made.json()["key"], csrf_key(runtime.keys.pepper))
    world.runtime = runtime
    # Unknown path parameters fail here, naming the route, before anything else runs.
    unknown = sorted(
        {
            f"{op} → {{{name}}}"
            for op in api_operations(app)
            if not op.public and not op.shared
            for name in op.path_params
            if name not in RESOURCE_FACTORIES
        }
    )
    assert not unknown, (
        "routes take path parameters the isolation test cannot fill; add a factory that creates such a "
        f"resource in tenant B to RESOURCE_FACTORIES in {__file__}: {unknown}"
    )
    for name, factory in RESOURCE_FACTORIES.items():
        world.resources_b[name] = await factory(world)
    return world


def _list_operations(app: FastAPI) -> Iterator[Operation]:
    for op in api_operations(app):
        if op.method == "GET" and not op.path_params and not op.public:
            yield op


async def _b_snapshot(world: World, app: FastAPI) -> dict[str, Any]:
    """What tenant B's resources look like through the platform key (REST detail routes).
    Metrics are views over a moving time window (their ``until`` is now), and an OAuth2 authorize
    URL carries a new signed state each time, not resources: they are read to prove access but left
    out of the comparison."""
    snapshot: dict[str, Any] = {}
    for op in api_operations(app):
        if op.method == "GET" and op.path_params and not op.ui and not op.shared:
            if op.path in PROVIDER_VIEWS:
                continue
            response = await call(world, op, world.resources_b, world.platform_for_b)
            assert response.status_code == 200, f"{op} as B: {response.text}"
            if not op.path.endswith(("/metrics", "/oauth/authorize-url")):
                snapshot[str(op)] = response.json()
    return snapshot


async def _b_ids(world: World, app: FastAPI) -> set[str]:
    """Ids of everything tenant B owns that any REST list shows the platform key acting for B."""
    owned = {world.tenant_b, *world.resources_b.values()}
    for op in _list_operations(app):
        if op.ui:
            continue
        response = await world.client.get(op.path, params={"limit": 200}, headers=world.as_b())
        assert response.status_code == 200, f"{op} as B: {response.text}"
        for item in response.json().get("data", []):
            if item.get("tenantId") == world.tenant_b or item.get("id") == world.tenant_b:
                owned.add(item["id"])
    return owned


# -- tests --------------------------------------------------------------------------------------


async def test_every_route_is_enumerated(app: FastAPI) -> None:
    operations = {str(op) for op in api_operations(app)}
    for expected in (
        "GET /v1/keys/{key_id}",
        "POST /v1/keys/{key_id}/revoke",
        "PATCH /v1/tenants/{tenant_id}",
        "GET /v1/secrets/{secret_id}",
        "DELETE /v1/secrets/{secret_id}",
        "GET /v1/audit-events",
        "GET /ui/endpoints/{endpoint_id}",
        "POST /ui/endpoints/{endpoint_id}/secret",
        "POST /ui/deliveries/{delivery_id}/retry",
        "GET /ui/events/{event_id}",
        "POST /ui/event-types/{event_type_id}/deprecate",
        "POST /ui/connections/{connection_id}/health-checks",
        "GET /ui/connections/{connection_id}/health-checks/{check_id}",
    ):
        assert expected in operations, sorted(operations)


async def test_tenant_key_gets_404_for_every_resource_of_another_tenant(world: World, app: FastAPI) -> None:
    before = await _b_snapshot(world, app)
    checked = []
    for op in api_operations(app):
        if not op.path_params or op.public or op.shared:
            continue
        response = await call(world, op, world.resources_b, world.tenant_key_a)
        assert response.status_code != 422, (
            f"{op}: the minimal body {op.body!r} is invalid ({response.text}); add one to BODY_OVERRIDES"
        )
        assert_not_found(response, f"{op} with tenant A's key on B's resource")
        assert "b-plaintext-value" not in response.text
        checked.append(str(op))
    assert len(checked) >= 8, checked
    # Nothing of B's changed.
    assert await _b_snapshot(world, app) == before


async def test_ids_holding_a_nul_name_nothing_on_every_route(world: World, app: FastAPI) -> None:
    """``%00`` in a path id: 404 on both databases (PostgreSQL refuses a NUL in any text it is asked
    to compare, so its lookups must not turn into another answer), or 422 naming the parameter
    where the path segment has a documented pattern (resource names)."""
    checked = []
    for op in api_operations(app):
        if not op.path_params or op.public or op.shared:
            continue
        values = {name: f"{value}%00x" for name, value in world.resources_b.items()}
        response = await call(world, op, values, world.tenant_key_a)
        what = f"{op} with a NUL in its ids"
        if response.status_code == 422 and "{resource}" in op.path:
            assert response.json()["errors"][0]["field"] == "resource", what
        else:
            assert_not_found(response, what)
        checked.append(str(op))
    assert len(checked) >= 40, checked


async def test_list_routes_never_show_another_tenants_ids(world: World, app: FastAPI) -> None:
    owned_by_b = await _b_ids(world, app)
    assert len(owned_by_b) >= 5, owned_by_b  # tenant, key, secret and their audit events
    listed = 0
    for op in _list_operations(app):
        if op.ui:
            response = await call(world, op, {}, world.tenant_key_a)
            assert response.status_code == 200, f"{op} with A's session: {response.status_code}"
            seen = {i for i in owned_by_b if i in response.text}
        else:
            response = await world.client.get(op.path, params={"limit": 200}, headers=auth(world.key_a))
            assert response.status_code == 200, f"{op} with A's key: {response.text}"
            seen = set(strings_in(response.json())) & owned_by_b
        assert not seen, f"{op} shows tenant A ids of tenant B: {sorted(seen)}"
        assert world.tenant_b not in response.text, f"{op} names tenant B"
        listed += 1
    assert listed >= 4


async def test_filters_cannot_reach_another_tenant(world: World) -> None:
    key_b = world.resources_b["key_id"]
    for path, params in [
        ("/v1/audit-events", {"resourceId": key_b}),
        ("/v1/security-events", {"keyId": key_b}),
        ("/v1/keys", {"status": "ACTIVE"}),
        ("/v1/secrets", {"ownerId": world.tenant_b}),
    ]:
        response = await world.client.get(path, params=params, headers=auth(world.key_a))
        assert response.status_code == 200, response.text
        assert key_b not in response.text, f"{path} {params} shows B's key"
        assert world.resources_b["secret_id"] not in response.text, f"{path} {params} shows B's secret"


async def test_verify_does_not_reveal_another_tenants_key(world: World) -> None:
    made = await world.client.post(
        "/v1/keys", json={"name": "b-live", "scopes": ["keys:read"]}, headers=world.as_b()
    )
    key_b = made.json()["key"]
    response = await world.client.post("/v1/keys/verify", json={"key": key_b}, headers=auth(world.key_a))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is False
    assert result["code"] == "unknown"
    assert world.tenant_b not in response.text
    assert made.json()["id"] not in response.text


async def test_tenant_key_naming_another_tenant_gets_404_everywhere(world: World, app: FastAPI) -> None:
    naming_b = Caller(world.key_a, world.tenant_b)
    checked = 0
    for op in api_operations(app):
        if op.public:
            continue
        path_values = SHARED_PATHS.get(op.path) or {name: world.resources_b[name] for name in op.path_params}
        assert_not_found(await call(world, op, path_values, naming_b), f"{op} with A's key naming B")
        checked += 1
    assert checked >= 10
    # Its own tenant, named explicitly, is fine.
    own = await world.client.get("/v1/keys", headers=auth(world.key_a, world.tenant_a))
    assert own.status_code == 200, own.text


async def test_every_non_public_route_requires_a_key(world: World, app: FastAPI) -> None:
    for op in api_operations(app):
        if op.public:
            continue
        path_values = SHARED_PATHS.get(op.path) or {name: world.resources_b[name] for name in op.path_params}
        response = await call(world, op, path_values, Caller(None))
        if op.ui:  # sent to the sign-in page, or the form is refused
            assert response.status_code in (303, 403), f"{op} without a session: {response.status_code}"
            if response.status_code == 303:
                assert response.headers["location"].startswith("/ui/login")
        else:
            assert response.status_code == 401, f"{op} without a key: {response.status_code}"


async def test_platform_key_acts_for_a_named_tenant(world: World) -> None:
    listed = await world.client.get("/v1/keys", headers=world.as_b())
    assert listed.status_code == 200
    tenants = {k["tenantId"] for k in listed.json()["data"]}
    assert tenants == {world.tenant_b}
    assert world.resources_b["key_id"] in {k["id"] for k in listed.json()["data"]}
    shown = await world.client.get(f"/v1/secrets/{world.resources_b['secret_id']}", headers=world.as_b())
    assert shown.status_code == 200
    # Without naming B, the platform key acts for its own tenant, where B's key does not exist.
    home = await world.client.get(f"/v1/keys/{world.resources_b['key_id']}", headers=world.platform)
    assert_not_found(home, "platform key without X-Tenant-Id on B's key")
    for bad in ("ten_01HZZZZZZZZZZZZZZZZZZZZZZZ", "not-a-tenant"):
        response = await world.client.get("/v1/keys", headers=auth(world.admin.key, bad))
        assert_not_found(response, f"platform key naming {bad}")


async def test_acts_for_another_tenant_are_audited_with_both_identities(world: World) -> None:
    key_b = world.resources_b["key_id"]
    events = await world.client.get(
        "/v1/audit-events", params={"resourceId": key_b, "action": "key.created"}, headers=world.as_b()
    )
    assert events.status_code == 200
    [created] = events.json()["data"]
    assert created["tenantId"] == world.tenant_b
    assert created["actorKeyId"] == world.admin.key_id
    assert created["actorTenantId"] == world.admin.tenant_id

    read = await world.client.get(
        f"/v1/keys/{key_b}", headers={**world.as_b(), "X-Correlation-Id": "read-b-1"}
    )
    assert read.status_code == 200
    events = await world.client.get(
        "/v1/audit-events", params={"correlationId": "read-b-1"}, headers=world.as_b()
    )
    [accessed] = events.json()["data"]
    assert accessed["action"] == "platform.accessed"
    assert accessed["resourceId"] == f"/v1/keys/{key_b}"
    assert accessed["tenantId"] == world.tenant_b
    assert accessed["actorKeyId"] == world.admin.key_id
    assert accessed["actorTenantId"] == world.admin.tenant_id
    # The trail belongs to B: A's key cannot read it.
    from_a = await world.client.get(
        "/v1/audit-events", params={"correlationId": "read-b-1"}, headers=auth(world.key_a)
    )
    assert from_a.json()["data"] == []
    assert json.dumps(from_a.json()).count(world.tenant_b) == 0
