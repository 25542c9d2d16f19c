"""The Python SDK (``interlink.client``) against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from interlink.client import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRotated,
    AsyncInterlinkClient,
    AuthenticationError,
    ConflictError,
    InterlinkAPIError,
    InterlinkClient,
    InterlinkConnectionError,
    NotFoundError,
    Page,
    PermissionDeniedError,
    RateLimitError,
    SecretInfo,
    SecretRiskFactor,
    ServiceUnavailableError,
    TenantInfo,
    ValidationError,
    VerifyKeyResponse,
)
from interlink.core.enums import ApiKeyStatus, TokenType
from tests.conftest import LiveServer, free_port


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[InterlinkClient]:
    with InterlinkClient(live_server.url, live_server.admin_key) as client:
        yield client


def test_full_key_lifecycle(sdk: InterlinkClient, live_server: LiveServer) -> None:
    tenant = sdk.tenants.create("Acme Inc", metadata={"plan": "pro"})
    assert isinstance(tenant, TenantInfo)

    created = sdk.keys.create(
        "backend",
        ["keys:read", "keys:write", "keys:verify", "audit:read"],
        metadata={"team": "core"},
        tenant_id=tenant.id,
    )
    assert isinstance(created, ApiKeyCreated)
    assert created.tenant_id == tenant.id
    assert created.key.startswith("il_live_")
    assert created.status is ApiKeyStatus.ACTIVE

    shown = sdk.keys.get(created.id, tenant_id=tenant.id)
    assert isinstance(shown, ApiKeyInfo)
    assert not hasattr(shown, "key")
    assert shown.metadata == {"team": "core"}

    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    updated = sdk.keys.update(created.id, name="backend-2", expires_at=expiry, tenant_id=tenant.id)
    assert updated.name == "backend-2"
    assert updated.expires_at == expiry
    cleared = sdk.keys.update(created.id, expires_at=None, rate_limit=100, tenant_id=tenant.id)
    assert cleared.expires_at is None
    assert cleared.name == "backend-2"
    assert cleared.rate_limit is not None and cleared.rate_limit.limit == 100

    # The tenant's own key drives the rest, without X-Tenant-Id.
    with InterlinkClient(live_server.url, created.key) as own:
        assert [k.id for k in own.keys.list()] == [created.id]
        rotated = own.keys.rotate(created.id, grace_period_seconds=3600)
        assert isinstance(rotated, ApiKeyRotated)
        assert rotated.old_key.status is ApiKeyStatus.ROTATING
        assert rotated.old_key.rotated_to_id == rotated.new_key.id
        new_key = rotated.new_key.key
        assert new_key != created.key

        verdict = own.keys.verify(new_key, scopes=["keys:read"])
        assert isinstance(verdict, VerifyKeyResponse)
        assert verdict.valid and verdict.code == "valid"
        assert verdict.tenant_id == tenant.id
        assert own.keys.verify(created.key).valid  # still inside its grace period

        revoked = own.keys.revoke(rotated.new_key.id, reason="leaked")
        assert revoked.status is ApiKeyStatus.REVOKED
        assert revoked.revoked_reason == "leaked"
        denied = own.keys.verify(new_key)
        assert not denied.valid and denied.code == "revoked"

    with InterlinkClient(live_server.url, new_key) as gone, pytest.raises(AuthenticationError) as info:
        gone.keys.list()
    assert info.value.status == 401
    assert info.value.reason == "revoked"

    statuses = {k.id: k.status for k in sdk.keys.iter_all(tenant_id=tenant.id)}
    assert statuses == {created.id: ApiKeyStatus.ROTATING, rotated.new_key.id: ApiKeyStatus.REVOKED}
    actions = [e.action for e in sdk.audit_events.list(tenant_id=tenant.id, resource_type="api_key")]
    assert actions[:2] == ["key.revoked", "key.rotated"]
    assert actions.count("key.updated") == 2 and "key.created" in actions

    fenced = sdk.keys.create("fenced", ["keys:read"], allowed_ips=["10.1.0.0/16"], tenant_id=tenant.id)
    assert fenced.allowed_ips == ["10.1.0.0/16"]
    assert sdk.keys.verify(fenced.key, ip="10.1.2.3").valid
    assert sdk.keys.verify(fenced.key, ip="192.0.2.1").code == "ip_denied"
    opened = sdk.keys.update(fenced.id, allowed_ips=[], tenant_id=tenant.id)
    assert opened.allowed_ips == []


def test_tenants(sdk: InterlinkClient, live_server: LiveServer) -> None:
    made = sdk.tenants.create("Globex", slug="globex", metadata={"region": "eu"})
    assert (made.slug, made.metadata) == ("globex", {"region": "eu"})
    assert sdk.tenants.get(made.id) == made
    changed = sdk.tenants.update(made.id, name="Globex Corp", metadata={"region": "us"})
    assert (changed.name, changed.slug, changed.metadata) == ("Globex Corp", "globex", {"region": "us"})
    assert changed.updated_at >= made.updated_at
    listed = sdk.tenants.list()
    assert isinstance(listed, Page)
    assert [t.id for t in listed] == [made.id, live_server.tenant_id]

    with pytest.raises(ConflictError) as info:
        sdk.tenants.create("Again", slug="globex")
    assert info.value.status == 409 and "globex" in (info.value.detail or "")

    key = sdk.keys.create("reader", ["tenants:read", "tenants:write"], tenant_id=made.id).key
    with InterlinkClient(live_server.url, key) as tenant_client:
        assert [t.id for t in tenant_client.tenants.list()] == [made.id]
        assert tenant_client.tenants.get(made.id).name == "Globex Corp"
        with pytest.raises(NotFoundError):
            tenant_client.tenants.get(live_server.tenant_id)
        with pytest.raises(PermissionDeniedError) as denied:
            tenant_client.tenants.create("Sneaky")
        assert denied.value.reason == "platform_only"


def test_typed_errors_carry_the_problem(sdk: InterlinkClient, live_server: LiveServer) -> None:
    with pytest.raises(ValidationError) as invalid:
        sdk.keys.create("bad", ["no-such-scope"])
    err = invalid.value
    assert err.status == 422
    assert err.type == "urn:interlink:problem:validation-error"
    assert err.code == "validation-error"
    assert err.title == "Validation failed"
    assert [e.field for e in err.errors] == ["scopes.0"]
    assert err.correlation_id == sdk.last_correlation_id
    assert err.correlation_id and err.correlation_id in str(err)

    with pytest.raises(NotFoundError) as missing:
        sdk.keys.get("key_00000000000000000000000000")
    assert missing.value.status == 404 and missing.value.type.endswith(":not-found")

    with (
        InterlinkClient(live_server.url, "il_live_notarealkey") as stranger,
        pytest.raises(AuthenticationError) as unauthenticated,
    ):
        stranger.tenants.list()
    assert unauthenticated.value.reason == "malformed"

    reader = sdk.keys.create("reader", ["keys:read"]).key
    with (
        InterlinkClient(live_server.url, reader) as limited,
        pytest.raises(PermissionDeniedError) as forbidden,
    ):
        limited.keys.create("more", ["keys:read"])
    assert forbidden.value.reason == "insufficient_scope"
    assert isinstance(forbidden.value, InterlinkAPIError)


def test_rate_limit_error_has_retry_after(sdk: InterlinkClient, live_server: LiveServer) -> None:
    key = sdk.keys.create("slow", ["keys:read"], rate_limit=1, rate_limit_period_seconds=60).key
    with InterlinkClient(live_server.url, key) as limited:
        limited.keys.list()
        with pytest.raises(RateLimitError) as info:
            limited.keys.list()
    assert info.value.status == 429
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
    assert info.value.headers.get("retry-after") == str(info.value.retry_after)


def test_pagination(sdk: InterlinkClient) -> None:
    made = [sdk.keys.create(f"k{i}", ["keys:read"]).id for i in range(5)]
    expected = [*reversed(made)]  # newest first; the admin key is the oldest
    first = sdk.keys.list(limit=2)
    assert [k.id for k in first] == expected[:2]
    assert first.has_more and first.next_cursor == expected[1]
    second = sdk.keys.list(limit=2, after=first.next_cursor)
    assert [k.id for k in second] == expected[2:4]
    every = [k.id for k in sdk.keys.iter_all(page_size=2)]
    assert every[:5] == expected
    assert len(every) == 6 and len(set(every)) == 6
    last = sdk.keys.list(limit=6)
    assert not last.has_more and last.next_cursor is None
    active = list(sdk.keys.iter_all(status=ApiKeyStatus.ACTIVE, page_size=4))
    assert len(active) == 6


def test_tenant_header_scopes_a_platform_key(sdk: InterlinkClient, live_server: LiveServer) -> None:
    one = sdk.tenants.create("One")
    two = sdk.tenants.create("Two")
    in_one = sdk.keys.create("k1", ["keys:read"], tenant_id=one.id)
    in_two = sdk.keys.create("k2", ["keys:read"], tenant_id=two.id)
    assert [k.id for k in sdk.keys.list(tenant_id=one.id)] == [in_one.id]
    assert [k.id for k in sdk.keys.list(tenant_id=two.id)] == [in_two.id]
    assert in_one.id not in [k.id for k in sdk.keys.list()]

    scoped = sdk.with_options(tenant_id=two.id)
    assert scoped.tenant_id == two.id
    assert [k.id for k in scoped.keys.list()] == [in_two.id]
    assert [k.id for k in scoped.keys.list(tenant_id=one.id)] == [in_one.id]  # per call wins
    with pytest.raises(NotFoundError):
        scoped.keys.get(in_one.id)
    scoped.close()  # shares the parent's connections: the parent keeps working
    assert sdk.keys.get(in_one.id, tenant_id=one.id).id == in_one.id

    # Acts for another tenant are audited with both identities.
    audited = sdk.audit_events.list(tenant_id=two.id, action="key.created").data
    assert [e.resource_id for e in audited] == [in_two.id]
    assert audited[0].actor_tenant_id == live_server.tenant_id
    assert audited[0].tenant_id == two.id

    with InterlinkClient(live_server.url, in_one.key) as tenant_key, pytest.raises(NotFoundError):
        tenant_key.keys.list(tenant_id=two.id)


def test_correlation_ids_are_sent_and_exposed(sdk: InterlinkClient) -> None:
    traced = sdk.with_options(correlation_id="trace-sdk-42")
    made = traced.keys.create("traced", ["keys:read"])
    assert traced.last_correlation_id == "trace-sdk-42"
    events = sdk.audit_events.list(correlation_id="trace-sdk-42")
    assert [e.resource_id for e in events] == [made.id]
    assert events.data[0].correlation_id == "trace-sdk-42"

    sdk.keys.get(made.id)
    first = sdk.last_correlation_id
    sdk.keys.get(made.id)
    assert first and sdk.last_correlation_id and first != sdk.last_correlation_id


def test_audit_and_security_listing(sdk: InterlinkClient, live_server: LiveServer) -> None:
    made = sdk.keys.create("watched", ["keys:read"])
    sdk.keys.revoke(made.id, reason="test")
    with InterlinkClient(live_server.url, made.key) as revoked, pytest.raises(AuthenticationError):
        revoked.keys.list()
    with InterlinkClient(live_server.url, "il_live_" + "x" * 38) as junk, pytest.raises(AuthenticationError):
        junk.keys.list()

    audit = sdk.audit_events.list(resource_id=made.id)
    assert [e.action for e in audit] == ["key.revoked", "key.created"]
    assert all(e.actor_key_id == sdk.keys.list().data[-1].id for e in audit)
    assert list(sdk.audit_events.iter_all(resource_id=made.id, page_size=1)) == audit.data

    by_key = sdk.security_events.list(key_id=made.id)
    types = [e.event_type for e in by_key]
    assert types == ["key.revoked_used", "key.revoked", "key.created"]
    failed = sdk.security_events.list(event_type="auth.failed")
    assert failed.data and all(e.event_type == "auth.failed" for e in failed)
    risky = list(sdk.security_events.iter_all(min_risk=1, page_size=2))
    assert risky and all(e.risk_score >= 1 for e in risky)
    since = datetime.now(UTC) + timedelta(minutes=5)
    assert sdk.security_events.list(since=since).data == []


async def test_async_client(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as client:
        tenant = await client.tenants.create("Async Co")
        assert (await client.tenants.get(tenant.id)).name == "Async Co"
        assert (await client.tenants.update(tenant.id, name="Async Ltd")).name == "Async Ltd"
        assert tenant.id in [t.id async for t in client.tenants.iter_all(page_size=1)]

        made = [
            await client.keys.create(f"a{i}", ["keys:read", "keys:verify"], tenant_id=tenant.id)
            for i in range(3)
        ]
        page = await client.keys.list(limit=2, tenant_id=tenant.id)
        assert page.has_more and len(page) == 2
        every = [k.id async for k in client.keys.iter_all(page_size=2, tenant_id=tenant.id)]
        assert every == [k.id for k in reversed(made)]

        shown = await client.keys.get(made[0].id, tenant_id=tenant.id)
        assert shown.name == "a0"
        assert (await client.keys.update(made[0].id, name="a0x", tenant_id=tenant.id)).name == "a0x"
        rotated = await client.keys.rotate(made[0].id, grace_period_seconds=0, tenant_id=tenant.id)
        assert (await client.keys.verify(rotated.new_key.key)).valid
        assert (await client.keys.verify(made[0].key)).code in {"expired", "revoked"}
        revoked = await client.keys.revoke(made[1].id, tenant_id=tenant.id)
        assert revoked.status is ApiKeyStatus.REVOKED

        audit = await client.audit_events.list(tenant_id=tenant.id, action="key.revoked")
        assert [e.resource_id for e in audit] == [made[1].id]
        security = await client.security_events.list(tenant_id=tenant.id, event_type="key.rotated")
        assert [e.key_id for e in security] == [made[0].id]
        assert [e.id async for e in client.audit_events.iter_all(tenant_id=tenant.id, page_size=3)]
        assert [e.id async for e in client.security_events.iter_all(tenant_id=tenant.id)]

        with pytest.raises(NotFoundError):
            await client.keys.get(made[0].id)  # lives in the other tenant
        with pytest.raises(ValidationError) as invalid:
            await client.keys.create("", ["keys:read"])
        assert [e.field for e in invalid.value.errors] == ["name"]
        scoped = client.with_options(tenant_id=tenant.id)
        assert len(await scoped.keys.list()) == 4  # three made, one from the rotation
        await scoped.aclose()
        assert (await client.tenants.get(tenant.id)).id == tenant.id


def test_secrets(sdk: InterlinkClient, live_server: LiveServer) -> None:
    value = "sk_live_do-not-leak-4242"
    made = sdk.secrets.create(
        "stripe",
        value,
        TokenType.API_KEY,
        owner_type="connection",
        owner_id="conn_1",
        metadata={"provider": "stripe"},
    )
    assert isinstance(made, SecretInfo)
    assert made.id.startswith("sec_") and made.tenant_id == live_server.tenant_id
    assert (made.name, made.token_type, made.version) == ("stripe", TokenType.API_KEY, 1)
    assert value not in made.model_dump_json()
    assert made.rotate_by is not None and made.rotate_by > made.created_at
    assert 0 <= made.risk_score <= 100
    assert all(isinstance(f, SecretRiskFactor) for f in made.risk_factors)

    other = sdk.secrets.create("hook", "whsec_abc", "WEBHOOK_SECRET")
    assert sdk.secrets.get(made.id).name == "stripe"
    assert [s.id for s in sdk.secrets.list()] == [other.id, made.id]
    assert [s.id for s in sdk.secrets.list(owner_type="connection", owner_id="conn_1")] == [made.id]
    assert [s.id for s in sdk.secrets.iter_all(page_size=1)] == [other.id, made.id]

    rotate_by = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    rotated = sdk.secrets.rotate(made.id, "sk_live_new-value-4343", rotate_by=rotate_by)
    assert rotated.version == 2 and rotated.last_rotated_at is not None
    assert rotated.rotate_by == rotate_by
    assert "sk_live_new-value-4343" not in rotated.model_dump_json()

    with pytest.raises(ConflictError):
        sdk.secrets.create("stripe", "again", TokenType.API_KEY)
    sdk.secrets.delete(made.id)
    with pytest.raises(NotFoundError):
        sdk.secrets.get(made.id)
    assert [s.id for s in sdk.secrets.list()] == [other.id]

    tenant = sdk.tenants.create("Vaulted")
    with pytest.raises(NotFoundError):
        sdk.secrets.get(other.id, tenant_id=tenant.id)
    assert sdk.secrets.list(tenant_id=tenant.id).data == []


# Retry policy: a scripted transport stands in for a flaky network and an overloaded service.


def _scripted(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        if status == 0:
            raise httpx.ConnectError("connection refused", request=request)
        if status == 200:
            return httpx.Response(200, json={"data": [], "hasMore": False, "nextCursor": None})
        problem = {"type": "urn:interlink:problem:service-unavailable", "title": "Service unavailable"}
        return httpx.Response(status, json={**problem, "status": status}, headers={"Retry-After": "0"})

    return httpx.MockTransport(handler)


def test_idempotent_requests_retry_on_503_and_connection_errors() -> None:
    seen: list[httpx.Request] = []
    with InterlinkClient("http://interlink.test", "k", transport=_scripted([503, 0], seen)) as client:
        assert client.keys.list().data == []
    assert [r.method for r in seen] == ["GET", "GET", "GET"]
    ids = {r.headers["x-correlation-id"] for r in seen}
    assert len(ids) == 1  # one logical call, one correlation id across attempts
    assert all(r.headers["authorization"] == "Bearer k" for r in seen)


def test_retries_are_bounded() -> None:
    seen: list[httpx.Request] = []
    transport = _scripted([503, 503, 503, 503], seen)
    with (
        InterlinkClient("http://interlink.test", "k", transport=transport, max_retries=2) as client,
        pytest.raises(ServiceUnavailableError) as info,
    ):
        client.tenants.list()
    assert info.value.status == 503 and len(seen) == 3


def test_non_idempotent_requests_are_not_retried_after_sending() -> None:
    seen: list[httpx.Request] = []
    with (
        InterlinkClient("http://interlink.test", "k", transport=_scripted([503], seen)) as client,
        pytest.raises(ServiceUnavailableError),
    ):
        client.keys.revoke("key_00000000000000000000000000")
    assert len(seen) == 1
    # Refused connections are retried for any method: nothing reached the service.
    seen.clear()
    with (
        InterlinkClient("http://interlink.test", "k", transport=_scripted([0, 503], seen)) as client,
        pytest.raises(ServiceUnavailableError),
    ):
        client.keys.revoke("key_00000000000000000000000000")
    assert len(seen) == 2


def _event_json(key: str | None) -> dict[str, object]:
    return {
        "id": "evt_1",
        "tenantId": "ten_1",
        "type": "invoice.paid",
        "payload": {},
        "metadata": {},
        "idempotencyKey": key,
        "priority": "NORMAL",
        "source": "api",
        "correlationId": None,
        "createdAt": "2026-11-25T00:00:00+00:00",
        "deliveries": [],
        "created": True,
    }


def _events_service(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    """503 (or a dropped connection, 0) as scripted, then the event (or a batch of it)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        if status == 0:
            raise httpx.ReadError("connection reset after sending", request=request)
        if status == 503:
            problem = {
                "type": "urn:interlink:problem:service-unavailable",
                "title": "Unavailable",
                "status": 503,
            }
            return httpx.Response(503, json=problem, headers={"Retry-After": "0"})
        sent = json.loads(request.content)
        if request.url.path.endswith("/batch"):
            return httpx.Response(
                201, json={"data": [_event_json(e.get("idempotencyKey")) for e in sent["events"]]}
            )
        return httpx.Response(201, json=_event_json(sent.get("idempotencyKey")))

    return httpx.MockTransport(handler)


