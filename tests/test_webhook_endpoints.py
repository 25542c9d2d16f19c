"""Endpoints over REST: validation (naming fields), SSRF guard, secrets, rotation, state, audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.crypto import CryptoError
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.runtime import Runtime
from interlink.webhooks import signing
from interlink.webhooks.endpoints import active_secrets, active_secrets_many, secret_associated_data
from interlink.webhooks.models import WebhookEndpoint, WebhookEndpointSecret
from tests.conftest import auth, make_settings

HOOK = "http://127.0.0.1:9/hooks/in"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=["127.0.0.0/8"])


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def _create(client: httpx.AsyncClient, auth_headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/endpoints", json={"url": HOOK, **body}, headers=auth_headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _audit(runtime: Runtime, resource_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.resource_id == resource_id).order_by(AuditEvent.id)
        )
        return list(rows.all())


async def _secret_rows(runtime: Runtime, endpoint_id: str) -> list[WebhookEndpointSecret]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(WebhookEndpointSecret)
            .where(WebhookEndpointSecret.endpoint_id == endpoint_id)
            .order_by(WebhookEndpointSecret.id)
        )
        return list(rows.all())


async def _active(runtime: Runtime, endpoint_id: str) -> list[str]:
    async with runtime.db.unit_of_work(write=False) as session:
        return await active_secrets(session, runtime.keyring, endpoint_id)


async def test_create_show_list_and_defaults(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await _create(
        client,
        admin_headers,
        description="Billing receiver",
        eventTypes=["invoice.paid"],
        filter={"payload.amount": {"$gte": 100}},
        transformation='{"id": payload.id, "kind": type}',
        headers={"X-Team": "billing", "Authorization": "Bearer receiver-token-123"},
        retrySchedule=[5, 60, 3600],
        rateLimitPerSecond=25,
        batchConfig={"maxCount": 50, "maxBytes": 65536, "maxWaitSeconds": 2},
        retention="DAYS_7",
        metadata={"owner": "billing"},
    )
    assert made["id"].startswith("ep_")
    assert made["tenantId"] == admin.tenant_id
    assert made["url"] == HOOK and made["channel"] == "WEBHOOK" and made["channelConfig"] == {}
    assert made["enabled"] is True and made["disabledReason"] is None and made["consecutiveFailures"] == 0
    assert made["timeoutSeconds"] == 15.0 and made["maxInFlight"] == 16
    assert made["batchConfig"] == {"maxCount": 50, "maxBytes": 65536, "maxWaitSeconds": 2.0}
    assert made["retrySchedule"] == [5, 60, 3600] and made["retention"] == "DAYS_7"
    assert made["headers"] == {"X-Team": "billing", "Authorization": "[redacted]"}
    assert "secret" not in json.dumps(made).lower()

    shown = await client.get(f"/v1/endpoints/{made['id']}", headers=admin_headers)
    listed = await client.get("/v1/endpoints", headers=admin_headers)
    assert shown.json() == made
    assert [e["id"] for e in listed.json()["data"]] == [made["id"]]
    for response in (shown, listed):
        assert "whsec_" not in response.text
        assert "receiver-token-123" not in response.text

    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(WebhookEndpoint, made["id"])
        assert row is not None
        assert row.headers["Authorization"] == "Bearer receiver-token-123"  # stored, only redacted on output

    created = (await _audit(runtime, made["id"]))[0]
    assert created.action == "endpoint.created"
    assert created.changes["url"] == {"old": None, "new": HOOK}
    assert created.changes["headerNames"]["new"] == ["Authorization", "X-Team"]
    assert "receiver-token-123" not in json.dumps(created.changes)
    assert created.changes["secretId"]["new"].startswith("whs_")

    minimal = await _create(client, admin_headers)
    assert minimal["eventTypes"] == [] and minimal["filter"] is None and minimal["retrySchedule"] is None
    page = (await client.get("/v1/endpoints?limit=1", headers=admin_headers)).json()
    assert [e["id"] for e in page["data"]] == [minimal["id"]] and page["hasMore"] is True
    rest = (await client.get(f"/v1/endpoints?after={page['nextCursor']}", headers=admin_headers)).json()
    assert [e["id"] for e in rest["data"]] == [made["id"]]


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://127.0.0.1/x"}, "url"),
    ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": None}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "http://10.0.0.1/x"}, "url"),
    ({"timeoutSeconds": 0}, "timeoutSeconds"),
    ({"timeoutSeconds": 61}, "timeoutSeconds"),
    ({"retrySchedule": [0]}, "retrySchedule"),
    ({"retrySchedule": [7 * 86_400 + 1]}, "retrySchedule"),
    ({"retrySchedule": [5] * 31}, "retrySchedule"),
    ({"rateLimitPerSecond": 0}, "rateLimitPerSecond"),
    ({"maxInFlight": 0}, "maxInFlight"),
    ({"maxInFlight": 1001}, "maxInFlight"),
    ({"batchConfig": {"maxCount": 0, "maxBytes": 2048, "maxWaitSeconds": 1}}, "batchConfig.maxCount"),
    ({"batchConfig": {"maxCount": 1}}, "batchConfig.maxBytes"),
    ({"filter": {"payload.amount": {"$bogus": 1}}}, "filter"),
    ({"transformation": '{"a": payload.'}, "transformation"),
    ({"headers": {"Connection": "close"}}, "headers"),
    ({"headers": {"Transfer-Encoding": "chunked"}}, "headers"),
    ({"headers": {"webhook-signature": "v1,forged"}}, "headers"),
    ({"headers": {"Bad Header": "x"}}, "headers"),
    ({"headers": {"X-Inject": "a\r\nX-Other: b"}}, "headers"),
    ({"headers": {f"X-H{i}": "v" for i in range(21)}}, "headers"),
    ({"headers": {"X-Big": "v" * 1001}}, "headers"),
    ({"eventTypes": ["has space"]}, "eventTypes"),
    ({"retention": "DAYS_2"}, "retention"),
    ({"channel": "PIGEON"}, "channel"),
    ({"channelConfig": {"to": ["a@example.com"]}}, "channelConfig"),
    ({"channel": "EMAIL", "url": None}, "channelConfig.to"),
    ({"channel": "EMAIL", "url": None, "channelConfig": {"to": ["not-an-address"]}}, "channelConfig.to"),
    (  # 20 long addresses: together longer than the stored url may be
        {
            "channel": "EMAIL",
            "url": None,
            "channelConfig": {"to": [f"{'x' * 110}{i}@example.com" for i in range(20)]},
        },
        "channelConfig.to",
    ),
    (
        {"channel": "EMAIL", "url": None, "channelConfig": {"to": ["a@example.com\r\nBcc: x@y.z"]}},
        "channelConfig.to",
    ),
    (
        {
            "channel": "EMAIL",
            "url": None,
            "channelConfig": {"to": ["a@example.com"], "subjectTemplate": "a\nb"},
        },
        "channelConfig.subjectTemplate",
    ),
    ({"channel": "EMAIL", "channelConfig": {"to": ["a@example.com"]}}, "url"),
    ({"channel": "SLACK", "channelConfig": {"webhook": "x"}}, "channelConfig"),
    ({"metadata": {"big": "x" * 20_000}}, "metadata"),
    ({"surprise": True}, "surprise"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
async def test_bad_input_names_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], overrides: dict[str, Any], field: str
) -> None:
    body = {"url": HOOK, **overrides}
    if body["url"] is None:
        del body["url"]
    response = await client.post("/v1/endpoints", json=body, headers=admin_headers)
    assert field in _fields(response), response.text


async def test_loopback_is_refused_without_allowed_networks(
    db_url: str, tmp_path: Path, admin: BootstrapResult, client: httpx.AsyncClient
) -> None:
    strict = make_settings(db_url, tmp_path / "strict")
    runtime = Runtime(strict)
    transport = httpx.ASGITransport(
        app=create_app(strict, runtime, access_log=False), client=("127.0.0.1", 1)
    )
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as other:
            refused = await other.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key))
            assert _fields(refused) == ["url"]
            assert refused.json()["reason"] == "loopback"
            assert "127.0.0.1" in refused.json()["detail"]
            public = await other.post(
                "/v1/endpoints", json={"url": "https://8.8.8.8/hooks"}, headers=auth(admin.key)
            )
            assert public.status_code == 201, public.text
    finally:
        await runtime.stop()
    # The same URL passes where the operator allowed loopback.
    assert (
        await client.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key))
    ).status_code == 201


async def test_secret_is_encrypted_bound_and_read_with_audit(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await _create(client, admin_headers)
    read = await client.get(f"/v1/endpoints/{made['id']}/secret", headers=admin_headers)
    assert read.status_code == 200, read.text
    secret = read.json()
    assert secret["endpointId"] == made["id"] and secret["secretId"].startswith("whs_")
    assert secret["key"].startswith("whsec_") and len(signing.secret_bytes(secret["key"])) == 32
    assert secret["previousExpiresAt"] is None
    again = await client.get(f"/v1/endpoints/{made['id']}/secret", headers=admin_headers)
    assert again.json()["key"] == secret["key"]

    rows = await _secret_rows(runtime, made["id"])
    assert len(rows) == 1
    row = rows[0]
    assert secret["key"] not in row.ciphertext and row.ciphertext.startswith("v1.")
    assert row.key_id == runtime.keyring.primary_kid and row.tenant_id == admin.tenant_id
    plain = runtime.keyring.decrypt(
        row.ciphertext, secret_associated_data(admin.tenant_id, made["id"], row.id)
    )
    assert plain.decode() == secret["key"]
    with pytest.raises(CryptoError):  # bound to its endpoint: a copied ciphertext does not decrypt
        runtime.keyring.decrypt(row.ciphertext, secret_associated_data(admin.tenant_id, "ep_other", row.id))

    reads = [e for e in await _audit(runtime, made["id"]) if e.action == "endpoint.secret_read"]
    assert len(reads) == 2
    assert reads[0].changes == {"secretId": {"old": None, "new": row.id}}
    assert reads[0].actor_key_id == admin.key_id
    async with runtime.db.unit_of_work(write=False) as session:
        every_change = await session.scalars(sa.select(AuditEvent.changes))
        assert secret["key"] not in json.dumps(list(every_change.all()))

    reader = await client.post(
        "/v1/keys", json={"name": "reader", "scopes": ["webhooks:read"]}, headers=admin_headers
    )
    reader_key = reader.json()["key"]
    assert (await client.get(f"/v1/endpoints/{made['id']}", headers=auth(reader_key))).status_code == 200
    denied = await client.get(f"/v1/endpoints/{made['id']}/secret", headers=auth(reader_key))
    assert denied.status_code == 403
    assert "whsec_" not in denied.text


async def test_rotation_keeps_both_secrets_signing_for_a_day(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await _create(client, admin_headers)
    other = await _create(client, admin_headers)
    old = (await client.get(f"/v1/endpoints/{made['id']}/secret", headers=admin_headers)).json()

    rotated = await client.post(f"/v1/endpoints/{made['id']}/secret/rotate", headers=admin_headers)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["key"].startswith("whsec_") and new["key"] != old["key"]
    assert new["previousExpiresAt"] is not None
    current = (await client.get(f"/v1/endpoints/{made['id']}/secret", headers=admin_headers)).json()
    assert current["key"] == new["key"]

    assert await _active(runtime, made["id"]) == [new["key"], old["key"]]  # newest first
    headers = signing.sign(await _active(runtime, made["id"]), "msg_1", 1_700_000_000, b"{}")
    assert len(headers.signature.split(" ")) == 2
    for accepted in (old["key"], new["key"]):  # a receiver holding either secret verifies
        signing.verify([accepted], headers.as_dict(), b"{}", now=1_700_000_000)

    async with runtime.db.unit_of_work(write=False) as session:
        many = await active_secrets_many(session, runtime.keyring, [made["id"], other["id"]])
    assert many[made["id"]] == [new["key"], old["key"]] and len(many[other["id"]]) == 1

    rotation = [e for e in await _audit(runtime, made["id"]) if e.action == "endpoint.secret_rotated"]
    assert len(rotation) == 1
    assert rotation[0].changes["secretId"] == {"old": old["secretId"], "new": new["secretId"]}
    assert old["key"] not in json.dumps(rotation[0].changes) and new["key"] not in json.dumps(
        rotation[0].changes
    )

    clock.shift(timedelta(hours=23))
    assert await _active(runtime, made["id"]) == [new["key"], old["key"]]
    clock.shift(timedelta(hours=2))
    assert await _active(runtime, made["id"]) == [new["key"]]

    # A second rotation shortens nothing that already expires sooner, and never extends it.
    third = (await client.post(f"/v1/endpoints/{made['id']}/secret/rotate", headers=admin_headers)).json()
    assert await _active(runtime, made["id"]) == [third["key"], new["key"]]


async def test_update_revalidates_and_audits(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await _create(
        client,
        admin_headers,
        filter={"type": "invoice.paid"},
        transformation="payload",
        headers={"X-Api-Key": "k-123", "X-Team": "a"},
    )
    url = f"/v1/endpoints/{made['id']}"
    changed = await client.patch(
        url,
        json={"filter": None, "transformation": None, "timeoutSeconds": 30, "description": "now described"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    info = changed.json()
    assert info["filter"] is None and info["transformation"] is None
    assert info["timeoutSeconds"] == 30 and info["description"] == "now described"
    assert info["url"] == HOOK and info["headers"] == {"X-Api-Key": "[redacted]", "X-Team": "a"}

    private = await client.patch(url, json={"url": "http://192.168.1.10/hook"}, headers=admin_headers)
    assert _fields(private) == ["url"]
    bad_filter = await client.patch(url, json={"filter": {"$or": "nope"}}, headers=admin_headers)
    assert _fields(bad_filter) == ["filter"]
    null_timeout = await client.patch(url, json={"timeoutSeconds": None}, headers=admin_headers)
    assert _fields(null_timeout) == ["timeoutSeconds"]
    assert (await client.get(url, headers=admin_headers)).json() == info  # refused changes changed nothing

    headers_changed = await client.patch(url, json={"headers": {"X-Api-Key": "k-456"}}, headers=admin_headers)
    assert headers_changed.status_code == 200
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(WebhookEndpoint, made["id"])
        assert row is not None and row.headers == {"X-Api-Key": "k-456"}

    to_email = await client.patch(
        url,
        json={"channel": "EMAIL", "url": None, "channelConfig": {"to": ["ops@example.com"]}},
        headers=admin_headers,
    )
    assert to_email.status_code == 200, to_email.text
    assert to_email.json()["url"] == "mailto:ops@example.com" and to_email.json()["channel"] == "EMAIL"
    back = await client.patch(url, json={"channel": "WEBHOOK"}, headers=admin_headers)
    assert _fields(back) == ["url"]  # mailto: is not a webhook target
    to_slack = await client.patch(
        url,
        json={"channel": "SLACK", "url": "http://127.0.0.1:9/slack", "channelConfig": {"username": "bot"}},
        headers=admin_headers,
    )
    assert to_slack.status_code == 200, to_slack.text
    assert to_slack.json()["channelConfig"] == {"username": "bot"}

    updates = [e for e in await _audit(runtime, made["id"]) if e.action == "endpoint.updated"]
    assert len(updates) == 4
    assert updates[0].changes["filter"] == {"old": {"type": "invoice.paid"}, "new": None}
    assert updates[0].changes["timeoutSeconds"] == {"old": 15.0, "new": 30.0}
    assert updates[1].changes == {"headerNames": {"old": ["X-Api-Key", "X-Team"], "new": ["X-Api-Key"]}}
    assert updates[2].changes["channel"] == {"old": "WEBHOOK", "new": "EMAIL"}
    everything = json.dumps([e.changes for e in await _audit(runtime, made["id"])])
    assert "k-123" not in everything and "k-456" not in everything


async def test_disable_enable_and_delete(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await _create(client, admin_headers)
    url = f"/v1/endpoints/{made['id']}"
    disabled = await client.post(
        f"{url}/disable", json={"reason": "receiver migrating"}, headers=admin_headers
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabledReason"] == "receiver migrating" and disabled.json()["disabledAt"]
    no_body = await client.post(f"{url}/disable", headers=admin_headers)
    assert no_body.status_code == 200 and no_body.json()["disabledReason"] == "disabled manually"
    reserved = await client.post(f"{url}/disable", json={"reason": "deleted"}, headers=admin_headers)
    assert _fields(reserved) == ["reason"]
    only_disabled = (await client.get("/v1/endpoints?enabled=false", headers=admin_headers)).json()["data"]
    assert [e["id"] for e in only_disabled] == [made["id"]]

    async with runtime.db.unit_of_work() as session:  # what the delivery side records on failures
        row = await session.get(WebhookEndpoint, made["id"])
        assert row is not None
        row.consecutive_failures = 7
        row.failing_since = clock.utcnow() - timedelta(days=2)
    enabled = await client.post(f"{url}/enable", headers=admin_headers)
    assert enabled.status_code == 200
    body = enabled.json()
    assert body["enabled"] is True and body["disabledReason"] is None and body["disabledAt"] is None
    assert body["consecutiveFailures"] == 0 and body["failingSince"] is None

    deleted = await client.delete(url, headers=admin_headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin_headers)).status_code == 404
    assert (await client.get(f"{url}/secret", headers=admin_headers)).status_code == 404
    assert (await client.post(f"{url}/enable", headers=admin_headers)).status_code == 404
    assert (await client.delete(url, headers=admin_headers)).status_code == 404
    assert made["id"] not in (await client.get("/v1/endpoints", headers=admin_headers)).text
    assert await _active(runtime, made["id"]) == []  # its secrets no longer sign

    actions = [e.action for e in await _audit(runtime, made["id"])]
    assert actions == [
        "endpoint.created",
        "endpoint.disabled",
        "endpoint.disabled",
        "endpoint.enabled",
        "endpoint.deleted",
    ]
    enabled_row = next(e for e in await _audit(runtime, made["id"]) if e.action == "endpoint.enabled")
    assert enabled_row.changes["consecutiveFailures"] == {"old": 7, "new": 0}


async def test_transformation_preview(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    made = await _create(client, admin_headers, transformation='{"invoice": payload.id, "event": type}')
    url = f"/v1/endpoints/{made['id']}/transformation/test"
    sample = {"payload": {"id": "inv_1", "amount": 120}, "eventType": "invoice.paid"}

    own = await client.post(url, json=sample, headers=admin_headers)
    assert own.status_code == 200, own.text
    assert own.json() == {"output": {"invoice": "inv_1", "event": "invoice.paid"}}

    other = await client.post(
        url,
        json={**sample, "template": "payload.amount / 100", "metadata": {"source": "test"}},
        headers=admin_headers,
    )
    assert other.json() == {"output": 1.2}
    with_metadata = await client.post(
        url, json={**sample, "template": "metadata.source"}, headers=admin_headers
    )
    assert with_metadata.json() == {"output": None}

    broken = await client.post(url, json={**sample, "template": "payload.("}, headers=admin_headers)
    assert _fields(broken) == ["template"]
    failing = await client.post(
        url, json={**sample, "template": '$error("no invoice")'}, headers=admin_headers
    )
    assert _fields(failing) == ["template"]
    assert "no invoice" in failing.json()["detail"]

    plain = await _create(client, admin_headers)
    nothing = await client.post(
        f"/v1/endpoints/{plain['id']}/transformation/test", json=sample, headers=admin_headers
    )
    assert _fields(nothing) == ["template"]
    missing = await client.post(
        "/v1/endpoints/ep_01HZZZZZZZZZZZZZZZZZZZZZZZ/transformation/test", json=sample, headers=admin_headers
    )
    assert missing.status_code == 404


async def test_a_slow_resolver_never_holds_the_write_lock(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SSRF guard's DNS lookup runs before the write transaction: while the resolver is stuck,
    other writers (SQLite has one database-wide write lock) still commit."""
    import asyncio
    import socket

    loop = asyncio.get_running_loop()
    resolving = asyncio.Event()
    answer = asyncio.Event()
    lookups: list[str] = []

    async def slow_getaddrinfo(host: str, port: int, **_kwargs: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        resolving.set()
        await answer.wait()
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", slow_getaddrinfo)
    create = asyncio.create_task(
        client.post("/v1/endpoints", json={"url": "http://hooks.example:9/in"}, headers=admin_headers)
    )
    await asyncio.wait_for(resolving.wait(), 10)
    other = await asyncio.wait_for(
        client.post("/v1/event-types", json={"name": "lock.probe"}, headers=admin_headers), 10
    )
    assert other.status_code == 201, other.text
    assert not create.done()
    answer.set()
    made = await asyncio.wait_for(create, 10)
    assert made.status_code == 201, made.text
    assert lookups == ["hooks.example"]  # vetted once, not resolved again inside the transaction
    resolving.clear()
    updated = await asyncio.wait_for(
        client.patch(
            f"/v1/endpoints/{made.json()['id']}",
            json={"url": "http://other.example:9/in"},
            headers=admin_headers,
        ),
        10,
    )
    assert updated.status_code == 200, updated.text
    assert lookups == ["hooks.example", "other.example"]
