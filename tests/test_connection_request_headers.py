"""Provider ``request_headers`` (Stripe's ``Stripe-Account: {account_id}``): filled from the
connection's config and sent with every call through the connection.

Against real servers on 127.0.0.1: the provider API stand-in (``tests/echo_api.py``) sees the
headers of proxy calls and of the health check's verification call; localstripe is called by the
Stripe connector (records through a connection) and the request log shows the header it was sent.
Covers: a header whose setting is absent is not sent, the connection's value wins over the
caller's, a config change applies to the very next call (the per-process plan cache), a value
with CR/LF is refused before anything is sent, the API representation, and catalogue errors with
file:line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.connections.catalogue import CatalogueError, load_catalogue
from interlink.connections.schemas import render_headers
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem
from tests.conftest import make_settings
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.external import LocalStripe, localstripe_fixture

__all__ = ["localstripe_fixture"]

API_KEY = "ak-request-headers-1"


def _providers(directory: Path, api: EchoApi, localstripe: LocalStripe) -> Path:
    path = directory / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: echo-account
                name: Echo (acts for an account)
                category: PAYMENTS
                docs_url: https://example.com/docs
                auth_types: [API_KEY, NONE]
                config_schema:
                  type: object
                  additionalProperties: false
                  properties:
                    account_id: {{type: string, pattern: "^acct_[A-Za-z0-9]{{1,64}}$"}}
                    region: {{type: string, enum: [eu, us]}}
                    loose: {{type: string, pattern: "^[^\\t]{{1,80}}$"}}
                base_urls:
                  PRODUCTION: {api.base_url}
                default_headers:
                  X-Region: "{{region}}"
                request_headers:
                  Stripe-Account: "{{account_id}}"
                  X-Account-Region: "{{account_id}}.{{region}}"
                  X-Loose: "{{loose}}"
                api_key: {{location: header, name: X-Api-Key, prefix: ""}}
                verification:
                  method: GET
                  path: /echo/verify
                  headers:
                    X-Verify-Account: "{{account_id}}"
              - key: stripe
                base_urls:
                  PRODUCTION: {localstripe.url}
            """
        )
    )
    return path


@pytest.fixture
def settings(db_url: str, tmp_path: Path, echo_api: EchoApi, localstripe: LocalStripe) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_providers(tmp_path, echo_api, localstripe),
        allowed_target_networks=["127.0.0.0/8"],
    )


async def _connect(
    client: httpx.AsyncClient, headers: dict[str, str], config: dict[str, str], name: str = "acting"
) -> str:
    body: dict[str, Any] = {
        "providerKey": "echo-account",
        "name": name,
        "authType": "API_KEY",
        "credentials": {"apiKey": API_KEY},
        "config": config,
    }
    response = await client.post("/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _seen(
    client: httpx.AsyncClient, api_headers: dict[str, str], connection_id: str, **call: Any
) -> dict[str, str]:
    """The headers the echo server received for one proxy call (``call``: the proxy body)."""
    response = await client.post(
        f"/v1/connections/{connection_id}/proxy", json={"path": "/echo/h", **call}, headers=api_headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == 200, answer
    seen: dict[str, str] = answer["data"]["headers"]
    return seen


# -- calls through a connection --------------------------------------------------------------------


async def test_headers_are_filled_from_config_and_the_connection_wins(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, {"account_id": "acct_1Abc", "region": "eu"})
    seen = await _seen(client, admin_headers, conn)
    assert seen["stripe-account"] == "acct_1Abc"
    assert seen["x-account-region"] == "acct_1Abc.eu"
    assert seen["x-region"] == "eu"  # a default header's placeholder is filled too
    assert seen["x-api-key"] == API_KEY
    assert "x-loose" not in seen  # its setting is not set

    # The host app cannot act for another account: the connection's value replaces the caller's
    # (whatever the case of the name); a default header stays the caller's to change.
    seen = await _seen(
        client,
        admin_headers,
        conn,
        headers={"stripe-account": "acct_Other", "X-ACCOUNT-REGION": "x", "X-Region": "us", "X-Own": "1"},
    )
    assert seen["stripe-account"] == "acct_1Abc" and seen["x-account-region"] == "acct_1Abc.eu"
    assert seen["x-region"] == "us" and seen["x-own"] == "1"


async def test_a_header_whose_setting_is_absent_is_not_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    bare = await _connect(client, admin_headers, {}, name="bare")
    seen = await _seen(client, admin_headers, bare)
    assert not {"stripe-account", "x-account-region", "x-region", "x-loose"} & set(seen)
    assert seen["x-api-key"] == API_KEY
    # A caller's header of that name goes through when the connection names no account.
    seen = await _seen(client, admin_headers, bare, headers={"Stripe-Account": "acct_Caller"})
    assert seen["stripe-account"] == "acct_Caller"

    partly = await _connect(client, admin_headers, {"account_id": "acct_2"}, name="partly")
    seen = await _seen(client, admin_headers, partly)
    assert seen["stripe-account"] == "acct_2"
    assert "x-account-region" not in seen  # needs region as well


async def test_a_config_change_applies_to_the_next_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, {"account_id": "acct_First"})
    for _ in range(2):  # the second call is served by the cached plan
        assert (await _seen(client, admin_headers, conn))["stripe-account"] == "acct_First"
    patched = await client.patch(
        f"/v1/connections/{conn}", json={"config": {"account_id": "acct_Second"}}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert (await _seen(client, admin_headers, conn))["stripe-account"] == "acct_Second"
    patched = await client.patch(f"/v1/connections/{conn}", json={"config": {}}, headers=admin_headers)
    assert patched.status_code == 200, patched.text
    assert "stripe-account" not in await _seen(client, admin_headers, conn)


async def test_a_value_with_cr_lf_is_refused_before_anything_is_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, {"loose": "a\r\nX-Injected: 1"})
    before = echo_api.requests
    response = await client.post(
        f"/v1/connections/{conn}/proxy", json={"path": "/echo/h"}, headers=admin_headers
    )
    assert_problem(response, 422)
    assert response.json()["errors"][0]["field"] == "config.loose"
    assert "X-Loose" in response.json()["detail"]
    assert echo_api.requests == before


