"""The dashboard's webhook pages over plain HTTP, on SQLite and PostgreSQL.

Endpoints, event types, events and deliveries: CSRF on every form, the REST scopes on every page,
other tenants' ids answering 404, service validation errors shown next to the field, and the
delivery log with attempts recorded against a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.bootstrap import BootstrapResult
from interlink.core.actor import system_actor
from interlink.core.settings import Settings
from interlink.http.routers.ui_webhooks import format_retry_schedule, parse_retry_schedule
from interlink.runtime import Runtime
from interlink.webhooks.endpoints import Endpoints, decrypt_target
from tests.conftest import auth, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)
from tests.test_ui_http import create_key, csrf_from, sign_in

WEBHOOK_SCOPES = ["webhooks:read", "webhooks:write", "events:read", "events:write"]
ENDPOINT_ID_RE = re.compile(r"/ui/endpoints/(ep_[A-Za-z0-9]+)\?notice=created")
HOOK = "http://127.0.0.1:9/hooks/a"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Loopback targets allowed: the receiver (and the unreachable port 9) live on 127.0.0.1."""
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=["127.0.0.0/8"])


def endpoint_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": token,
        "channel": "WEBHOOK",
        "url": HOOK,
        "timeout_seconds": "15",
        "max_in_flight": "16",
        "retention": "DAYS_30",
    }
    form.update(fields)
    return form


async def create_endpoint_via_ui(client: httpx.AsyncClient, token: str, **fields: Any) -> str:
    made = await client.post("/ui/endpoints", data=endpoint_form(token, **fields))
    assert made.status_code == 303, made.text
    match = ENDPOINT_ID_RE.fullmatch(made.headers["location"])
    assert match, made.headers["location"]
    return match.group(1)


async def api_endpoint(client: httpx.AsyncClient, key: str, endpoint_id: str) -> httpx.Response:
    return await client.get(f"/v1/endpoints/{endpoint_id}", headers=auth(key))


def field_error(page: str, field: str) -> str:
    """The text shown under a form field (``<p class="field-error" id="<field>-error">``)."""
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', page)
    assert match, f"no error shown for {field}"
    return html.unescape(match.group(1))


async def audit_actions(client: httpx.AsyncClient, key: str, resource_id: str) -> list[str]:
    trail = await client.get("/v1/audit-events", params={"resourceId": resource_id}, headers=auth(key))
    assert trail.status_code == 200, trail.text
    return [e["action"] for e in trail.json()["data"]]


# -- sessions, scopes and CSRF ---------------------------------------------------------------------


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/ui/endpoints", "/ui/endpoints/new", "/ui/event-types", "/ui/deliveries", "/ui/events"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login?reason=missing"


