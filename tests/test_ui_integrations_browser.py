"""The dashboard's integration pages in a real browser (Debian Chromium driven by Playwright).

A connection is created through the form, used for real calls through ``runtime.outbound`` to a
receiver on 127.0.0.1, disabled, and its calls read in the request log; another one is health
checked from its page against a server on 127.0.0.1; an inbound source is created from a
connection's page, edited and deleted, and the connection revoked.
"""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.runtime import Runtime
from tests.conftest import LiveServer, auth, free_port
from tests.receiver import Answer, Receiver
from tests.test_ui_browser import Page, expect, nav, sign_in
from tests.test_ui_browser import page as page

SCREENSHOTS = Path(os.environ.get("INTERLINK_UI_SCREENSHOT_DIR", "/tmp"))
API_KEY = "sk_live_BROWSER-SECRET"


@pytest.fixture
def health_port() -> int:
    return free_port()


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, health_port: int) -> dict[str, object]:
    """The SSRF guard allows 127.0.0.0/8, where the receiver lives; the ``browser-local`` provider's
    API is the :func:`health_target` server on 127.0.0.1."""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: browser-local
                name: Browser local
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{health_port}
            """
        )
    )
    return {"allowed_target_networks": ["127.0.0.0/8"], "providers_file": providers}


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_target(health_port: int) -> Iterator[None]:
    """An HTTP server on 127.0.0.1 (its own thread) answering every GET with 200 JSON."""
    server = ThreadingHTTPServer(("127.0.0.1", health_port), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def call_through_runtime(live_server: LiveServer, connection_id: str) -> dict[str, Any]:
    """Start a receiver on 127.0.0.1 and make two calls of the connection through a runtime's
    ``outbound`` service on the live server's database (in a thread with its own event loop: the
    browser test itself is blocking). Closing the runtime flushes the request log."""
    result: dict[str, Any] = {}

    async def run() -> None:
        receiver = Receiver()
        await receiver.start()
        receiver.script("/v1/balance", Answer(200, {"Content-Type": "application/json"}, '{"ok": true}'))
        receiver.script("/v1/charges", Answer(402, body="card declined"))
        runtime = Runtime(live_server.settings)
        runtime.outbound.start()
        try:
            api = runtime.outbound.client(
                ApiClientConfig(
                    tenant_id=live_server.tenant_id,
                    base_url=receiver.url,
                    connection_id=connection_id,
                    provider_key="stripe",
                    retry=RetryPolicy(max_attempts=1),
                )
            )
            ok = await api.call("GET", "/v1/balance", query={"api_key": "Q-SECRET"})
            declined = await api.call("POST", "/v1/charges", json={"amount": 5, "password": "PW"})
            result.update(ok=ok.request_id, declined=declined.request_id, url=receiver.url)
        finally:
            await runtime.stop()
            await receiver.stop()

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "outbound calls did not finish"
    if "error" in result:
        raise result["error"]
    return result


def test_create_connection_use_it_disable_it_and_read_the_log(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server.admin_key)
    nav(page, "Providers")
    page.get_by_label("Search").fill("stripe")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="Stripe").click()
    expect(page.locator("#provider-compliance")).to_contain_text("PCI DSS Level 1")
    expect(page.locator("#provider-webhooks")).to_contain_text("stripe")

    nav(page, "Connections")
    expect(page.get_by_text("No connections yet.")).to_be_visible()
    page.get_by_role("link", name="Create connection").click()
    page.get_by_label("Provider", exact=True).select_option("stripe")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Client ID")).to_be_hidden()  # only the chosen type's credentials show
    page.get_by_label("Authentication type").select_option("OAUTH2_AUTHORIZATION_CODE")
    expect(page.get_by_label("Client ID")).to_be_visible()
    expect(page.get_by_label("API key", exact=True)).to_be_hidden()
    page.get_by_label("Authentication type").select_option("API_KEY")
    page.get_by_label("Name").fill("Billing")
    page.get_by_label("account_id (optional)").fill("not valid")
    page.get_by_label("API key", exact=True).fill(API_KEY)
    page.get_by_role("button", name="Create connection").click()
    expect(page.locator('[id="config.account_id-error"]')).to_contain_text("does not match")
    expect(page.get_by_label("Name")).to_have_value("Billing")
    page.get_by_label("account_id (optional)").fill("acct_42")
    page.get_by_label("API key", exact=True).fill(API_KEY)  # secrets are never sent back
    page.get_by_role("button", name="Create connection").click()

    expect(page.get_by_role("status").filter(has_text="Connection created")).to_be_visible()
    expect(page.locator("#connection-status")).to_have_text("active")
    expect(page.locator("#connection-secrets")).to_have_text("credentials: stored")
    assert API_KEY not in page.content()
    connection_id = page.url.split("/ui/connections/")[1].split("?")[0]

    calls = call_through_runtime(live_server, connection_id)

    nav(page, "Connections")
    row = page.get_by_role("table", name="Connections").locator(f'tr[data-connection-id="{connection_id}"]')
    expect(row).to_contain_text("Billing")
    expect(row).to_contain_text("active")
    row.get_by_role("link", name="Billing").click()
    expect(page.locator("#metric-count")).to_contain_text("2")
    expect(page.get_by_role("table", name="Recent API calls")).to_contain_text("/v1/charges")
    page.get_by_role("button", name="Disable connection").click()
    expect(page.get_by_role("status").filter(has_text="Connection disabled")).to_be_visible()
    expect(page.locator("#connection-status")).to_have_text("disabled")
    expect(page.get_by_role("button", name="Enable connection")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-connection.png"), full_page=True)

    nav(page, "Connections")
    page.get_by_label("Status").select_option("DISABLED")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table", name="Connections")).to_contain_text("Billing")
    page.get_by_label("Status").select_option("ACTIVE")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No connections match.")).to_be_visible()

    nav(page, "API requests")
    table = page.get_by_role("table", name="API requests")
    expect(table.locator(f'tr[data-request-id="{calls["ok"]}"]')).to_contain_text("api_key=[redacted]")
    expect(table.locator(f'tr[data-request-id="{calls["declined"]}"]')).to_contain_text("http_4xx")
    page.get_by_label("Outcome").select_option("http_4xx")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name=calls["declined"]).click()
    expect(page.locator("#request-status")).to_have_text("402")
    expect(page.locator("#request-url")).to_have_text(f"{calls['url']}/v1/charges")
    page.get_by_text("Request body").click()
    expect(page.locator("#request-body")).to_contain_text('"password":"[redacted]"')
    page.get_by_text("Response body").click()
    expect(page.locator("#response-body")).to_have_text("card declined")
    assert "Q-SECRET" not in page.content() and API_KEY not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-api-request.png"), full_page=True)


def test_run_a_health_check_from_the_connection_page(
    page: Page, live_server: LiveServer, health_target: None
) -> None:
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        made = api.post(
            "/v1/connections",
            json={"providerKey": "browser-local", "name": "Local API"},
            headers=auth(live_server.admin_key),
        )
    assert made.status_code == 201, made.text
    sign_in(page, live_server.admin_key)
    nav(page, "Connections")
    row = page.get_by_role("table", name="Connections").locator(
        f'tr[data-connection-id="{made.json()["id"]}"]'
    )
    expect(row).to_contain_text("not checked yet")
    row.get_by_role("link", name="Local API").click()
    expect(page.locator("#health-status")).to_have_text("not checked yet")
    page.get_by_role("button", name="Run health check now").click()
    expect(page.get_by_role("status").filter(has_text="Health check finished")).to_be_visible()
    expect(page.locator("#health-status")).to_have_text("healthy")
    expect(page.locator("#health-score")).to_contain_text("100")
    latest = page.get_by_role("table", name="Latest check")
    expect(latest.locator('tr[data-check="http"]')).to_contain_text("pass")
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-connection-health-panel.png"), full_page=True)
    page.get_by_role("table", name="Recent checks").get_by_role("link").first.click()
    expect(page.locator("#check-status")).to_have_text("healthy")
    expect(page.locator("#check-trigger")).to_have_text("manual")
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-connection-health.png"), full_page=True)


def test_inbound_source_from_a_connection_page_edited_and_deleted(
    page: Page, live_server: LiveServer
) -> None:
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        made = api.post(
            "/v1/connections",
            json={"providerKey": "stripe", "name": "Billing", "credentials": {"apiKey": API_KEY}},
            headers=auth(live_server.admin_key),
        )
    assert made.status_code == 201, made.text
    connection_id = made.json()["id"]
    sign_in(page, live_server.admin_key)
    page.goto(f"/ui/connections/{connection_id}")
    expect(page.get_by_text("No inbound source receives this provider's webhooks yet.")).to_be_visible()
    page.get_by_role("link", name="Add an inbound source").click()
    expect(page.get_by_label("Connection (optional)")).to_have_value(connection_id)
    page.get_by_label("Name", exact=True).fill("Stripe events")
    page.get_by_label("Signature scheme").select_option("stripe")
    page.get_by_label("IP allowlist (CIDR ranges, one per line; blank: any address)").fill(
        "10.0.0.0/8\nnowhere"
    )
    page.get_by_role("button", name="Create inbound source").click()
    expect(page.locator("#ipAllowlist-error")).to_contain_text("'nowhere' is not an IP address")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Stripe events")
    expect(page.get_by_label("Signature scheme")).to_have_value("stripe")
    page.get_by_label("IP allowlist (CIDR ranges, one per line; blank: any address)").fill("10.0.0.0/8")
    page.get_by_role("button", name="Create inbound source").click()

    expect(page.get_by_role("status").filter(has_text="Inbound source created.")).to_be_visible()
    expect(page.locator("#source-secret")).to_have_value(re.compile(r"^whsec_"))
    secret = page.locator("#source-secret").input_value()
    expect(page.locator("#source-connection")).to_contain_text("Billing")
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-inbound-source.png"), full_page=True)
    page.locator("#source-connection").get_by_role("link", name="Billing").click()
    sources = page.get_by_role("table", name="Inbound sources of this connection")
    expect(sources).to_contain_text("Stripe events")
    sources.get_by_role("link", name="Stripe events").click()
    assert secret not in page.content()  # shown once, on the page the create answered with

    page.get_by_role("link", name="Edit inbound source").click()
    tolerance = page.get_by_label("Timestamp tolerance in seconds (optional: 300)")
    tolerance.fill("0")
    page.get_by_role("button", name="Save inbound source").click()
    expect(page.locator("#toleranceSeconds-error")).to_contain_text("between 1 and 86400")
    tolerance.fill("60")
    page.get_by_label("Enabled (a disabled source refuses every request)").uncheck()
    page.get_by_role("button", name="Save inbound source").click()
    expect(page.get_by_role("status").filter(has_text="Inbound source saved.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("disabled")
    expect(page.locator("dl.facts")).to_contain_text("60 s")

    page.get_by_role("button", name="Delete inbound source").click()
    expect(page.locator("#confirm-error")).to_contain_text("Tick the box")
    page.get_by_label("Yes, delete this inbound source").check()
    page.get_by_role("button", name="Delete inbound source").click()
    expect(page.get_by_role("status").filter(has_text="Inbound source deleted")).to_be_visible()
    expect(page.get_by_text("No inbound sources yet.")).to_be_visible()

    page.goto(f"/ui/connections/{connection_id}")
    page.get_by_label("Yes, revoke this connection").check()
    page.get_by_role("button", name="Revoke connection").click()
    expect(page.get_by_role("status").filter(has_text="Connection revoked")).to_be_visible()
    expect(page.locator("#connection-status")).to_have_text("revoked")
    expect(page.get_by_role("button", name="Revoke connection")).to_have_count(0)


def test_a_form_from_before_a_tenant_switch_in_another_tab_is_refused(
    page: Page, live_server: LiveServer
) -> None:
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        other = api.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(live_server.admin_key))
    assert other.status_code == 201, other.text
    sign_in(page, live_server.admin_key)
    page.goto("/ui/inbound-sources/new")
    page.get_by_label("Name", exact=True).fill("Meant for home")
    second = page.context.new_page()
    second.goto("/ui/connections")
    second.get_by_label("Tenant").select_option(label="Other Co")
    expect(second.get_by_role("status").filter(has_text="Acting for tenant")).to_contain_text("Other Co")
    page.get_by_role("button", name="Create inbound source").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Conflict")
    expect(page.get_by_text("switched in another window")).to_be_visible()
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        for tenant in (None, other.json()["id"]):
            listed = api.get("/v1/inbound-sources", headers=auth(live_server.admin_key, tenant))
            assert listed.json()["data"] == [], tenant