async def test_the_health_check_verification_call_carries_the_headers(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, {"account_id": "acct_Health", "region": "us"})
    echo_api.echoed.clear()
    response = await client.post(f"/v1/connections/{conn}/health-checks", headers=admin_headers)
    assert response.status_code == 201, response.text
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["http"]["status"] == "PASS", checks
    [seen] = echo_api.echoed
    assert seen["stripe-account"] == "acct_Health" and seen["x-account-region"] == "acct_Health.us"
    assert seen["x-verify-account"] == "acct_Health"  # the verification's own header, filled in
    assert seen["x-api-key"] == API_KEY


async def test_stripe_connector_sends_stripe_account(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, localstripe: LocalStripe
) -> None:
    """localstripe ignores Stripe-Account; the request log shows what was sent."""
    localstripe.flush()
    body = {
        "providerKey": "stripe",
        "name": "stripe connect",
        "authType": "API_KEY",
        "credentials": {"apiKey": localstripe.api_key},
        "config": {"account_id": "acct_1Connected"},
    }
    made = await client.post("/v1/connections", json=body, headers=admin_headers)
    assert made.status_code == 201, made.text
    conn = made.json()["id"]
    created = await client.post(
        f"/v1/connections/{conn}/resources/customers", json={"email": "c@example.com"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    logged = await client.get("/v1/api-requests", params={"connectionId": conn}, headers=admin_headers)
    assert logged.status_code == 200, logged.text
    [call] = logged.json()["data"]
    assert call["method"] == "POST" and call["url"].endswith("/v1/customers")
    sent = {name.lower(): value for name, value in call["requestHeaders"].items()}
    assert sent["stripe-account"] == "acct_1Connected"


async def test_the_provider_api_shows_request_headers(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    stripe = (await client.get("/v1/providers/stripe", headers=admin_headers)).json()
    assert stripe["requestHeaders"] == {"Stripe-Account": "{account_id}"}
    echo = (await client.get("/v1/providers/echo-account", headers=admin_headers)).json()
    assert echo["requestHeaders"]["X-Account-Region"] == "{account_id}.{region}"
    assert echo["defaultHeaders"] == {"X-Region": "{region}"}


# -- the shipped catalogue and catalogue errors ----------------------------------------------------


def test_shipped_request_headers() -> None:
    catalogue = load_catalogue()
    stripe = catalogue.providers["stripe"]
    assert stripe.request_headers == {"Stripe-Account": "{account_id}"}
    assert render_headers(stripe.request_headers, {"account_id": "acct_9"}, stripe.config_schema) == {
        "Stripe-Account": "acct_9"
    }
    assert render_headers(stripe.request_headers, {}, stripe.config_schema) == {}
    xero = catalogue.providers["xero"]
    tenant = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert render_headers(xero.request_headers, {"tenant_id": tenant}, xero.config_schema) == {
        "Xero-Tenant-Id": tenant
    }
    sendgrid = catalogue.providers["sendgrid"]
    assert render_headers(sendgrid.request_headers, {"subuser": "eu-shop"}, sendgrid.config_schema) == {
        "on-behalf-of": "eu-shop"
    }
    assert render_headers(sendgrid.request_headers, {}, sendgrid.config_schema) == {}


ACME = """\
  - key: acme
    name: Acme
    category: CRM
    docs_url: https://acme.example/docs
    auth_types: [API_KEY]
    api_key: {location: header, name: X-Api-Key, prefix: ""}
    config_schema:
      type: object
      properties:
        account: {type: string, pattern: "^[a-z0-9]{1,20}$"}
        free: {type: string}
    base_urls:
      PRODUCTION: https://api.acme.example
    default_headers:
      Accept: application/json
    request_headers:
      X-Account: "{account}"
"""


def _problems(tmp_path: Path, body: str) -> tuple[Path, str]:
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\nproviders:\n" + textwrap.dedent(body))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    return path, str(caught.value)


def _line(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_the_example_provider_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\nproviders:\n" + ACME)
    assert load_catalogue(path).providers["acme"].request_headers == {"X-Account": "{account}"}


@pytest.mark.parametrize(
    ("line", "replacement", "field", "text"),
    [
        (
            '      X-Account: "{account}"',
            '      X-Account: "{tenant}"',
            "request_headers.X-Account",
            "{tenant} in '{tenant}' is not a property of config_schema",
        ),
        (
            '      X-Account: "{account}"',
            '      X-Account: "{free}"',
            "request_headers.X-Account",
            "config_schema.properties.free must be a string with a pattern or an enum",
        ),
        (
            '      X-Account: "{account}"',
            '      X-Account: "{Account!r}"',
            "request_headers.X-Account",
            "must be a lower-case name",
        ),
        (
            '      X-Account: "{account}"',
            '      X-Account: "a\\r\\nX-Evil: {account}"',
            "request_headers.X-Account",
            "must not contain CR, LF",
        ),
        (
            '      X-Account: "{account}"',
            '      Authorization: "Bearer {account}"',
            "request_headers.Authorization",
            "is set by Interlink",
        ),
        (
            '      X-Account: "{account}"',
            '      host: "{account}"',
            "request_headers.host",
            "is set by Interlink",
        ),
        (
            '      X-Account: "{account}"',
            '      Proxy-Authorization: "{account}"',
            "request_headers.Proxy-Authorization",
            "is set by Interlink",
        ),
        (
            '      X-Account: "{account}"',
            '      Transfer-Encoding: "{account}"',
            "request_headers.Transfer-Encoding",
            "is set by Interlink",
        ),
        (
            '      X-Account: "{account}"',
            '      "Bad Name": "{account}"',
            "request_headers.Bad Name",
            "is not a valid header name",
        ),
    ],
)
def test_request_header_errors_name_file_line_and_field(
    tmp_path: Path, line: str, replacement: str, field: str, text: str
) -> None:
    assert line in ACME
    path, message = _problems(tmp_path, ACME.replace(line, replacement))
    at = _line(path, replacement.strip().split(":", 1)[0])
    assert f"{path}:{at}: provider 'acme': {field}" in message, message
    assert text in message, message


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ('      x-account: "{account}"\n', "names x-account twice"),
        ('      accept: "{account}"\n', "accept is also in default_headers"),
        ('      X-API-KEY: "{account}"\n', "X-API-KEY carries the API key"),
    ],
)
def test_request_headers_that_clash(tmp_path: Path, extra: str, text: str) -> None:
    path, message = _problems(tmp_path, ACME + extra)
    at = _line(path, "request_headers:")
    assert f"provider 'acme': request_headers: {text}" in message, message
    reported = int(message.split(f"{path}:", 1)[1].split(":", 1)[0])
    assert at <= reported <= at + 1, message


def test_render_headers_guards_values() -> None:
    schema = {"type": "object", "properties": {"v": {"type": "string", "default": "dflt"}}}
    assert render_headers({"X-V": "{v}"}, {}, schema) == {"X-V": "dflt"}
    assert render_headers({"X-V": "{v}"}, {"v": ""}, schema) == {}  # empty: not set
    assert render_headers({"X-V": "{v}", "X-Fixed": "1"}, {"v": None}, None) == {"X-Fixed": "1"}
    for bad in ("a\nb", "a\rb", "a\x00b", " lead", "x" * 1001, "ü"):
        with pytest.raises(ValueError, match=r"config\.v cannot be sent in the X-V header"):
            render_headers({"X-V": "{v}"}, {"v": bad}, None)