async def test_a_key_without_webhook_scopes_sees_and_does_nothing(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    endpoint = await client.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key))
    endpoint_id = endpoint.json()["id"]
    keys_only = await create_key(client, admin.key, ["keys:read", "tenants:read"])
    token = await sign_in(client, keys_only["key"])
    overview = await client.get("/ui")
    for link in ('href="/ui/endpoints"', 'href="/ui/deliveries"', 'href="/ui/events"'):
        assert link not in overview.text
    for path in (
        "/ui/endpoints",
        f"/ui/endpoints/{endpoint_id}",
        "/ui/endpoints/new",
        "/ui/event-types",
        "/ui/deliveries",
        "/ui/events",
    ):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "lacks the scope" in response.text, path
        assert endpoint_id not in response.text or path.endswith(endpoint_id)
    refused = await client.post("/ui/endpoints", data=endpoint_form(token, url="http://127.0.0.1:9/x"))
    assert refused.status_code == 403
    for action in ("secret", "secret/rotate", "disable", "delete"):
        response = await client.post(f"/ui/endpoints/{endpoint_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403, action
        assert "whsec_" not in response.text
    listed = await client.get("/v1/endpoints", headers=auth(admin.key))
    assert [e["id"] for e in listed.json()["data"]] == [endpoint_id]
    assert (await api_endpoint(client, admin.key, endpoint_id)).json()["enabled"] is True


async def test_read_scope_reads_but_cannot_change(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    endpoint = await client.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key))
    endpoint_id = endpoint.json()["id"]
    reader = await create_key(client, admin.key, ["webhooks:read"])
    login = await client.get("/ui/login")
    done = await client.post(
        "/ui/login", data={"api_key": reader["key"], "csrf_token": csrf_from(login.text)}
    )
    assert done.headers["location"] == "/ui/endpoints"  # the first page its scopes allow
    page = await client.get(f"/ui/endpoints/{endpoint_id}")
    assert page.status_code == 200
    token = csrf_from(page.text)
    assert "Reveal signing secret" not in page.text and "Delete endpoint" not in page.text
    assert "Create endpoint" not in (await client.get("/ui/endpoints")).text
    assert (await client.get("/ui/events")).status_code == 403  # events:read is another scope
    for action in ("secret", "disable"):
        response = await client.post(f"/ui/endpoints/{endpoint_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403, action
        assert "webhooks:write" in response.text
    assert "endpoint.secret_read" not in await audit_actions(client, admin.key, endpoint_id)


async def test_forms_without_a_valid_csrf_token_change_nothing(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    endpoint = await client.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key))
    endpoint_id = endpoint.json()["id"]
    token = await sign_in(client, admin.key)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://interlink.test")
    async with other:
        foreign = csrf_from((await other.get("/ui/login")).text)
    posts = {
        "/ui/endpoints": endpoint_form("", url="http://127.0.0.1:9/sneaky"),
        f"/ui/endpoints/{endpoint_id}/disable": {"reason": "sneaky"},
        f"/ui/endpoints/{endpoint_id}/delete": {"confirm": "yes"},
        f"/ui/endpoints/{endpoint_id}/secret": {},
        f"/ui/endpoints/{endpoint_id}/secret/rotate": {},
        "/ui/event-types": {"name": "sneaky.created"},
    }
    for path, body in posts.items():
        body = {k: v for k, v in body.items() if k != "csrf_token"}
        for bad in ({}, {"csrf_token": "0" * 64}, {"csrf_token": foreign}):
            response = await client.post(path, data={**body, **bad})
            assert response.status_code == 403, (path, bad)
            assert "expired or did not come from this dashboard" in response.text
            assert "whsec_" not in response.text
    assert (await client.post("/ui/event-types", json={"name": "x", "csrf_token": token})).status_code == 415
    shown = (await api_endpoint(client, admin.key, endpoint_id)).json()
    assert shown["enabled"] is True
    listed = await client.get("/v1/endpoints", headers=auth(admin.key))
    assert len(listed.json()["data"]) == 1
    assert (await client.get("/v1/event-types", headers=auth(admin.key))).json()["data"] == []
    actions = await audit_actions(client, admin.key, endpoint_id)
    assert "endpoint.secret_read" not in actions and "endpoint.secret_rotated" not in actions


# -- endpoints -------------------------------------------------------------------------------------