def test_events_with_idempotency_keys_are_retried_like_idempotent_requests() -> None:
    """The service answers a repeated idempotency key with the first event, so resending is safe."""
    seen: list[httpx.Request] = []
    with InterlinkClient("http://interlink.test", "k", transport=_events_service([503, 0], seen)) as client:
        event = client.events.send("invoice.paid", {}, idempotency_key="inv-1")
    assert event.idempotency_key == "inv-1" and len(seen) == 3
    assert {r.headers["x-correlation-id"] for r in seen} == {seen[0].headers["x-correlation-id"]}

    seen.clear()
    with InterlinkClient("http://interlink.test", "k", transport=_events_service([503], seen)) as client:
        batch = client.events.send_batch(
            [
                {"type": "a.b", "payload": {}, "idempotency_key": "k1"},
                {"type": "a.b", "payload": {}, "idempotencyKey": "k2"},
            ]
        )
    assert [e.idempotency_key for e in batch] == ["k1", "k2"] and len(seen) == 2

    # Without a key (or with one event of a batch unkeyed) a 503 after sending is not retried.
    def unkeyed(client: InterlinkClient) -> object:
        return client.events.send("invoice.paid", {})

    def partly_keyed(client: InterlinkClient) -> object:
        return client.events.send_batch(
            [{"type": "a.b", "payload": {}, "idempotencyKey": "k1"}, {"type": "a.b", "payload": {}}]
        )

    for call in (unkeyed, partly_keyed):
        seen.clear()
        with (
            InterlinkClient("http://interlink.test", "k", transport=_events_service([503], seen)) as client,
            pytest.raises(ServiceUnavailableError),
        ):
            call(client)
        assert len(seen) == 1


