"""Records through a connection (``/v1/connections/{id}/resources/...``): the connector of the
connection's provider called with the connection's credentials, against json-server (a
declarative connector from the operator's file) and localstripe (the Stripe connector); signed
cursors, scopes, audit rows, problems (404/405/422/502), the SDK and the CLI."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.client import InterlinkClient
from interlink.client.errors import ValidationError
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.api_helpers import make_key
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, make_settings
from tests.external import JsonServer, LocalStripe, json_server_fixture, localstripe_fixture

__all__ = ["json_server_fixture", "localstripe_fixture"]

SPECS = Path(__file__).resolve().parent / "fixtures" / "connectors" / "json_server.yaml"


def _files(directory: Path, json_server: JsonServer, localstripe: LocalStripe) -> dict[str, Path]:
    providers = directory / "providers.yaml"
    providers.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: jsonserver
                name: json-server
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE, API_KEY]
                base_urls:
                  PRODUCTION: {json_server.url}
              - key: jsbadid
                name: json-server (its spec names an id field the answers lack)
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: {json_server.url}
              - key: stripe
                base_urls:
                  PRODUCTION: {localstripe.url}
            """
        )
    )
    connectors = directory / "connectors.yaml"
    page_style = "    name: json-server (page numbers)\n"
    text = SPECS.read_text().replace(page_style, page_style + "    providers: [jsonserver]\n")
    # Invoices come in three pages of 5, 5 and 2: a cap of two pages cuts that listing short.
    text = text.replace("page_size: 5}", "page_size: 5, max_pages: 2}", 1)
    text += (
        "\n  - key: js-bad-id\n"
        "    name: json-server (no usable id)\n"
        "    providers: [jsbadid]\n"
        "    resources:\n"
        "      - name: customers\n"
        "        list_path: /customers\n"
        "        create_path: /customers\n"
        "        update_path: /customers/{id}\n"
        "        update_method: PATCH\n"
        "        id_field: customerNumber\n"
    )
    connectors.write_text(text)
    return {"providers_file": providers, "connectors_file": connectors}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, json_server: JsonServer, localstripe: LocalStripe) -> Settings:
    json_server.reset()
    localstripe.flush()
    return make_settings(
        db_url,
        tmp_path / "data",
        allowed_target_networks=["127.0.0.0/8"],
        **_files(tmp_path, json_server, localstripe),
    )


@pytest.fixture
def live_server_settings_overrides(
    tmp_path: Path, json_server: JsonServer, localstripe: LocalStripe
) -> dict[str, object]:
    json_server.reset()
    localstripe.flush()
    return {"allowed_target_networks": ["127.0.0.0/8"], **_files(tmp_path, json_server, localstripe)}


async def _record_audit_rows(runtime: Runtime, connection_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.resource_id == connection_id, AuditEvent.action.like("connection.record.%")
            )
        )
        return list(rows.all())