async def test_endpoint_lifecycle_through_forms(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime
) -> None:
    token = await sign_in(client, admin.key)
    new = await client.get("/ui/endpoints/new")
    assert new.status_code == 200 and 'name="url"' in new.text
    endpoint_id = await create_endpoint_via_ui(
        client,
        token,
        description="billing hooks",
        event_types_extra="invoice.paid, invoice.voided",
        filter='{"payload.amount": {"$gte": 100}}',
        transformation='{"kind": type, "total": payload.amount}',
        headers="X-Team: billing\nAuthorization: Bearer s3cr3t-token",
        timeout_seconds="7.5",
        retry_schedule="5s, 5m, 2h",
        max_in_flight="4",
        rate_limit_per_second="2.5",
        retention="DAYS_7",
    )
    made = (await api_endpoint(client, admin.key, endpoint_id)).json()
    assert made["url"] == HOOK and made["description"] == "billing hooks"
    assert made["eventTypes"] == ["invoice.paid", "invoice.voided"]
    assert made["filter"] == {"payload.amount": {"$gte": 100}}
    assert made["transformation"] == '{"kind": type, "total": payload.amount}'
    assert made["headers"] == {"X-Team": "billing", "Authorization": "[redacted]"}
    assert made["timeoutSeconds"] == 7.5 and made["maxInFlight"] == 4
    assert made["retrySchedule"] == [5, 300, 7200] and made["rateLimitPerSecond"] == 2.5
    assert made["retention"] == "DAYS_7"

    detail = await client.get(f"/ui/endpoints/{endpoint_id}?notice=created")
    assert detail.status_code == 200
    assert "Endpoint created" in detail.text
    assert "s3cr3t-token" not in detail.text and "Authorization: [redacted]" in detail.text
    assert "whsec_" not in detail.text

    listed = await client.get("/ui/endpoints")
    assert f'data-endpoint-id="{endpoint_id}"' in listed.text and "billing hooks" in listed.text

    revealed = await client.post(f"/ui/endpoints/{endpoint_id}/secret", data={"csrf_token": token})
    assert revealed.status_code == 200
    assert revealed.headers["cache-control"] == "no-store"
    secret = re.search(
        r'id="signing-secret" type="text" readonly value="(whsec_[A-Za-z0-9+/=]+)"', revealed.text
    )
    assert secret
    api_secret = await client.get(f"/v1/endpoints/{endpoint_id}/secret", headers=auth(admin.key))
    assert api_secret.json()["key"] == secret.group(1)
    assert "endpoint.secret_read" in await audit_actions(client, admin.key, endpoint_id)
    assert secret.group(1) not in (await client.get(f"/ui/endpoints/{endpoint_id}")).text

    rotated = await client.post(f"/ui/endpoints/{endpoint_id}/secret/rotate", data={"csrf_token": token})
    assert rotated.status_code == 201
    assert "New signing secret" in rotated.text and "previous secret keeps signing until" in rotated.text
    new_secret = re.search(r'value="(whsec_[A-Za-z0-9+/=]+)"', rotated.text)
    assert new_secret and new_secret.group(1) != secret.group(1)
    assert "endpoint.secret_rotated" in await audit_actions(client, admin.key, endpoint_id)

    too_long = await client.post(
        f"/ui/endpoints/{endpoint_id}/disable", data={"reason": "x" * 501, "csrf_token": token}
    )
    assert too_long.status_code == 422
    assert "at most 500 characters" in field_error(too_long.text, "reason")
    assert (await api_endpoint(client, admin.key, endpoint_id)).json()["enabled"] is True
    disabled = await client.post(
        f"/ui/endpoints/{endpoint_id}/disable", data={"reason": "receiver migration", "csrf_token": token}
    )
    assert disabled.status_code == 303
    assert disabled.headers["location"] == f"/ui/endpoints/{endpoint_id}?notice=disabled"
    page = await client.get(disabled.headers["location"])
    assert '<dd id="endpoint-state">disabled</dd>' in page.text
    assert '<span id="disabled-reason">receiver migration</span>' in page.text
    assert "Enable endpoint" in page.text
    shown = (await api_endpoint(client, admin.key, endpoint_id)).json()
    assert shown["enabled"] is False and shown["disabledReason"] == "receiver migration"

    enabled = await client.post(f"/ui/endpoints/{endpoint_id}/enable", data={"csrf_token": token})
    assert enabled.status_code == 303
    assert '<dd id="endpoint-state">enabled</dd>' in (await client.get(enabled.headers["location"])).text

    # Edit: the redacted header value comes back as shown and keeps the stored one.
    edit = await client.get(f"/ui/endpoints/{endpoint_id}/edit")
    assert edit.status_code == 200
    assert "Authorization: [redacted]" in edit.text and "s3cr3t-token" not in edit.text
    assert 'value="5s, 5m, 2h"' in edit.text
    saved = await client.post(
        f"/ui/endpoints/{endpoint_id}/edit",
        data=endpoint_form(
            token,
            description="billing hooks v2",
            event_types=["invoice.paid"],
            filter='{"payload.amount": {"$gte": 100}}',
            headers="X-Team: payments\nAuthorization: [redacted]",
            retry_schedule="",
        ),
    )
    assert saved.status_code == 303, saved.text
    async with runtime.db.unit_of_work(write=False) as session:
        row = await Endpoints(runtime.keyring).get(session, system_actor(admin.tenant_id), endpoint_id)
        assert row.headers == {"X-Team": "payments", "Authorization": "Bearer s3cr3t-token"}
        assert row.description == "billing hooks v2"
        assert row.event_types == ["invoice.paid"] and row.retry_schedule is None
        assert row.filter == {"payload.amount": {"$gte": 100}} and row.transformation is None

    unconfirmed = await client.post(f"/ui/endpoints/{endpoint_id}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 422
    assert "Tick the box" in field_error(unconfirmed.text, "confirm")
    assert (await api_endpoint(client, admin.key, endpoint_id)).status_code == 200
    deleted = await client.post(
        f"/ui/endpoints/{endpoint_id}/delete", data={"confirm": "yes", "csrf_token": token}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/ui/endpoints?notice=deleted"
    assert "Endpoint deleted" in (await client.get(deleted.headers["location"])).text
    assert (await api_endpoint(client, admin.key, endpoint_id)).status_code == 404
    assert (await client.get(f"/ui/endpoints/{endpoint_id}")).status_code == 404
    actions = await audit_actions(client, admin.key, endpoint_id)
    for action in (
        "endpoint.created",
        "endpoint.disabled",
        "endpoint.enabled",
        "endpoint.updated",
        "endpoint.deleted",
    ):
        assert action in actions


async def test_endpoint_form_shows_validation_errors_next_to_fields(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    await client.post("/v1/event-types", json={"name": "invoice.paid"}, headers=auth(admin.key))
    token = await sign_in(client, admin.key)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"url": ""}, "url", "Enter the URL"),
        ({"url": "ftp://example.com/x"}, "url", "http"),
        ({"url": "http://169.254.169.254/latest"}, "url", "metadata"),
        ({"filter": "{not json"}, "filter", "filter must be a JSON object"),
        ({"filter": "[1, 2]"}, "filter", "filter must be a JSON object"),
        ({"filter": '{"payload.n": {"$eq": NaN}}'}, "filter", "NaN is not a JSON number"),
        ({"filter": '{"payload.n": {"$near": 1}}'}, "filter", "$near"),
        ({"transformation": "payload.("}, "transformation", "transformation is not valid JSONata"),
        ({"headers": "Host: evil.example"}, "headers", "cannot be overridden"),
        ({"headers": "no colon here"}, "headers", "headers line 1"),
        ({"timeout_seconds": "soon"}, "timeoutSeconds", "timeoutSeconds must be a number"),
        ({"timeout_seconds": "inf"}, "timeoutSeconds", "finite"),
        ({"timeout_seconds": "600"}, "timeoutSeconds", "at most 60"),
        ({"max_in_flight": "0"}, "maxInFlight", "at least 1"),
        ({"rate_limit_per_second": "-1"}, "rateLimitPerSecond", "greater than 0"),
        ({"retry_schedule": "5, soon"}, "retrySchedule", "'soon' is not a delay"),
        ({"retry_schedule": "30d"}, "retrySchedule", "at most"),
        ({"event_types_extra": "invoice.unknown"}, "eventTypes", "not registered"),
        ({"channel": "PIGEON"}, "channel", "Choose WEBHOOK, SLACK or EMAIL."),
        ({"channel": "EMAIL", "email_to": ""}, "channelConfig.to", "1 or more email addresses"),
        ({"channel": "EMAIL", "email_to": "not-an-address"}, "channelConfig.to", "is not an email address"),
        ({"channel": "SLACK", "slack_username": "x" * 81}, "channelConfig.username", "1–80 characters"),
        ({"description": "bad\x00byte"}, "description", "NUL"),
        ({"retention": "SOMETIMES"}, "retention", "Choose a retention policy."),
    ]
    for fields, field, text in cases:
        response = await client.post("/ui/endpoints", data=endpoint_form(token, **fields))
        assert response.status_code == 422, (fields, response.status_code)
        assert "text/html" in response.headers["content-type"]
        assert "Traceback" not in response.text
        assert text in field_error(response.text, field), (fields, field_error(response.text, field))
        assert 'aria-invalid="true"' in response.text
    # what was typed is kept
    kept = await client.post(
        "/ui/endpoints", data=endpoint_form(token, description="keep me", filter="{broken", max_in_flight="3")
    )
    assert 'value="keep me"' in kept.text and "{broken</textarea>" in kept.text and 'value="3"' in kept.text
    # several form errors at once, each next to its field
    many = await client.post(
        "/ui/endpoints", data=endpoint_form(token, url="", timeout_seconds="x", filter="[")
    )
    for field in ("url", "timeoutSeconds", "filter"):
        field_error(many.text, field)
    assert (await client.get("/v1/endpoints", headers=auth(admin.key))).json()["data"] == []

    # an EMAIL endpoint needs no url; recipients one per line or comma separated
    email_id = await create_endpoint_via_ui(
        client,
        token,
        channel="EMAIL",
        url="",
        email_to="ops@example.com\nbilling@example.com",
        email_subject="{{type}}",
    )
    made = (await api_endpoint(client, admin.key, email_id)).json()
    assert made["channel"] == "EMAIL" and made["channelConfig"]["to"] == [
        "ops@example.com",
        "billing@example.com",
    ]


