"""The dashboard's webhook pages in a real browser (Debian Chromium driven by Playwright).

A live server with its delivery worker sends to a real receiver on 127.0.0.1 that verifies every
request's Standard Webhooks signature with the secret revealed in the dashboard.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import LiveServer, auth
from tests.receiver import Answer, Received, Receiver
from tests.test_ui_browser import Page, expect, nav, sign_in
from tests.test_ui_browser import page as page

T = TypeVar("T")
SCREENSHOTS = Path(os.environ.get("INTERLINK_UI_SCREENSHOT_DIR", "/tmp"))


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    """The SSRF guard allows 127.0.0.0/8, where the receiver lives."""
    return {"allowed_target_networks": ["127.0.0.0/8"]}


class ThreadedReceiver:
    """A :class:`Receiver` on its own event loop in a thread (the browser test itself is blocking)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.receiver = Receiver()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self.receiver.start())

    def stop(self) -> None:
        self.run(self.receiver.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def wait_for_requests(self, path: str, count: int) -> list[Received]:
        self.run(self.receiver.wait_for(lambda: len(self.receiver.received(path)) >= count), timeout=40)
        return self.receiver.received(path)


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    server = ThreadedReceiver()
    server.start()
    yield server
    server.stop()


def eventually(probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + 20
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r}")
        time.sleep(0.05)


def test_create_endpoint_send_event_see_attempt_and_retry(
    page: Page,
    live_server: LiveServer,
    receiver: ThreadedReceiver,
) -> None:
    path = "/hooks/browser"
    url = receiver.receiver.script(path, Answer(503, body="not yet"), Answer(200, body="thanks"))
    sign_in(page, live_server.admin_key)
    nav(page, "Endpoints")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    page.get_by_role("link", name="Create endpoint").click()
    expect(page.get_by_label("Recipients")).to_be_hidden()  # only the chosen channel's fields show
    page.get_by_label("Channel").select_option("EMAIL")
    expect(page.get_by_label("Recipients")).to_be_visible()
    page.get_by_label("Channel").select_option("WEBHOOK")
    page.get_by_label("URL", exact=True).fill(url)
    page.get_by_label("Description (optional)").fill("browser receiver")
    page.get_by_label("More event types (comma separated)").fill("invoice.paid")
    page.get_by_label("Filter (JSON, optional)").fill('{"payload.amount": {"$gte": 10}}')
    page.get_by_label("Retry schedule (optional)").fill("1h")  # no automatic retry during the test
    page.get_by_role("button", name="Create endpoint").click()

    expect(page.get_by_role("status").filter(has_text="Endpoint created")).to_be_visible()
    expect(page.locator("#endpoint-url")).to_have_text(url)
    endpoint_id = page.url.split("/ui/endpoints/")[1].split("?")[0]
    assert "whsec_" not in page.content()
    page.get_by_role("button", name="Reveal signing secret").click()
    secret = page.get_by_label("Signing secret value").input_value()
    assert secret.startswith("whsec_")
    receiver.receiver.secrets[path] = [secret]

    with httpx.Client(base_url=live_server.url, headers=auth(live_server.admin_key)) as api:
        skipped = api.post("/v1/events", json={"type": "invoice.paid", "payload": {"amount": 1}})
        assert skipped.json()["deliveries"] == []  # filtered out
        sent = api.post("/v1/events", json={"type": "invoice.paid", "payload": {"amount": 42}})
        assert sent.status_code == 201, sent.text
        [delivery] = sent.json()["deliveries"]
        [first] = receiver.wait_for_requests(path, 1)
        assert first.verified is True, first.verify_error
        assert first.json()["data"] == {"amount": 42}
        eventually(
            lambda: api.get(f"/v1/deliveries/{delivery['id']}").json(),
            lambda d: d["attempts"] == 1 and d["status"] == "RETRYING",
            "the first attempt recorded",
        )
        trail = api.get("/v1/audit-events", params={"resourceId": endpoint_id}).json()["data"]
        assert "endpoint.secret_read" in {e["action"] for e in trail}

    nav(page, "Deliveries")
    table = page.get_by_role("table", name="Deliveries")
    row = table.locator(f'tr[data-delivery-id="{delivery["id"]}"]')
    expect(row).to_contain_text("invoice.paid")
    expect(row).to_contain_text("retrying")
    page.get_by_label("Status").select_option("DELIVERED")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No deliveries match.")).to_be_visible()
    page.get_by_label("Status").select_option("RETRYING")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=delivery["id"]).click()

    expect(page.locator("#delivery-status")).to_have_text("retrying")
    attempt = page.locator('[data-attempt="1"]')
    expect(attempt.locator(".response-status")).to_have_text("503")
    expect(attempt).to_contain_text("http_5xx")
    attempt.get_by_text("Response body").click()
    expect(attempt.get_by_text("not yet")).to_be_visible()
    attempt.get_by_text("Request headers").click()
    expect(attempt).to_contain_text("webhook-signature: ")

    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").filter(has_text="queued for another attempt")).to_be_visible()
    requests = receiver.wait_for_requests(path, 2)
    assert len(requests) == 2
    assert requests[1].verified is True, requests[1].verify_error
    assert requests[1].webhook_id == requests[0].webhook_id == sent.json()["id"]

    def reloaded() -> str:
        page.reload()
        return page.locator("#delivery-status").inner_text()

    eventually(reloaded, lambda status: status == "delivered", "the retried delivery")
    second = page.locator('[data-attempt="2"]')
    expect(second.locator(".response-status")).to_have_text("200")
    expect(page.locator("#delivery-attempts")).to_have_text("2")
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-delivery.png"), full_page=True)

    # The event's page shows its payload and this delivery; the endpoint's page its health.
    page.get_by_role("link", name=sent.json()["id"]).click()
    expect(page.locator("#event-payload")).to_contain_text('"amount": 42')
    expect(page.get_by_role("table", name="Deliveries of this event")).to_contain_text("delivered")
    page.goto(f"/ui/endpoints/{endpoint_id}")
    expect(page.get_by_role("table", name="Recent deliveries")).to_contain_text("delivered")
    page.get_by_label("Reason (optional)").fill("maintenance window")
    page.get_by_role("button", name="Disable endpoint").click()
    expect(page.locator("#endpoint-state")).to_have_text("disabled")
    expect(page.locator("#disabled-reason")).to_have_text("maintenance window")
    page.get_by_role("button", name="Enable endpoint").click()
    expect(page.locator("#endpoint-state")).to_have_text("enabled")
    expect(page.locator("#metric-success-rate")).to_contain_text("100.0 %")
    page.screenshot(path=str(SCREENSHOTS / "interlink-ui-endpoint.png"), full_page=True)

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("status").filter(has_text="Test event sent")).to_be_visible()
    expect(page.locator("#delivery-status")).to_have_text("delivered")
    third = receiver.wait_for_requests(path, 3)[2]
    assert third.verified is True and third.json()["type"] == "webhook.test"