async def test_async_events_with_idempotency_keys_are_retried() -> None:
    seen: list[httpx.Request] = []
    async with AsyncInterlinkClient(
        "http://interlink.test", "k", transport=_events_service([503, 0], seen)
    ) as client:
        event = await client.events.send("invoice.paid", {}, idempotency_key="inv-1")
    assert event.idempotency_key == "inv-1" and len(seen) == 3
    seen.clear()
    async with AsyncInterlinkClient(
        "http://interlink.test", "k", transport=_events_service([503], seen)
    ) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.events.send("invoice.paid", {})
    assert len(seen) == 1


def test_unreachable_service_raises_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with InterlinkClient(url, "k", max_retries=1) as client, pytest.raises(InterlinkConnectionError) as info:
        client.tenants.list()
    assert info.value.url == url and url in str(info.value)
    assert info.value.correlation_id


def test_non_problem_error_bodies_still_raise_typed_errors() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text="<html>nope</html>"))
    with (
        InterlinkClient("http://interlink.test", "k", transport=transport) as client,
        pytest.raises(NotFoundError) as info,
    ):
        client.keys.get("key_00000000000000000000000000")
    assert info.value.detail == "<html>nope</html>" and info.value.title == "Not Found"


def test_ids_cannot_change_the_route() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404)

    transport = httpx.MockTransport(handler)
    with (
        InterlinkClient("http://interlink.test/base", "k", transport=transport) as client,
        pytest.raises(NotFoundError),
    ):
        client.keys.get("../tenants")
    assert seen[0].url.raw_path == b"/base/v1/keys/..%2Ftenants"


def test_api_key_is_required() -> None:
    with pytest.raises(ValueError, match="api_key"):
        InterlinkClient("http://127.0.0.1:8000", "")


def test_replays_are_retried_on_503_since_the_request_id_makes_them_idempotent() -> None:
    seen: list[httpx.Request] = []
    with (
        InterlinkClient(
            "http://interlink.test", "k", transport=_events_service([503, 503], seen), max_retries=1
        ) as client,
        pytest.raises(ServiceUnavailableError),
    ):
        client.replays.create("replay-1", delivery_id="del_00000000000000000000000000")
    assert [r.url.path for r in seen] == ["/v1/replays", "/v1/replays"]
