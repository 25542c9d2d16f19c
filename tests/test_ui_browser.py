"""The dashboard in a real browser (Debian Chromium driven by Playwright) against a live server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, auth
from tests.services import need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(os.environ.get("INTERLINK_UI_SCREENSHOT", "/tmp/interlink-ui-keys.png"))

try:
    # Page and expect are re-exported for the other browser tests (tests/test_ui_*_browser.py).
    from playwright.sync_api import Page as Page
    from playwright.sync_api import expect as expect
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture
def page(live_server: LiveServer) -> Iterator[Page]:
    """A fresh browser per test, started after the live server (whose setup needs no running loop)."""
    need(sync_playwright is not None, "playwright is not installed (pip install -e '.[dev]')")
    need(os.path.exists(CHROMIUM), f"Chromium not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.set_default_timeout(15_000)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def nav(page: Page, section: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=section).click()


def test_sign_in_create_rotate_revoke_and_audit(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server.admin_key)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text(live_server.tenant_id).first).to_be_visible()

    nav(page, "API keys")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_role("link", name="Create key").click()
    page.get_by_label("Name").fill("ci-deployer")
    page.get_by_label("keys:read").check()
    page.get_by_label("audit:read").check()
    page.get_by_role("button", name="Create key").click()

    expect(page.get_by_role("heading", name="Key created")).to_be_visible()
    shown = page.get_by_label("New API key")
    created = shown.input_value()
    assert created.startswith("il_live_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == created
    with httpx.Client(base_url=live_server.url) as api:
        assert api.get("/v1/keys", headers=auth(created)).status_code == 200

    page.get_by_role("link", name="Back to API keys").click()
    table = page.get_by_role("table", name="API keys")
    row = table.get_by_role("row").filter(has_text="ci-deployer")
    expect(row).to_have_count(1)
    expect(row.get_by_text("active")).to_be_visible()
    assert created not in page.content()
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    row.get_by_role("link", name="ci-deployer").click()
    expect(page.locator("#key-status")).to_have_text("active")
    assert created not in page.content()
    page.get_by_label("Grace period").select_option(label="1 hour")
    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("heading", name="Key rotated")).to_be_visible()
    replacement = page.get_by_label("New API key").input_value()
    assert replacement.startswith("il_live_") and replacement != created
    page.get_by_role("link", name=re.compile(r"^key_")).first.click()  # the old key, in its grace period
    expect(page.locator("#key-status")).to_have_text("rotating")
    page.get_by_label("Reason (optional)").fill("left the team")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator("#key-status")).to_have_text("revoked")
    expect(page.get_by_role("status").filter(has_text="has been revoked")).to_be_visible()
    with httpx.Client(base_url=live_server.url) as api:
        assert api.get("/v1/keys", headers=auth(created)).status_code == 401
        assert api.get("/v1/keys", headers=auth(replacement)).status_code == 200

    nav(page, "Audit events")
    audit_table = page.get_by_role("table", name="Audit events")
    for action in ("key.created", "key.rotated", "key.revoked"):
        expect(audit_table.get_by_text(action, exact=True).first).to_be_visible()
    page.get_by_label("Action").fill("key.revoked")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=key.revoked"))
    rows = page.get_by_role("table", name="Audit events").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("key.revoked")


def test_failed_sign_in_shows_in_security_events(page: Page, live_server: LiveServer) -> None:
    sign_in(page, "il_live_this-is-not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("not an Interlink API key")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    sign_in(page, live_server.admin_key)
    nav(page, "Security events")
    page.get_by_label("Event type").select_option("auth.failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table", name="Security events").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("auth.failed")
    expect(rows.first).to_contain_text("malformed")
    expect(rows.first).to_contain_text("127.0.0.1")
    score = int(rows.first.locator(".badge").inner_text())
    assert score >= 30
    page.get_by_label("Minimum risk").fill("100")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No security events match.")).to_be_visible()


def test_tenant_key_cannot_see_platform_keys_or_switch(page: Page, live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=auth(live_server.admin_key)) as api:
        other = api.post("/v1/tenants", json={"name": "Globex"}).json()
        scopes = ["keys:read", "keys:write", "tenants:read", "audit:read"]
        tenant_key = api.post("/v1/keys", json={"name": "tenant-dev", "scopes": scopes}).json()
        admin_id = api.get("/v1/keys").json()["data"][-1]["id"]
    sign_in(page, tenant_key["key"])
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_label("Tenant")).to_have_count(0)
    nav(page, "API keys")
    table = page.get_by_role("table", name="API keys")
    expect(table.get_by_role("row").filter(has_text="tenant-dev")).to_have_count(1)
    assert admin_id not in page.content()
    response = page.goto(f"/ui/keys/{admin_id}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto("/ui/keys/new")
    expect(page.get_by_label("Kind")).to_have_count(0)  # only platform keys create platform keys
    expect(page.get_by_label("tenants:write")).to_have_count(0)  # cannot grant what it lacks
    assert other["id"] not in page.content()


def test_platform_key_switches_tenant(page: Page, live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=auth(live_server.admin_key)) as api:
        other = api.post("/v1/tenants", json={"name": "Initech"}).json()
        api.post(
            "/v1/keys",
            json={"name": "initech-backend", "scopes": ["keys:read"]},
            headers={"X-Tenant-Id": other["id"]},
        )
    sign_in(page, live_server.admin_key)
    nav(page, "API keys")
    expect(page.get_by_text("initech-backend")).to_have_count(0)
    page.get_by_label("Tenant").select_option(label="Initech")
    expect(page.get_by_role("status").filter(has_text="Acting for tenant")).to_be_visible()
    expect(page.get_by_role("table", name="API keys").get_by_text("initech-backend")).to_be_visible()
    nav(page, "Audit events")
    expect(
        page.get_by_role("table", name="Audit events").get_by_text("platform.accessed").first
    ).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").filter(has_text="signed out")).to_be_visible()
    page.goto("/ui/keys")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
