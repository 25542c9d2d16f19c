"""The dashboard's record pages in a real browser (Debian Chromium driven by Playwright): from a
connection's Records panel to its customers at json-server, paging, the updated-since filter, then
a record created (after a JSON error), edited and deleted through the forms."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, auth, free_port
from tests.external import JsonServer, json_server_fixture
from tests.test_ui_browser import Page, expect, nav, sign_in
from tests.test_ui_browser import page as page
from tests.test_ui_records_http import record_files

__all__ = ["json_server_fixture"]

SCREENSHOTS = Path(os.environ.get("INTERLINK_UI_SCREENSHOT_DIR", "/tmp"))


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, json_server: JsonServer) -> dict[str, object]:
    json_server.reset()
    return {
        "allowed_target_networks": ["127.0.0.0/8"],
        **record_files(tmp_path, json_server.url, free_port()),
    }


def test_browse_create_edit_and_delete_a_record(
    page: Page, live_server: LiveServer, json_server: JsonServer
) -> None:
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        made = api.post(
            "/v1/connections",
            json={"providerKey": "jsonserver", "name": "CRM", "authType": "NONE"},
            headers=auth(live_server.admin_key),
        )
    assert made.status_code == 201, made.text
    sign_in(page, live_server.admin_key)
    nav(page, "Connections")
    page.get_by_role("table", name="Connections").get_by_role("link", name="CRM").click()
    resources = page.get_by_role("table", name="Record resources")
    expect(resources.locator('tr[data-resource="invoices"]')).to_contain_text("list get")
    resources.get_by_role("link", name="customers").click()

    expect(page.get_by_role("heading", name="Records: customers")).to_be_visible()
    rows = page.get_by_role("table", name="Records").locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("Ada Lovelace")
    page.get_by_role("link", name="Next page").click()
    expect(rows.first).to_have_attribute("data-record-id", "5")
    page.get_by_label("Updated since (UTC)").fill("2026-01-12T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-record-id", "8")
    page.get_by_role("link", name="Clear").click()

    page.get_by_label("Fields (JSON object)").fill('{"name": "Mary Jackson",}')
    page.get_by_role("button", name="Create record").click()
    expect(page.locator("#data-error")).to_contain_text("data must be a JSON object")
    expect(page.get_by_label("Fields (JSON object)")).to_have_value('{"name": "Mary Jackson",}')
    page.get_by_label("Fields (JSON object)").fill('{"name": "Mary Jackson", "country": "US"}')
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("status").filter(has_text="Record created")).to_be_visible()
    expect(page.locator("#record-fields")).to_contain_text('"name": "Mary Jackson"')
    record_id = page.locator("#record-id").inner_text()
    assert record_id == "11"

    page.get_by_label("Changes (JSON object)").fill('{"country": "UK"}')
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Record saved")).to_be_visible()
    expect(page.locator("#record-fields")).to_contain_text('"country": "UK"')
    expect(page.locator("#record-fields")).to_contain_text('"name": "Mary Jackson"')
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-record.png"), full_page=True)

    page.get_by_label("Yes, delete this record").check()
    page.get_by_role("button", name="Delete record").click()  # the prompt is accepted
    expect(page.get_by_role("status").filter(has_text="Record deleted")).to_be_visible()
    expect(page.get_by_role("heading", name="Records: customers")).to_be_visible()
    customers = httpx.get(f"{json_server.url}/customers", trust_env=False).json()
    assert [c["id"] for c in customers] == list(range(1, 11))
    page.get_by_role("link", name="CRM").click()
    trail = page.get_by_role("table", name="Audit trail")
    for action in ("connection.record.created", "connection.record.updated", "connection.record.deleted"):
        expect(trail).to_contain_text(action)
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-records.png"), full_page=True)
