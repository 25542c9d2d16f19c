"""The dashboard's record pages (``/ui/connections/{id}/resources/...``) over plain HTTP, on SQLite
and PostgreSQL, against json-server (a declarative connector from the operator's file).

The Records panel of a connection, listing with the signed cursor and the updated-since filter,
creating, editing and deleting through forms (audited by the same service as the REST API), JSON
errors next to the textarea, 404 pages for unknown resources and records, provider and connection
failures shown on the page (never a 500), scopes and CSRF.
"""

from __future__ import annotations

import html
import re
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.conftest import auth, free_port, make_settings
from tests.external import JsonServer, json_server_fixture
from tests.test_ui_http import create_key, csrf_from, sign_in

__all__ = ["json_server_fixture"]

SPECS = Path(__file__).resolve().parent / "fixtures" / "connectors" / "json_server.yaml"
RECORD_LOCATION = re.compile(r"/ui/connections/conn_[A-Za-z0-9]+/resources/customers/(\d+)\?notice=created")


def record_files(directory: Path, json_server_url: str, closed_port: int) -> dict[str, Path]:
    """Providers ``jsonserver`` (json-server) and ``jsdown`` (nothing listens there), both served by
    the ``js-page`` connector of the json-server fixture specs."""
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
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: {json_server_url}
              - key: jsdown
                name: json-server (down)
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{closed_port}
            """
        )
    )
    connectors = directory / "connectors.yaml"
    page_style = "    name: json-server (page numbers)\n"
    text = SPECS.read_text().replace(page_style, page_style + "    providers: [jsonserver, jsdown]\n")
    # Invoices come in pages of 5, 5 and 2: a cap of two pages cuts that listing short.
    connectors.write_text(text.replace("page_size: 5}", "page_size: 5, max_pages: 2}", 1))
    return {"providers_file": providers, "connectors_file": connectors}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, json_server: JsonServer) -> Settings:
    json_server.reset()
    return make_settings(
        db_url,
        tmp_path / "data",
        allowed_target_networks=["127.0.0.0/8"],
        **record_files(tmp_path, json_server.url, free_port()),
    )


async def connect(client: httpx.AsyncClient, key: str, provider: str = "jsonserver", **extra: Any) -> str:
    body = {"providerKey": provider, "name": f"{provider} records", "authType": "NONE", **extra}
    made = await client.post("/v1/connections", json=body, headers=auth(key))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def record_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-record-id="([^"]+)">', page)


def link(page: str, text: str) -> str:
    match = re.search(rf'<a href="([^"]+)"(?: rel="next")?>{re.escape(text)}</a>', page)
    assert match, f"no link {text!r}"
    return html.unescape(match.group(1))


def field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', page)
    assert match, f"no error shown for {field}"
    return html.unescape(match.group(1))


def alert(page: str) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    assert match, "no error message on the page"
    return html.unescape(match.group(1))


async def record_audit(runtime: Runtime, connection_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.resource_id == connection_id, AuditEvent.action.like("connection.record.%"))
            .order_by(AuditEvent.occurred_at)
        )
        return list(rows.all())


async def test_records_panel_listing_pages_and_filter(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    await sign_in(client, admin.key)
    conn = await connect(client, admin.key)
    mail = await connect(client, admin.key, "sendgrid", authType="API_KEY", credentials={"apiKey": "k"})
    detail = (await client.get(f"/ui/connections/{conn}")).text
    assert 'id="connection-records"' in detail and "<code>js-page</code>" in detail
    panel = detail.split('id="connection-records"')[1].split("</section>")[0]
    assert f'href="/ui/connections/{conn}/resources/customers"' in panel
    assert f'href="/ui/connections/{conn}/resources/invoices"' in panel
    invoices_row = panel.split('data-resource="invoices"')[1].split("</tr>")[0]
    assert '<code class="scope">list</code> <code class="scope">get</code>' in invoices_row
    assert "create" not in invoices_row and ">no<" in invoices_row
    assert 'id="connection-records"' not in (await client.get(f"/ui/connections/{mail}")).text

    base = f"/ui/connections/{conn}/resources/customers"
    first = await client.get(base)
    assert first.status_code == 200, first.text
    assert record_ids(first.text) == ["1", "2", "3", "4"]
    assert "2026-01-05 09:00:00 UTC" in first.text  # the spec's updated_at_field
    assert "Ada Lovelace" in first.text and 'id="records-since"' in first.text
    assert 'id="record-data"' in first.text  # the create form
    assert f'href="{base}/1"' in first.text
    second_url = link(first.text, "Next page")
    cursor = parse_qs(urlsplit(second_url).query)["cursor"][0]
    second = await client.get(second_url)
    assert record_ids(second.text) == ["5", "6", "7", "8"]
    assert link(second.text, "First page") == base
    third = await client.get(link(second.text, "Next page"))
    assert record_ids(third.text) == ["9", "10"] and "Next page" not in third.text
    assert "The listing stops here" not in third.text
    invoices = f"/ui/connections/{conn}/resources/invoices"
    capped = await client.get(link((await client.get(invoices)).text, "Next page"))
    assert len(record_ids(capped.text)) == 5 and "Next page" not in capped.text
    assert "The listing stops here" in capped.text

    tampered = await client.get(base, params={"cursor": cursor[:-3] + "abc"})
    assert tampered.status_code == 422 and "cursor" in alert(tampered.text)
    other = await connect(client, admin.key, name="second")
    foreign = await client.get(f"/ui/connections/{other}/resources/customers", params={"cursor": cursor})
    assert foreign.status_code == 422

    recent = await client.get(base, params={"since": "2026-01-12T00:00"})
    assert recent.status_code == 200 and record_ids(recent.text) == ["8", "9", "10"]
    assert 'value="2026-01-12T00:00"' in recent.text
    limited = await client.get(base, params={"since": "2026-01-01T00:00", "limit": "2"})
    assert record_ids(limited.text) == ["1", "2"]
    follow = link(limited.text, "Next page")
    assert {"since", "limit", "cursor"} <= set(parse_qs(urlsplit(follow).query))
    assert record_ids((await client.get(follow)).text) == ["3", "4"]
    bad_since = await client.get(base, params={"since": "yesterday"})
    assert bad_since.status_code == 422 and "since" in field_error(bad_since.text, "since")
    assert 'aria-invalid="true"' in bad_since.text
    assert (await client.get(base, params={"limit": "0"})).status_code == 422

    invoices = await client.get(f"/ui/connections/{conn}/resources/invoices")
    assert invoices.status_code == 200 and record_ids(invoices.text) == ["1", "2", "3", "4", "5"]
    assert 'id="records-since"' not in invoices.text and 'id="record-data"' not in invoices.text
    not_incremental = await client.get(
        f"/ui/connections/{conn}/resources/invoices", params={"since": "2026-01-01T00:00"}
    )
    assert not_incremental.status_code == 422 and "does not support since" in not_incremental.text

    one = await client.get(f"{base}/1")
    assert one.status_code == 200
    assert "&#34;name&#34;: &#34;Ada Lovelace&#34;" in one.text  # formatted JSON
    assert 'id="record-changes"' in one.text and "Delete record" in one.text
    invoice = await client.get(f"/ui/connections/{conn}/resources/invoices/2")
    assert invoice.status_code == 200 and "INV-0002" in invoice.text
    assert 'id="record-changes"' not in invoice.text and "Delete record" not in invoice.text


async def test_create_edit_and_delete_through_forms(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime, json_server: JsonServer
) -> None:
    token = await sign_in(client, admin.key)
    conn = await connect(client, admin.key)
    base = f"/ui/connections/{conn}/resources/customers"

    made = await client.post(
        base, data={"csrf_token": token, "data": '{"name": "Katherine Johnson", "country": "US"}'}
    )
    assert made.status_code == 303, made.text
    match = RECORD_LOCATION.fullmatch(made.headers["location"])
    assert match, made.headers["location"]
    record_id = match.group(1)
    shown = await client.get(made.headers["location"])
    assert "Record created at the provider." in shown.text and "Katherine Johnson" in shown.text
    stored = httpx.get(f"{json_server.url}/customers/{record_id}", trust_env=False).json()
    assert stored["name"] == "Katherine Johnson"

    changed = await client.post(
        f"{base}/{record_id}/edit", data={"csrf_token": token, "data": '{"country": "UK"}'}
    )
    assert changed.status_code == 303 and changed.headers["location"] == f"{base}/{record_id}?notice=updated"
    stored = httpx.get(f"{json_server.url}/customers/{record_id}", trust_env=False).json()
    assert stored == {"id": int(record_id), "name": "Katherine Johnson", "country": "UK"}  # PATCH kept name
    page = (await client.get(changed.headers["location"])).text
    assert "Record saved at the provider." in page and "&#34;country&#34;: &#34;UK&#34;" in page

    unconfirmed = await client.post(f"{base}/{record_id}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 422
    assert "Tick the box" in field_error(unconfirmed.text, "confirm")
    deleted = await client.post(f"{base}/{record_id}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert deleted.status_code == 303 and deleted.headers["location"] == f"{base}?notice=deleted"
    listing = await client.get(deleted.headers["location"])
    assert "Record deleted at the provider." in listing.text and record_id not in record_ids(listing.text)
    gone = await client.get(f"{base}/{record_id}")
    assert gone.status_code == 404 and "was not found at the provider" in gone.text

    rows = await record_audit(runtime, conn)
    assert [r.action for r in rows] == [
        "connection.record.created",
        "connection.record.updated",
        "connection.record.deleted",
    ]
    assert rows[0].changes["fields"] == ["country", "name"] and rows[1].changes["fields"] == ["country"]
    assert all(r.actor_key_id == admin.key_id for r in rows)
    audit_page = await client.get("/ui/audit", params={"action": "connection.record.updated"})
    assert audit_page.status_code == 200 and "connection.record.updated" in audit_page.text


async def test_json_errors_are_shown_on_the_form(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime, json_server: JsonServer
) -> None:
    token = await sign_in(client, admin.key)
    conn = await connect(client, admin.key)
    base = f"/ui/connections/{conn}/resources/customers"
    for text, message in [
        ('{"name": "Ada",}', "data must be a JSON object: Expecting property name"),
        ("[1, 2]", "data must be a JSON object"),
        ("", "Enter the record's fields as a JSON object."),
        ('{"n": NaN}', "NaN is not a JSON number"),
        ('{"name": "a\\u0000b"}', "data must not contain NUL characters"),
        ('{"a\\nb": 1}', "field name a\\u000ab must not contain control characters"),  # the service's check
    ]:
        refused = await client.post(base, data={"csrf_token": token, "data": text})
        assert refused.status_code == 422, (text, refused.text[:500])
        assert message in field_error(refused.text, "data"), text
        assert f">{html.escape(text, quote=False)}</textarea>" in refused.text.replace("&#34;", '"'), text
        assert record_ids(refused.text) == ["1", "2", "3", "4"]  # the listing still renders
    for text, message in [
        ("{}", "Enter at least one field to change."),
        ("not json", "data must be a JSON object"),
        ('"text"', "data must be a JSON object"),
    ]:
        refused = await client.post(f"{base}/1/edit", data={"csrf_token": token, "data": text})
        assert refused.status_code == 422, text
        assert message in field_error(refused.text, "data"), text
        assert "Ada Lovelace" in refused.text  # the record is still shown
    json_server.inject(
        {
            "method": "POST",
            "path": "/customers",
            "status": 422,
            "body": {"error": {"message": "email is required"}},
        }
    )
    rejected = await client.post(base, data={"csrf_token": token, "data": '{"name": "X"}'})
    assert rejected.status_code == 502
    assert field_error(rejected.text, "data") == "The provider refused it (HTTP 422): email is required"
    assert await record_audit(runtime, conn) == []
    assert len(httpx.get(f"{json_server.url}/customers", trust_env=False).json()) == 10


async def test_missing_things_are_404_pages(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    conn = await connect(client, admin.key)
    mail = await connect(client, admin.key, "sendgrid", authType="API_KEY", credentials={"apiKey": "k"})
    for path, text in [
        (f"/ui/connections/{conn}/resources/orders", "has no resource &#39;orders&#39;"),
        (f"/ui/connections/{conn}/resources/Bad-Name", "has no resource"),
        (f"/ui/connections/{conn}/resources/orders/1", "has no resource"),
        ("/ui/connections/conn_missing/resources/customers", "not found"),
        (f"/ui/connections/{mail}/resources/messages", "no connector serves provider &#39;sendgrid&#39;"),
        (f"/ui/connections/{conn}/resources/customers/999", "was not found at the provider"),
    ]:
        response = await client.get(path)
        assert response.status_code == 404, (path, response.text[:500])
        assert text in response.text, path
        assert 'href="/ui/connections"' in response.text  # the error page's way back
    for path, status in [
        (f"/ui/connections/{conn}/resources/invoices", 405),
        (f"/ui/connections/{conn}/resources/invoices/1/edit", 405),
        (f"/ui/connections/{conn}/resources/invoices/1/delete", 405),
        (f"/ui/connections/{conn}/resources/orders", 404),
        (f"/ui/connections/{conn}/resources/customers/999/edit", 404),
        (f"/ui/connections/{conn}/resources/customers/999/delete", 404),
    ]:
        response = await client.post(path, data={"csrf_token": token, "data": '{"a": 1}', "confirm": "yes"})
        assert response.status_code == status, (path, response.text[:500])
    bad_id = await client.get(f"/ui/connections/{conn}/resources/customers/a%0Ab")
    assert bad_id.status_code == 422 and "recordId must be" in bad_id.text


async def test_provider_and_connection_failures_are_shown_on_the_page(
    client: httpx.AsyncClient, admin: BootstrapResult, json_server: JsonServer
) -> None:
    token = await sign_in(client, admin.key)
    conn = await connect(client, admin.key)
    base = f"/ui/connections/{conn}/resources/customers"

    json_server.inject({"method": "GET", "path": "/customers", "status": 500, "times": 5})
    failed = await client.get(base)
    assert failed.status_code == 502, failed.text[:500]
    assert alert(failed.text).startswith(
        "Provider error: The provider answered HTTP 500 to listing customers"
    )
    assert 'id="records-unavailable"' in failed.text and 'id="record-data"' in failed.text
    json_server.reset()

    json_server.inject({"method": "POST", "path": "/customers", "status": 503, "times": 5})
    text = '{"name": "Kept"}'
    not_made = await client.post(base, data={"csrf_token": token, "data": text})
    assert not_made.status_code == 502
    assert "HTTP 503" in alert(not_made.text)
    assert ">{&#34;name&#34;: &#34;Kept&#34;}</textarea>" in not_made.text  # the text is kept
    json_server.reset()

    down = await connect(client, admin.key, "jsdown")
    for path in (
        f"/ui/connections/{down}/resources/customers",
        f"/ui/connections/{down}/resources/customers/1",
    ):
        response = await client.get(path)
        assert response.status_code == 502, (path, response.text[:500])
        assert alert(response.text).startswith("Provider error:"), path
    edit = await client.post(
        f"/ui/connections/{down}/resources/customers/1/edit", data={"csrf_token": token, "data": '{"a": 1}'}
    )
    assert edit.status_code == 502 and alert(edit.text).startswith("Provider error:")

    disabled = await client.post(f"/ui/connections/{conn}/disable", data={"csrf_token": token})
    assert disabled.status_code == 303
    for path in (base, f"{base}/1"):
        response = await client.get(path)
        assert response.status_code == 409, (path, response.text[:500])
        assert alert(response.text) == f"Connection unavailable: Connection {conn} is DISABLED"
    deleting = await client.post(f"{base}/1/delete", data={"csrf_token": token, "confirm": "yes"})
    assert deleting.status_code == 409 and "is DISABLED" in alert(deleting.text)
    assert len(httpx.get(f"{json_server.url}/customers", trust_env=False).json()) == 10


async def test_scopes_and_csrf(
    client: httpx.AsyncClient, admin: BootstrapResult, json_server: JsonServer
) -> None:
    conn = await connect(client, admin.key)
    base = f"/ui/connections/{conn}/resources/customers"
    reader = await create_key(client, admin.key, ["connections:read"])
    token = await sign_in(client, reader["key"])
    listing = await client.get(base)
    assert listing.status_code == 200 and record_ids(listing.text) == ["1", "2", "3", "4"]
    assert 'id="record-data"' not in listing.text
    one = await client.get(f"{base}/1")
    assert (
        one.status_code == 200 and 'id="record-changes"' not in one.text and "Delete record" not in one.text
    )
    for path, body in [
        (base, {"data": '{"name": "x"}'}),
        (f"{base}/1/edit", {"data": '{"name": "x"}'}),
        (f"{base}/1/delete", {"confirm": "yes"}),
    ]:
        refused = await client.post(path, data={"csrf_token": token, **body})
        assert refused.status_code == 403, path

    nobody = await create_key(client, admin.key, ["keys:read"])
    await sign_in(client, nobody["key"])
    assert (await client.get(base)).status_code == 403

    token = await sign_in(client, admin.key)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://interlink.test")
    async with other:
        foreign = csrf_from((await other.get("/ui/login")).text)
    for path, body in [
        (base, {"data": '{"name": "x"}'}),
        (f"{base}/1/edit", {"data": '{"name": "x"}'}),
        (f"{base}/1/delete", {"confirm": "yes"}),
    ]:
        for bad in ({}, {"csrf_token": "0" * 64}, {"csrf_token": foreign}):
            response = await client.post(path, data={**body, **bad})
            assert response.status_code == 403, (path, bad)
            assert "expired or did not come from this dashboard" in response.text
    customers = httpx.get(f"{json_server.url}/customers", trust_env=False).json()
    assert len(customers) == 10 and customers[0]["name"] == "Ada Lovelace"
    assert token