async def test_slack_endpoint_shows_what_the_api_shows(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime
) -> None:
    raw = "http://127.0.0.1:9/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
    made = await client.post(
        "/v1/endpoints",
        json={"url": raw, "channel": "SLACK", "channelConfig": {"username": "interlink"}},
        headers=auth(admin.key),
    )
    assert made.status_code == 201, made.text
    endpoint_id = made.json()["id"]
    shown = made.json()["url"]
    await sign_in(client, admin.key)
    token = csrf_from((await client.get("/ui/endpoints")).text)
    assert shown != raw and shown.endswith("/[redacted]")
    for path in (
        "/ui/endpoints",
        f"/ui/endpoints/{endpoint_id}",
        f"/ui/endpoints/{endpoint_id}/edit",
        "/ui/deliveries",
    ):
        page = await client.get(path)
        assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in page.text, path
        if path != "/ui/deliveries":
            assert shown in page.text, path
    # saving the form as shown keeps the stored url
    saved = await client.post(
        f"/ui/endpoints/{endpoint_id}/edit",
        data=endpoint_form(token, channel="SLACK", url=shown, slack_username="bot", description="alerts"),
    )
    assert saved.status_code == 303, saved.text
    async with runtime.db.unit_of_work(write=False) as session:
        row = await Endpoints(runtime.keyring).get(session, system_actor(admin.tenant_id), endpoint_id)
    assert decrypt_target(runtime.keyring, row) == raw
    assert row.channel_config == {"username": "bot"} and row.description == "alerts"