def test_event_types_and_form_errors(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server.admin_key)
    nav(page, "Event types")
    page.get_by_role("link", name="Register event type").click()
    page.get_by_label("Name").fill("order.shipped")
    page.get_by_label("JSON Schema (optional)").fill('{"type": "object", "required": [')
    page.get_by_role("button", name="Register event type").click()
    expect(page.locator("#schema-error")).to_contain_text("schema must be a JSON object")
    expect(page.get_by_label("Name")).to_have_value("order.shipped")
    page.get_by_label("JSON Schema (optional)").fill('{"type": "object", "required": ["id"]}')
    page.get_by_role("button", name="Register event type").click()
    expect(page.get_by_role("status").filter(has_text="Event type registered")).to_be_visible()
    type_page = page.url

    nav(page, "Endpoints")
    page.get_by_role("link", name="Create endpoint").click()
    page.get_by_label("URL", exact=True).fill("http://169.254.169.254/latest/meta-data")
    page.get_by_label("Timeout (seconds)").fill("soon")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.locator("#timeoutSeconds-error")).to_contain_text("must be a number")
    page.get_by_label("Timeout (seconds)").fill("10")
    page.get_by_role("button", name="Create endpoint").click()  # the SSRF guard speaks next
    expect(page.locator("#url-error")).to_contain_text("metadata")
    expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Timeout (seconds)")).to_have_value("10")
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/shipping")
    page.get_by_label("order.shipped").check()
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_role("status").filter(has_text="Endpoint created")).to_be_visible()
    expect(page.get_by_text("order.shipped")).to_be_visible()
    page.get_by_label("Yes, delete this endpoint").check()
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("status").filter(has_text="Endpoint deleted")).to_be_visible()
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
    assert re.search(r"/ui/endpoints\?notice=deleted$", page.url)

    page.goto(type_page)
    page.get_by_role("button", name="Deprecate event type").click()
    expect(page.locator("#event-type-state")).to_have_text("deprecated")
    nav(page, "Event types")
    page.get_by_label("State").select_option("current")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No event types match.")).to_be_visible()