async def _connect(client: httpx.AsyncClient, headers: dict[str, str], provider: str, **extra: Any) -> str:
    body = {"providerKey": provider, "name": f"{provider} records", "authType": "NONE", **extra}
    response = await client.post("/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_json_server_records_through_a_connection(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connect(client, admin_headers, "jsonserver")
    base = f"/v1/connections/{conn}/resources"
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        page = await client.get(f"{base}/customers", params=params, headers=admin_headers)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [r["id"] for r in body["data"]]
        assert body["hasMore"] is (body["nextCursor"] is not None)
        assert body["truncated"] is False
        if not body["nextCursor"]:
            break
        cursor = body["nextCursor"]
    assert ids == [str(i) for i in range(1, 11)]

    first = (await client.get(f"{base}/invoices", headers=admin_headers)).json()
    assert (len(first["data"]), first["truncated"]) == (5, False)
    cut = await client.get(f"{base}/invoices", params={"cursor": first["nextCursor"]}, headers=admin_headers)
    assert cut.status_code == 200, cut.text
    assert (len(cut.json()["data"]), cut.json()["hasMore"], cut.json()["truncated"]) == (5, False, True)

    recent = await client.get(
        f"{base}/customers", params={"since": "2026-01-12T00:00:00Z", "limit": 10}, headers=admin_headers
    )
    assert [r["id"] for r in recent.json()["data"]] == ["8", "9", "10"]
    assert recent.json()["data"][0]["updatedAt"] == "2026-01-12T09:10:00Z"

    created = await client.post(
        f"{base}/customers",
        json={"name": "Mary Jackson", "updatedAt": "2026-03-01T00:00:00Z"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    got = await client.get(f"{base}/customers/{record_id}", headers=admin_headers)
    assert got.json()["data"]["name"] == "Mary Jackson"
    patched = await client.patch(
        f"{base}/customers/{record_id}", json={"country": "US"}, headers=admin_headers
    )
    assert patched.status_code == 200 and patched.json()["data"]["country"] == "US"
    deleted = await client.delete(f"{base}/customers/{record_id}", headers=admin_headers)
    assert deleted.status_code == 204
    gone = await client.get(f"{base}/customers/{record_id}", headers=admin_headers)
    assert gone.status_code == 404

    rows = await _record_audit_rows(runtime, conn)
    actions = sorted(r.action for r in rows)
    assert actions == ["connection.record.created", "connection.record.deleted", "connection.record.updated"]
    created_row = next(r for r in rows if r.action == "connection.record.created")
    assert created_row.changes["fields"] == ["name", "updatedAt"]
    assert "Mary Jackson" not in json.dumps([r.changes for r in rows])


async def test_a_change_the_provider_took_but_answered_unreadably_is_audited_and_said(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, json_server: JsonServer
) -> None:
    """The provider answers 201 (the record exists there) but the answer has no usable id: a 502
    that says the record was probably created, and the audit trail has the create."""
    conn = await _connect(client, admin_headers, "jsbadid")
    base = f"/v1/connections/{conn}/resources/customers"
    made = await client.post(base, json={"name": "Katherine Johnson"}, headers=admin_headers)
    assert made.status_code == 502, made.text
    problem = made.json()
    assert problem["upstreamStatus"] == 201 and problem["errorClass"] == "bad_answer"
    assert "probably created: look it up before creating it again" in problem["detail"]
    listed = await client.get(
        "/v1/connections/" + await _connect(client, admin_headers, "jsonserver") + "/resources/customers",
        params={"limit": 100},
        headers=admin_headers,
    )
    assert "Katherine Johnson" in listed.text  # json-server did create it
    patched = await client.patch(f"{base}/1", json={"country": "US"}, headers=admin_headers)
    assert patched.status_code == 502 and "probably updated" in patched.json()["detail"]
    refused = await client.patch(f"{base}/999", json={"country": "US"}, headers=admin_headers)
    assert refused.status_code == 404  # the provider refused: nothing happened, nothing audited
    rows = await _record_audit_rows(runtime, conn)
    assert sorted((r.action, r.changes["recordId"]) for r in rows) == [
        ("connection.record.created", None),
        ("connection.record.updated", "1"),
    ]


async def test_problems_for_records(
    client: httpx.AsyncClient, admin_headers: dict[str, str], json_server: JsonServer
) -> None:
    conn = await _connect(client, admin_headers, "jsonserver")
    base = f"/v1/connections/{conn}/resources"
    first = (await client.get(f"{base}/customers", params={"limit": 2}, headers=admin_headers)).json()
    cursor = first["nextCursor"]
    other = await _connect(client, admin_headers, "jsonserver", name="second")
    checks = [
        ("GET", f"{base}/orders", None, 404),
        ("POST", f"{base}/invoices", {"number": "X"}, 405),
        ("DELETE", f"{base}/invoices/1", None, 405),
        ("GET", f"{base}/customers?cursor=nonsense", None, 422),
        ("GET", f"{base}/customers?cursor={cursor[:-3]}abc", None, 422),
        ("GET", f"/v1/connections/{other}/resources/customers?cursor={cursor}", None, 422),
        ("GET", f"{base}/invoices?since=2026-01-01T00:00:00Z", None, 422),
        ("GET", f"{base}/customers?since=yesterday", None, 422),
        ("GET", f"{base}/customers?limit=0", None, 422),
        ("GET", f"{base}/Bad-Name", None, 422),
        ("POST", f"{base}/customers", [1, 2], 422),
        ("GET", "/v1/connections/conn_missing/resources/customers", None, 404),
    ]
    for method, path, body, status in checks:
        response = await client.request(method, path, json=body, headers=admin_headers)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    cursor_problem = (await client.get(f"{base}/customers?cursor=nonsense", headers=admin_headers)).json()
    assert cursor_problem["errors"][0]["field"] == "cursor"
    not_allowed = (await client.post(f"{base}/invoices", json={}, headers=admin_headers)).json()
    assert not_allowed["allowed"] == ["list", "get"]

    json_server.inject({"method": "GET", "path": "/customers", "status": 500, "times": 5})
    upstream = await client.get(f"{base}/customers", headers=admin_headers)
    assert upstream.status_code == 502
    assert upstream.json()["upstreamStatus"] == 500
    json_server.reset()

    mail = await _connect(
        client, admin_headers, "sendgrid", authType="API_KEY", credentials={"apiKey": "sg-k"}
    )
    unserved = await client.get(f"/v1/connections/{mail}/resources/messages", headers=admin_headers)
    assert (
        unserved.status_code == 404 and "no connector serves provider 'sendgrid'" in unserved.json()["detail"]
    )


async def test_scopes_for_records(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    conn = await _connect(client, admin_headers, "jsonserver")
    base = f"/v1/connections/{conn}/resources/customers"
    reader_key = await make_key(client, admin_headers, scopes=["connections:read"])
    nobody_key = await make_key(client, admin_headers, scopes=["keys:read"])
    reader = {"Authorization": f"Bearer {reader_key['key']}"}
    nobody = {"Authorization": f"Bearer {nobody_key['key']}"}
    assert (await client.get(base, headers=reader)).status_code == 200
    assert (await client.post(base, json={"name": "x"}, headers=reader)).status_code == 403
    assert (await client.get(base, headers=nobody)).status_code == 403


async def test_stripe_records_through_a_connection(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(
        client, admin_headers, "stripe", authType="API_KEY", credentials={"apiKey": "sk_test_interlink"}
    )
    base = f"/v1/connections/{conn}/resources/customers"
    for n in range(5):
        created = await client.post(
            base, json={"email": f"r{n}@example.com", "metadata": {"n": n}}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        assert created.json()["data"]["metadata"] == {"n": str(n)} and created.json()["updatedAt"] is None
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(base, params=params, headers=admin_headers)).json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5
    updated = await client.patch(f"{base}/{seen[0]}", json={"name": "Renamed"}, headers=admin_headers)
    assert updated.json()["data"]["name"] == "Renamed"
    refused = await client.post(base, json={"colour": "blue"}, headers=admin_headers)
    assert refused.status_code == 502 and refused.json()["upstreamStatus"] == 400


def _cli(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    options = [*args, "--url", server.url, "--api-key", server.admin_key]
    return run_interlink(options, real=real)


def test_sdk_and_cli_records(live_server: LiveServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        conn = sdk.connections.create(provider_key="jsonserver", name="records", auth_type="NONE").id
        page = sdk.connectors.list_records(conn, "customers", limit=3)
        assert [r.id for r in page.data] == ["1", "2", "3"] and page.next_cursor
        everyone = list(sdk.connectors.iter_records(conn, "customers"))
        assert len(everyone) == 10
        created = sdk.connectors.create_record(conn, "customers", {"name": "Dorothy Vaughan"})
        assert sdk.connectors.get_record(conn, "customers", created.id).data["name"] == "Dorothy Vaughan"
        changed = sdk.connectors.update_record(conn, "customers", created.id, {"country": "US"})
        assert changed.data["country"] == "US"
        sdk.connectors.delete_record(conn, "customers", created.id)
        with pytest.raises(ValidationError):
            sdk.connectors.list_records(conn, "customers", cursor="tampered")
    listed = _cli(live_server, "connectors", "records", conn, "customers", "--all", "--json", real=True)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["data"]) == 10 and json.loads(listed.stdout)["truncated"] is False
    assert listed.stderr == ""
    cut = _cli(live_server, "connectors", "records", conn, "invoices", "--all", "--json", real=True)
    assert cut.returncode == 0, cut.stderr
    assert (len(json.loads(cut.stdout)["data"]), json.loads(cut.stdout)["truncated"]) == (10, True)
    assert "stopped at the connector's page cap" in cut.stderr
    table = _cli(live_server, "connectors", "records", conn, "customers", "--limit", "2")
    assert table.returncode == 0 and "next page: --cursor" in table.stdout
    bad = _cli(live_server, "connectors", "records", conn, "customers", "--since", "2026-01-01")
    assert bad.returncode == 2
    made = _cli(
        live_server, "connectors", "create-record", conn, "customers", "--data", '{"name": "Ada"}', "--json"
    )
    assert made.returncode == 0, made.stderr
    record_id = json.loads(made.stdout)["id"]
    changed_cli = _cli(
        live_server,
        "connectors",
        "update-record",
        conn,
        "customers",
        record_id,
        "--data",
        '{"country": "UK"}',
    )
    assert changed_cli.returncode == 0 and '"country": "UK"' in changed_cli.stdout
    shown = _cli(live_server, "connectors", "record", conn, "customers", record_id, "--json")
    assert json.loads(shown.stdout)["data"]["name"] == "Ada"
    gone = _cli(live_server, "connectors", "delete-record", conn, "customers", record_id)
    assert gone.returncode == 0 and f"Deleted customers {record_id}" in gone.stdout
    missing = _cli(live_server, "connectors", "record", conn, "customers", record_id)
    assert missing.returncode == 1
    not_json = _cli(live_server, "connectors", "create-record", conn, "customers", "--data", "[1]")
    assert not_json.returncode == 2 and "--data" in not_json.stderr


def _customers(json_server: JsonServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{json_server.url}/customers", trust_env=False)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records


async def test_unstorable_fields_never_reach_the_provider(
    client: httpx.AsyncClient, admin_headers: dict[str, str], json_server: JsonServer, runtime: Runtime
) -> None:
    """Fields the audit trail cannot record or JSON cannot carry are a 422 naming the field, sent
    before anything reaches json-server (same record count, same record), on both databases."""
    conn = await _connect(client, admin_headers, "jsonserver")
    base = f"/v1/connections/{conn}/resources/customers"
    before = _customers(json_server)
    nul = "\u0000"
    refused: list[tuple[str, str]] = [
        (json.dumps({f"a{nul}": 1}), "a\\u0000"),
        (json.dumps({"name": f"Ada{nul}"}), "name"),
        (json.dumps({"address": {"city": f"x{nul}y"}}), "address.city"),
        (json.dumps({"address": {f"ci{nul}ty": "x"}}), "address.ci\\u0000ty"),
        (json.dumps({"tags": ["ok", f"b{nul}"]}), "tags.1"),
        (json.dumps({"name\n": "x"}), "name\\u000a"),
        (json.dumps({"": "x"}), "body"),
        (json.dumps({"n" * 201: "x"}), "n" * 200),
        ('{"score": NaN}', "score"),
        ('{"nested": {"score": -Infinity}}', "nested.score"),
    ]
    headers = {**admin_headers, "Content-Type": "application/json"}
    for body, field in refused:
        created = await client.post(base, content=body, headers=headers)
        assert created.status_code == 422, (body, created.text)
        assert created.headers["content-type"].startswith("application/problem+json")
        assert created.json()["errors"][0]["field"] == field, (body, created.text)
        updated = await client.patch(f"{base}/1", content=body, headers=headers)
        assert updated.status_code == 422, (body, updated.text)
        assert updated.json()["errors"][0]["field"] == field
    assert _customers(json_server) == before
    routes = json_server.stats()["byRoute"]
    assert not [r for r in routes if r.startswith(("POST /customers", "PATCH /customers"))], routes

    async with runtime.db.unit_of_work(write=False) as session:
        audited = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.resource_id == conn, AuditEvent.action.like("connection.record.%"))
        )
    assert audited == 0

    fine = await client.post(
        base, json={"name": "Katherine\tJohnson", "note": "line\nbreak"}, headers=admin_headers
    )
    assert fine.status_code == 201, fine.text
    assert len(_customers(json_server)) == len(before) + 1