# -- event types -----------------------------------------------------------------------------------


async def test_event_types_register_deprecate_and_restore(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    token = await sign_in(client, admin.key)
    assert "No event types registered" in (await client.get("/ui/event-types")).text
    schema = '{"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}'
    made = await client.post(
        "/ui/event-types",
        data={
            "name": "invoice.paid",
            "description": "An invoice was paid",
            "schema": schema,
            "csrf_token": token,
        },
    )
    assert made.status_code == 303, made.text
    type_id = made.headers["location"].split("/")[-1].split("?")[0]
    detail = await client.get(made.headers["location"])
    assert "Event type registered" in detail.text and "&#34;required&#34;" in detail.text
    assert '<dd id="event-type-state">current</dd>' in detail.text
    listed = await client.get("/ui/event-types")
    assert f'data-event-type-id="{type_id}"' in listed.text

    # the schema is enforced on ingest
    refused = await client.post(
        "/v1/events", json={"type": "invoice.paid", "payload": {"amount": "ten"}}, headers=auth(admin.key)
    )
    assert refused.status_code == 422

    cases = [
        ({"name": ""}, "name", "Enter a name"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"name": "invoice.paid"}, "name", "exists already"),
        ({"name": "x.y", "schema": "{oops"}, "schema", "schema must be a JSON object"),
        ({"name": "x.y", "schema": '{"type": "nonsense"}'}, "schema", "not a valid JSON Schema"),
        ({"name": "x.y", "schema": '{"$ref": "https://example.com/s.json"}'}, "schema", "local references"),
        ({"name": "x.y", "description": "d" * 1001}, "description", "at most 1000"),
    ]
    for fields, field, text in cases:
        response = await client.post("/ui/event-types", data={**fields, "csrf_token": token})
        assert response.status_code in (409, 422), fields
        assert text in field_error(response.text, field), fields

    deprecated = await client.post(f"/ui/event-types/{type_id}/deprecate", data={"csrf_token": token})
    assert deprecated.status_code == 303
    page = await client.get(deprecated.headers["location"])
    assert '<dd id="event-type-state">deprecated</dd>' in page.text and "Restore event type" in page.text
    api = await client.get(f"/v1/event-types/{type_id}", headers=auth(admin.key))
    assert api.json()["deprecated"] is True
    only_current = await client.get("/ui/event-types", params={"state": "current"})
    assert type_id not in only_current.text
    assert type_id in (await client.get("/ui/event-types", params={"state": "deprecated"})).text
    assert (await client.get("/ui/event-types", params={"state": "sometimes"})).status_code == 422
    restored = await client.post(f"/ui/event-types/{type_id}/restore", data={"csrf_token": token})
    assert restored.status_code == 303
    assert (await client.get(f"/v1/event-types/{type_id}", headers=auth(admin.key))).json()[
        "deprecated"
    ] is False
    actions = await audit_actions(client, admin.key, type_id)
    assert {"event_type.created", "event_type.deprecated", "event_type.undeprecated"} <= set(actions)


# -- deliveries and events -------------------------------------------------------------------------


async def test_delivery_log_filters_attempts_and_retry(
    client: httpx.AsyncClient, admin: BootstrapResult, receiver: Receiver
) -> None:
    failing = receiver.script("/hooks/failing", Answer(503, body="down for maintenance"), Answer(200))
    healthy = receiver.script("/hooks/healthy")
    headers = auth(admin.key)
    first = (await client.post("/v1/endpoints", json={"url": failing}, headers=headers)).json()["id"]
    second = (await client.post("/v1/endpoints", json={"url": healthy}, headers=headers)).json()["id"]
    paid = await client.post(
        "/v1/events",
        json={"type": "invoice.paid", "payload": {"amount": 42}, "immediate": True, "endpointIds": [first]},
        headers=headers,
    )
    assert paid.status_code == 201, paid.text
    voided = await client.post(
        "/v1/events",
        json={"type": "invoice.voided", "payload": {"n": 1}, "immediate": True, "endpointIds": [second]},
        headers=headers,
    )
    [failed_delivery] = paid.json()["deliveries"]
    [ok_delivery] = voided.json()["deliveries"]
    assert failed_delivery["status"] == "RETRYING" and ok_delivery["status"] == "DELIVERED"

    await sign_in(client, admin.key)
    everything = await client.get("/ui/deliveries")
    assert failed_delivery["id"] in everything.text and ok_delivery["id"] in everything.text
    filters: list[tuple[dict[str, str], set[str]]] = [
        ({"endpointId": first}, {failed_delivery["id"]}),
        ({"eventType": "invoice.voided"}, {ok_delivery["id"]}),
        ({"status": "RETRYING"}, {failed_delivery["id"]}),
        ({"status": "DELIVERED", "eventType": "invoice.paid"}, set()),
        ({"eventId": paid.json()["id"]}, {failed_delivery["id"]}),
        ({"since": "2000-01-01T00:00"}, {failed_delivery["id"], ok_delivery["id"]}),
        ({"until": "2000-01-01T00:00"}, set()),
        ({"since": "2999-01-01T00:00:00Z"}, set()),
    ]
    for params, expected in filters:
        page = await client.get("/ui/deliveries", params=params)
        assert page.status_code == 200, params
        shown = set(re.findall(r'data-delivery-id="(del_[A-Za-z0-9]+)"', page.text))
        assert shown == expected, params
    # the REST API filters by event type the same way
    by_type = await client.get("/v1/deliveries", params={"eventType": "invoice.voided"}, headers=headers)
    assert [d["id"] for d in by_type.json()["data"]] == [ok_delivery["id"]]
    too_long = await client.get("/v1/deliveries", params={"eventType": "x" * 201}, headers=headers)
    assert too_long.status_code == 422 and "eventType" in too_long.text
    for params, text in (
        ({"status": "LOST"}, "unknown status"),
        ({"since": "yesterday"}, "since must be a time"),
        ({"until": "0001-01-01T00:00+05:00"}, "until must be a time"),
        ({"after": "nope"}, "after must be an id"),
    ):
        bad = await client.get("/ui/deliveries", params=params)
        assert bad.status_code == 422 and text in bad.text, params

    detail = await client.get(f"/ui/deliveries/{failed_delivery['id']}")
    assert detail.status_code == 200
    token = csrf_from(detail.text)
    assert '<dd id="delivery-status">retrying</dd>' in detail.text
    assert 'data-attempt="1"' in detail.text and "503" in detail.text
    assert "down for maintenance" in detail.text and "http_5xx" in detail.text
    assert "webhook-signature: " in detail.text and " ms</dd>" in detail.text
    assert "invoice.paid" in detail.text

    retried = await client.post(f"/ui/deliveries/{failed_delivery['id']}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/ui/deliveries/{failed_delivery['id']}?notice=retried"
    assert "queued for another attempt" in (await client.get(retried.headers["location"])).text
    assert "delivery.retried" in await audit_actions(client, admin.key, failed_delivery["id"])

    # a disabled endpoint cannot be retried: the conflict shows on the delivery's page
    await client.post(f"/v1/endpoints/{first}/disable", json={"reason": "paused"}, headers=headers)
    conflict = await client.post(f"/ui/deliveries/{failed_delivery['id']}/retry", data={"csrf_token": token})
    assert conflict.status_code == 409
    assert "enable it before retrying" in conflict.text and 'data-attempt="1"' in conflict.text

    # the endpoint's page lists its recent deliveries
    endpoint_page = await client.get(f"/ui/endpoints/{first}")
    assert failed_delivery["id"] in endpoint_page.text and ok_delivery["id"] not in endpoint_page.text

    events = await client.get("/ui/events")
    assert paid.json()["id"] in events.text and voided.json()["id"] in events.text
    only_paid = await client.get("/ui/events", params={"type": "invoice.paid"})
    assert paid.json()["id"] in only_paid.text and voided.json()["id"] not in only_paid.text
    event_page = await client.get(f"/ui/events/{paid.json()['id']}")
    assert event_page.status_code == 200
    assert "&#34;amount&#34;: 42" in event_page.text
    assert failed_delivery["id"] in event_page.text


async def test_other_tenants_ids_are_not_found(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    as_other = auth(admin.key, other_id)
    theirs = (await client.post("/v1/endpoints", json={"url": HOOK}, headers=as_other)).json()["id"]
    their_type = (
        await client.post("/v1/event-types", json={"name": "other.created"}, headers=as_other)
    ).json()["id"]
    event = await client.post(
        "/v1/events", json={"type": "other.created", "payload": {"n": 1}}, headers=as_other
    )
    their_event = event.json()["id"]
    their_delivery = event.json()["deliveries"][0]["id"]
    mine = await create_key(client, admin.key, WEBHOOK_SCOPES)
    token = await sign_in(client, mine["key"])
    for path in (
        f"/ui/endpoints/{theirs}",
        f"/ui/endpoints/{theirs}/edit",
        f"/ui/event-types/{their_type}",
        f"/ui/events/{their_event}",
        f"/ui/deliveries/{their_delivery}",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text
    for path in (
        f"/ui/endpoints/{theirs}/edit",
        f"/ui/endpoints/{theirs}/secret",
        f"/ui/endpoints/{theirs}/secret/rotate",
        f"/ui/endpoints/{theirs}/disable",
        f"/ui/endpoints/{theirs}/enable",
        f"/ui/endpoints/{theirs}/delete",
        f"/ui/event-types/{their_type}/deprecate",
        f"/ui/deliveries/{their_delivery}/retry",
    ):
        response = await client.post(path, data={"csrf_token": token, "confirm": "yes"})
        assert response.status_code == 404, path
        assert "whsec_" not in response.text
    for path in ("/ui/endpoints", "/ui/deliveries", "/ui/events", "/ui/event-types"):
        page = await client.get(path)
        assert page.status_code == 200
        for their in (theirs, their_type, their_event, their_delivery, other_id):
            assert their not in page.text, (path, their)
    filtered = await client.get("/ui/deliveries", params={"endpointId": theirs})
    assert their_delivery not in filtered.text
    shown = await client.get(f"/v1/endpoints/{theirs}", headers=as_other)
    assert shown.json()["enabled"] is True
    assert "endpoint.secret_read" not in await audit_actions(client, admin.key, theirs)


async def test_platform_key_switches_tenant_on_webhook_pages(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    theirs = (
        await client.post("/v1/endpoints", json={"url": HOOK}, headers=auth(admin.key, other_id))
    ).json()["id"]
    token = await sign_in(client, admin.key)
    assert theirs not in (await client.get("/ui/endpoints")).text
    switched = await client.post(
        "/ui/tenant", data={"tenant_id": other_id, "next": "/ui/endpoints", "csrf_token": token}
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/ui/endpoints"
    page = await client.get("/ui/endpoints")
    assert theirs in page.text and "Acting for tenant" in page.text
    # a change made while acting for the tenant is the tenant's, audited with both identities
    disabled = await client.post(f"/ui/endpoints/{theirs}/disable", data={"csrf_token": token})
    assert disabled.status_code == 303
    trail = await client.get(
        "/v1/audit-events",
        params={"resourceId": theirs, "action": "endpoint.disabled"},
        headers=auth(admin.key, other_id),
    )
    [event] = trail.json()["data"]
    assert event["actorKeyId"] == admin.key_id and event["actorTenantId"] == admin.tenant_id
    back = await client.post(
        "/ui/tenant", data={"tenant_id": admin.tenant_id, "next": "/ui/endpoints", "csrf_token": token}
    )
    assert back.status_code == 303
    assert theirs not in (await client.get("/ui/endpoints")).text


def test_retry_schedule_text_round_trips() -> None:
    assert parse_retry_schedule("5, 5m 30m,2h, 1d") == [5, 300, 1800, 7200, 86_400]
    assert parse_retry_schedule("  ") is None
    assert format_retry_schedule([5, 300, 1800, 7200, 86_400, 90]) == "5s, 5m, 30m, 2h, 1d, 90s"
    assert parse_retry_schedule(format_retry_schedule([5, 300, 36_000])) == [5, 300, 36_000]


async def test_test_event_replays_and_metrics(
    client: httpx.AsyncClient, admin: BootstrapResult, receiver: Receiver
) -> None:
    url = receiver.script("/hooks/ops")
    headers = auth(admin.key)
    endpoint_id = (await client.post("/v1/endpoints", json={"url": url}, headers=headers)).json()["id"]
    sent = await client.post(
        "/v1/events", json={"type": "order.created", "payload": {"n": 7}, "immediate": True}, headers=headers
    )
    [delivery] = sent.json()["deliveries"]
    assert delivery["status"] == "DELIVERED"
    token = await sign_in(client, admin.key)

    page = await client.get(f"/ui/endpoints/{endpoint_id}")
    assert '<dd id="metric-success-rate">100.0 %' in page.text
    assert re.search(r'<dd id="metric-queue-depth">0\b', page.text)
    assert re.search(r'<dd id="metric-latency">\d+ ms / \d+ ms / \d+ ms', page.text)

    tested = await client.post(f"/ui/endpoints/{endpoint_id}/test", data={"csrf_token": token})
    assert tested.status_code == 303
    assert re.fullmatch(r"/ui/deliveries/del_[A-Za-z0-9]+\?notice=test", tested.headers["location"])
    assert [r.json()["type"] for r in receiver.received("/hooks/ops")] == ["order.created", "webhook.test"]
    test_page = await client.get(tested.headers["location"])
    assert "Test event sent" in test_page.text and 'data-attempt="1"' in test_page.text
    assert '<dd id="delivery-status">delivered</dd>' in test_page.text and "webhook.test" in test_page.text

    # Recover: the form's fields are checked and named; a repeated request id replays once.
    for form, field, text in (
        ({}, "since", "Enter the time"),
        ({"since": "2000-01-01T00:00", "until": "1999-01-01T00:00"}, "until", "until must be after since"),
        ({"since": "2000-01-01T00:00", "statuses": "SENDING"}, "statuses", "final states"),
        ({"since": "whenever"}, "since", "since must be a time"),
    ):
        bad = await client.post(f"/ui/endpoints/{endpoint_id}/recover", data={**form, "csrf_token": token})
        assert bad.status_code == 422, form
        assert text in field_error(bad.text, field), form
    none_failed = await client.post(
        f"/ui/endpoints/{endpoint_id}/recover",
        data={
            "since": "2000-01-01T00:00",
            "statuses": "FAILED",
            "request_id": "ui-recover-1",
            "csrf_token": token,
        },
    )
    assert none_failed.status_code == 303
    summary = await client.get(none_failed.headers["location"])
    assert '<p id="replay-summary">0 deliveries queued, 0 skipped.</p>' in summary.text
    body = {
        "since": "2000-01-01T00:00",
        "statuses": "DELIVERED",
        "request_id": "ui-recover-2",
        "shown_at": "2999-01-01T00:00:00",
        "csrf_token": token,
    }
    recovered = await client.post(f"/ui/endpoints/{endpoint_id}/recover", data=body)
    again = await client.post(f"/ui/endpoints/{endpoint_id}/recover", data=body)
    assert recovered.headers["location"] == again.headers["location"]  # the same replay
    summary = await client.get(recovered.headers["location"])
    assert '<p id="replay-summary">2 deliveries queued, 0 skipped.</p>' in summary.text
    queued = await client.get("/v1/deliveries", params={"endpointId": endpoint_id}, headers=headers)
    assert {d["status"] for d in queued.json()["data"]} == {"RETRYING"}

    # Replay one event to every endpoint that qualifies now (a second endpoint subscribed since).
    later = receiver.script("/hooks/later")
    await client.post("/v1/endpoints", json={"url": later, "eventTypes": ["order.created"]}, headers=headers)
    event_page = await client.get(f"/ui/events/{sent.json()['id']}")
    request_id = re.search(r'name="request_id" value="(ui-[A-Za-z0-9_-]+)"', event_page.text)
    assert request_id
    replayed = await client.post(
        f"/ui/events/{sent.json()['id']}/replay",
        data={"request_id": request_id.group(1), "csrf_token": token},
    )
    assert replayed.status_code == 303
    assert re.fullmatch(
        rf"/ui/events/{sent.json()['id']}\?replay=rpl_[A-Za-z0-9]+", replayed.headers["location"]
    )
    shown = await client.get(replayed.headers["location"])
    assert '<p id="replay-summary">2 deliveries queued (1 new), 0 skipped.</p>' in shown.text
    trail = await client.get("/v1/replays", headers=headers)
    assert len(trail.json()["data"]) == 3

    # A disabled endpoint takes no test event: the conflict shows on its page.
    await client.post(f"/v1/endpoints/{endpoint_id}/disable", json={}, headers=headers)
    refused = await client.post(f"/ui/endpoints/{endpoint_id}/test", data={"csrf_token": token})
    assert refused.status_code == 409 and "enable it before sending a test event" in refused.text
    refused = await client.post(
        f"/ui/endpoints/{endpoint_id}/recover",
        data={"since": "2000-01-01T00:00", "statuses": "DELIVERED", "csrf_token": token},
    )
    assert refused.status_code == 409 and "disabled" in refused.text
