"""The provider catalogue: shipped providers, validation errors with file:line and field, operator
overrides, ``/v1/providers`` (filters, pagination, 404), the SDK and CLI, and the provider table."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator

from interlink.bootstrap import bootstrap_if_empty
from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError
from interlink.connections.catalogue import CatalogueError, ProviderCatalogue, load_catalogue
from interlink.connections.models import IntegrationProvider
from interlink.connections.providers import sync_providers
from interlink.connections.schemas import IntegrationProviderExtended, WebhookSignatureScheme, render_template
from interlink.core.db import Database
from interlink.core.enums import AuthenticationType, IntegrationCategory, IntegrationProviderStatus
from interlink.core.migrate import upgrade
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, serve
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, make_settings

INTERLINK = str(Path(sys.executable).parent / "interlink")

REQUIRED = {
    "stripe", "xero", "quickbooks", "hubspot", "salesforce", "slack", "github", "shopify", "zendesk",
    "jira", "google-sheets", "microsoft-graph", "twilio", "sendgrid", "mailchimp", "notion", "asana",
    "intercom", "pipedrive", "netsuite",
}  # fmt: skip

SAMPLE_CONFIG: dict[str, dict[str, str]] = {
    "stripe": {"account_id": "acct_1Abc"},
    "xero": {"tenant_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
    "quickbooks": {"realm_id": "4620816365178370"},
    "salesforce": {"my_domain": "acme-corp"},
    "shopify": {"shop": "acme-store"},
    "zendesk": {"subdomain": "acme"},
    "jira": {"site": "acme", "cloud_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
    "microsoft-graph": {"tenant": "contoso.onmicrosoft.com"},
    "twilio": {"account_sid": "AC" + "0123456789abcdef" * 2},
    "mailchimp": {"dc": "us6"},
    "intercom": {"api_host": "api.eu.intercom.io"},
    "pipedrive": {"company_domain": "acme"},
    "netsuite": {"account_id": "1234567-sb1"},
}


# -- the shipped catalogue ---------------------------------------------------------------------------


def test_every_shipped_provider_validates_and_its_templates_resolve() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.providers) >= REQUIRED
    assert list(catalogue.providers) == sorted(catalogue.providers)
    for key, provider in catalogue.providers.items():
        assert catalogue.sources[key] == "builtin"
        assert urlsplit(provider.docs_url).scheme == "https", key
        config = SAMPLE_CONFIG.get(key, {})
        if provider.config_schema:
            Draft202012Validator(provider.config_schema).validate(config)
        templates = list(provider.base_urls.values())
        if provider.oauth2:
            templates += provider.oauth2.templates()
        for template in templates:
            url = urlsplit(render_template(template, config, provider.config_schema))
            assert url.scheme == "https" and url.hostname, (key, template)
            assert "{" not in url.geturl(), (key, template)
        if provider.verification:
            path = render_template(provider.verification.path, config, provider.config_schema)
            assert path.startswith("/") and "{" not in path, key
        oauth_code = AuthenticationType.OAUTH2_AUTHORIZATION_CODE in provider.auth_types
        assert (provider.oauth2 is not None and provider.oauth2.authorize_url is not None) or not oauth_code
        # What the API answers (camelCase) parses back into the same provider (the SDK does this).
        dumped = provider.model_dump(mode="json", by_alias=True)
        assert IntegrationProviderExtended.model_validate(dumped) == provider


def test_shipped_facts_that_other_features_rely_on() -> None:
    catalogue = load_catalogue()
    stripe = catalogue.providers["stripe"]
    assert stripe.webhooks.scheme is WebhookSignatureScheme.STRIPE
    assert stripe.webhooks.header == "Stripe-Signature"
    assert stripe.verification is not None and stripe.verification.path == "/v1/balance"
    assert stripe.api_key is not None and stripe.api_key.prefix == "Bearer "
    assert catalogue.providers["github"].webhooks.header == "X-Hub-Signature-256"
    shopify = catalogue.providers["shopify"]
    assert (shopify.webhooks.header, shopify.webhooks.encoding) == ("X-Shopify-Hmac-Sha256", "base64")
    zendesk = catalogue.providers["zendesk"]
    assert render_template(zendesk.base_urls["PRODUCTION"], {"subdomain": "acme"}, zendesk.config_schema) == (
        "https://acme.zendesk.com/api/v2"
    )
    shop = render_template(shopify.base_urls["PRODUCTION"], {"shop": "acme"}, shopify.config_schema)
    assert shop.startswith("https://acme.myshopify.com/admin/api/20")  # the schema's default version


@pytest.mark.parametrize("value", ["evil.com/x", "a@b", "a:1", "", "x?y", "a#b"])
def test_placeholder_values_cannot_leave_their_segment(value: str) -> None:
    zendesk = load_catalogue().providers["zendesk"]
    with pytest.raises(ValueError, match=r"config\.subdomain"):
        render_template(zendesk.base_urls["PRODUCTION"], {"subdomain": value}, zendesk.config_schema)


# -- broken files ------------------------------------------------------------------------------------

VALID_ACME = """\
  - key: acme
    name: Acme
    category: CRM
    docs_url: https://acme.example/docs
    auth_types: [API_KEY]
    base_urls:
      PRODUCTION: https://api.acme.example
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\nproviders:\n" + textwrap.dedent(body))
    return path


def _line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in {path}")


def _problems(path: Path) -> str:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    return str(caught.value)


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        VALID_ACME
        + """\
    rate_limits:
      - limit: lots
        window_seconds: 60
        scope: account
        description: per minute
""",
    )
    message = _problems(path)
    assert f"{path}:{_line_of(path, 'limit: lots')}: provider 'acme': rate_limits[0].limit:" in message
    assert "valid integer" in message


def test_unknown_category_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("category: CRM", "category: BANKING"))
    message = _problems(path)
    line = _line_of(path, "category: BANKING")
    assert f"{path}:{line}: provider 'acme': category: 'BANKING' is not one of" in message


def test_missing_field_names_the_provider_line(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("    name: Acme\n", ""))
    message = _problems(path)
    assert f"{path}:{_line_of(path, 'key: acme')}: provider 'acme': name: missing field" in message


def test_missing_provider_key(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("  - key: acme\n    name", "  - name"))
    message = _problems(path)
    assert f"{path}:{_line_of(path, 'name: Acme')}: provider without a key: missing field 'key'" in message


def test_duplicate_provider_key(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME + VALID_ACME)
    message = _problems(path)
    second = _line_of(path, "key: acme", occurrence=2)
    assert (
        f"{path}:{second}: duplicate provider key 'acme' (first at line {_line_of(path, 'key: acme')})"
        in message
    )


def test_duplicate_field_in_one_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME + "    name: Acme again\n")
    message = _problems(path)
    assert f"{path}:{_line_of(path, 'name: Acme again')}: field 'name' appears twice" in message


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME + "    description: [unclosed\n")
    message = _problems(path)
    assert f"{path}:" in message and "not valid YAML" in message


@pytest.mark.parametrize(
    ("extra", "needle", "field", "text"),
    [
        (
            "    oauth2:\n      token_url: https://acme.example/token\n",
            "oauth2:",
            "oauth2",
            "auth_types lists no OAUTH2_* type",
        ),
        (
            "    webhooks:\n      scheme: hmac_header\n",
            "scheme: hmac_header",
            "webhooks",
            "hmac_header needs",
        ),
        (
            "    webhooks:\n      scheme: github\n      header: X-Other\n",
            "scheme: github",
            "webhooks",
            "fixed by",
        ),
        (
            "    verification:\n      path: https://elsewhere/\n",
            "path: https",
            "verification.path",
            "starting with /",
        ),
        ("    unknown_thing: 1\n", "unknown_thing", "unknown_thing", "unknown field"),
    ],
)
def test_semantic_errors_name_the_field(
    tmp_path: Path, extra: str, needle: str, field: str, text: str
) -> None:
    path = _write(tmp_path, VALID_ACME + extra)
    message = _problems(path)
    assert f"provider 'acme': {field}: " in message, message
    assert text in message
    line = int(message.split(f"{path}:", 1)[1].split(":", 1)[0])
    assert abs(line - _line_of(path, needle)) <= 1, message


def test_placeholders_must_be_constrained_config_properties(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("https://api.acme.example", "https://{tenant}.acme.example"))
    assert "base_urls: {tenant} in 'https://{tenant}.acme.example' is not a property of config_schema" in (
        _problems(path)
    )
    loose = VALID_ACME.replace("https://api.acme.example", "https://{tenant}.acme.example") + (
        "    config_schema:\n      type: object\n      properties:\n        tenant: {type: string}\n"
    )
    path = _write(tmp_path, loose)
    assert "must be a string with a pattern or an enum" in _problems(path)


def test_oauth2_settings_are_required_with_an_oauth2_auth_type(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("[API_KEY]", "[OAUTH2_CLIENT_CREDENTIALS]"))
    message = _problems(path)
    line = _line_of(path, "key: acme")
    assert f"{path}:{line}: provider 'acme': oauth2: is required for OAUTH2_* authentication types" in message


@pytest.mark.parametrize(
    ("extra", "needle", "field", "text"),
    [
        ('    description: "A\\0B"\n', "description:", "description", "must not contain NUL characters"),
        (
            "    config_schema:\n      type: object\n      properties:\n"
            "        n: {type: number, maximum: .inf}\n",
            "maximum: .inf",
            "config_schema.properties.n.maximum",
            "must be a finite number",
        ),
    ],
    ids=["nul", "infinity"],
)
def test_values_no_database_or_json_can_hold_are_refused(
    tmp_path: Path, extra: str, needle: str, field: str, text: str
) -> None:
    """A NUL would fail the provider table's sync on PostgreSQL; .inf would be served as null."""
    path = _write(tmp_path, VALID_ACME + extra)
    message = _problems(path)
    assert f"{path}:{_line_of(path, needle)}: provider 'acme': {field}: {text}" in message, message


# -- operator overrides ------------------------------------------------------------------------------


def test_override_file_merges_by_key_and_adds_providers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        VALID_ACME
        + """\
  - key: stripe
    status: DISABLED
    oauth2:
      default_scopes: [read_only]
    rate_limits: []
""",
    )
    catalogue = load_catalogue(path)
    builtin = load_catalogue()
    stripe, original = catalogue.providers["stripe"], builtin.providers["stripe"]
    assert stripe.status is IntegrationProviderStatus.DISABLED
    assert stripe.oauth2 is not None and original.oauth2 is not None
    assert stripe.oauth2.default_scopes == ["read_only"]
    assert stripe.oauth2.token_url == original.oauth2.token_url  # merged, not replaced
    assert stripe.rate_limits == []  # lists replace
    assert stripe.webhooks == original.webhooks
    assert catalogue.providers["acme"].name == "Acme"
    assert catalogue.sources["stripe"] == "builtin+custom"
    assert catalogue.sources["acme"] == "custom"
    assert catalogue.sources["xero"] == "builtin"
    assert set(catalogue.providers) == set(builtin.providers) | {"acme"}


def test_override_errors_point_into_the_override_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - key: stripe\n    oauth2:\n      token_url: 42\n")
    message = _problems(path)
    assert f"{path}:{_line_of(path, 'token_url: 42')}: provider 'stripe': oauth2.token_url:" in message


def test_the_documented_override_example_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    section = text.split("## The provider catalogue", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "operator.yaml"
    path.write_text(example)
    catalogue = load_catalogue(path)
    assert catalogue.providers["stripe"].status is IntegrationProviderStatus.DISABLED
    acme = catalogue.providers["acme-erp"]
    assert render_template(acme.base_urls["SANDBOX"], {"tenant": "t1"}, acme.config_schema) == (
        "https://t1.sandbox.acme.example/v2"
    )
    assert acme.api_key is not None and acme.api_key.name == "X-Api-Key"


def test_serve_refuses_an_invalid_catalogue_with_the_message(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME.replace("category: CRM", "category: BANKING"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update({"INTERLINK_DATA_DIR": str(tmp_path / "data"), "INTERLINK_PROVIDERS_FILE": str(path)})
    result = subprocess.run(
        [INTERLINK, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "refusing to start: invalid provider catalogue" in result.stderr
    assert f"{path}:{_line_of(path, 'category: BANKING')}: provider 'acme': category:" in result.stderr


def test_runtime_refuses_an_invalid_catalogue(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_ACME + VALID_ACME)
    settings = make_settings("sqlite+aiosqlite:///" + str(tmp_path / "x.db"), tmp_path, providers_file=path)
    with pytest.raises(CatalogueError, match="duplicate provider key 'acme'"):
        Runtime(settings)


# -- REST --------------------------------------------------------------------------------------------


async def test_list_providers_sorted_and_paginated(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    everything = await client.get("/v1/providers", headers=admin_headers)
    assert everything.status_code == 200, everything.text
    body = everything.json()
    keys = [p["key"] for p in body["data"]]
    assert keys == sorted(load_catalogue().providers) and body["hasMore"] is False
    assert body["nextCursor"] is None

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"after": after} if after else {})
        page = (await client.get("/v1/providers", params=params, headers=admin_headers)).json()
        pages += 1
        seen += [p["key"] for p in page["data"]]
        if not page["hasMore"]:
            break
        assert page["nextCursor"] == page["data"][-1]["key"]
        after = page["nextCursor"]
    assert seen == keys
    assert pages == -(-len(keys) // 7)


async def test_provider_filters(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    catalogue = load_catalogue()

    async def keys(**params: str) -> list[str]:
        response = await client.get("/v1/providers", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        return [p["key"] for p in response.json()["data"]]

    accounting = sorted(
        k for k, p in catalogue.providers.items() if p.category is IntegrationCategory.ACCOUNTING
    )
    assert await keys(category="ACCOUNTING") == accounting
    assert {"xero", "quickbooks"} <= set(accounting)
    assert await keys(status="BETA") == ["netsuite"]
    api_key = sorted(k for k, p in catalogue.providers.items() if AuthenticationType.API_KEY in p.auth_types)
    assert await keys(authType="API_KEY") == api_key
    assert "stripe" in api_key and "quickbooks" not in api_key
    assert await keys(q="ZENDESK") == ["zendesk"]
    assert await keys(q="accounting") == accounting  # the category is searched too
    assert await keys(category="CRM", authType="API_KEY") == ["pipedrive"]
    assert await keys(category="HR") == []

    bad = await client.get("/v1/providers", params={"category": "BANKING"}, headers=admin_headers)
    assert "category" in json.dumps(assert_problem(bad, 422).get("errors"))
    bad = await client.get("/v1/providers", params={"after": "Not A Key!"}, headers=admin_headers)
    assert "after" in json.dumps(assert_problem(bad, 422).get("errors"))
    bad = await client.get("/v1/providers", params={"limit": 0}, headers=admin_headers)
    assert "limit" in json.dumps(assert_problem(bad, 422).get("errors"))


async def test_get_provider_and_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get("/v1/providers/shopify", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key"] == "shopify" and body["category"] == "ECOMMERCE"
    assert body["authTypes"] == ["OAUTH2_AUTHORIZATION_CODE", "API_KEY"]
    assert body["baseUrls"]["PRODUCTION"].startswith("https://{shop}.myshopify.com/admin/api/")
    assert body["oauth2"]["authorizeUrl"] == "https://{shop}.myshopify.com/admin/oauth/authorize"
    assert body["apiKey"] == {"location": "header", "name": "X-Shopify-Access-Token", "prefix": ""}
    assert body["webhooks"]["scheme"] == "shopify"
    assert body["configSchema"]["required"] == ["shop"]
    assert "PCI DSS Level 1" in body["compliance"]["certifications"]

    missing = await client.get("/v1/providers/no-such-provider", headers=admin_headers)
    problem = assert_problem(missing, 404)
    assert problem["type"] == "urn:interlink:problem:not-found"
    assert "no-such-provider" in problem["detail"]


async def test_any_valid_key_reads_the_catalogue(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    made = await client.post(
        "/v1/keys", json={"name": "verifier", "scopes": ["keys:verify"]}, headers=admin_headers
    )
    assert made.status_code == 201, made.text
    narrow = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await client.get("/v1/providers", headers=narrow)).status_code == 200
    assert (await client.get("/v1/providers/stripe", headers=narrow)).status_code == 200
    assert_problem(await client.get("/v1/providers"), 401)
    assert_problem(await client.get("/v1/providers", headers={"Authorization": "Bearer il_live_nope"}), 401)


async def test_a_disabled_provider_takes_no_new_connections(db_url: str, tmp_path: Path) -> None:
    """DISABLED: no new connections (create and validate refuse them); DEPRECATED still accepts."""
    path = _write(
        tmp_path, "  - key: stripe\n    status: DISABLED\n  - key: twilio\n    status: DEPRECATED\n"
    )
    async with serve(make_settings(db_url, tmp_path / "data", providers_file=path)) as (runtime, client):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        headers = {"Authorization": f"Bearer {admin.key}"}
        body = {"providerKey": "stripe", "name": "pay", "credentials": {"apiKey": "sk_test_1"}}
        for path_ in ("/v1/connections/validate", "/v1/connections"):
            refused = assert_problem(await client.post(path_, json=body, headers=headers), 422)
            assert refused["errors"][0]["field"] == "providerKey", refused
            assert "disabled" in refused["detail"]
        listed = (await client.get("/v1/connections", headers=headers)).json()
        assert listed["data"] == []
        sid = "AC" + "0123456789abcdef" * 2
        deprecated = {
            "providerKey": "twilio",
            "name": "sms",
            "config": {"account_sid": sid},
            "credentials": {"username": sid, "password": "token"},
        }
        made = await client.post("/v1/connections", json=deprecated, headers=headers)
        assert made.status_code == 201, made.text


# -- the provider table ------------------------------------------------------------------------------


async def _rows(db: Database) -> dict[str, IntegrationProvider]:
    async with db.unit_of_work(write=False) as session:
        return {r.key: r for r in (await session.execute(sa.select(IntegrationProvider))).scalars()}


async def test_provider_table_is_in_sync_after_start(runtime: Runtime) -> None:
    rows = await _rows(runtime.db)
    catalogue = runtime.providers
    assert set(rows) == set(catalogue.providers)
    for key, row in rows.items():
        provider = catalogue.providers[key]
        assert row.listed is True
        assert row.spec_hash == catalogue.spec_hash(key)
        assert row.name == provider.name and row.category is provider.category
        assert row.auth_types == [t.value for t in provider.auth_types]
        assert IntegrationProviderExtended.model_validate(row.spec) == provider
    assert (await sync_providers(runtime.db, catalogue)).written == 0  # nothing changed, nothing written


async def test_concurrent_syncs_and_catalogue_changes(db_url: str, tmp_path: Path) -> None:
    databases = [Database(db_url) for _ in range(4)]
    catalogue = load_catalogue()
    try:
        async with databases[0].unit_of_work() as session:
            await session.execute(sa.delete(IntegrationProvider))
        await asyncio.gather(*(sync_providers(db, catalogue) for db in databases))
        rows = await _rows(databases[0])
        assert {k: r.spec_hash for k, r in rows.items()} == {
            k: catalogue.spec_hash(k) for k in catalogue.providers
        }

        path = _write(tmp_path, VALID_ACME + "  - key: stripe\n    status: DISABLED\n")
        changed = load_catalogue(path)
        results = await asyncio.gather(*(sync_providers(db, changed) for db in databases))
        assert sum(r.written for r in results) >= 2  # acme and stripe, whoever wrote them
        rows = await _rows(databases[1])
        assert rows["stripe"].status is IntegrationProviderStatus.DISABLED
        assert rows["stripe"].source == "builtin+custom"
        assert rows["acme"].source == "custom"

        smaller = ProviderCatalogue(
            {k: p for k, p in catalogue.providers.items() if k != "twilio"},
            {k: s for k, s in catalogue.sources.items() if k != "twilio"},
        )
        result = await sync_providers(databases[2], smaller)
        assert result.unlisted == 2  # twilio and acme leave the catalogue; their rows stay
        rows = await _rows(databases[2])
        assert rows["twilio"].listed is False and rows["acme"].listed is False
        assert rows["stripe"].status is IntegrationProviderStatus.ACTIVE

        await sync_providers(databases[3], catalogue)
        rows = await _rows(databases[3])
        assert rows["twilio"].listed is True and rows["acme"].listed is False
    finally:
        for db in databases:
            await db.dispose()


async def test_a_sync_that_fails_at_start_is_retried(tmp_path: Path) -> None:
    """The database is not migrated when the process starts: it starts anyway and syncs later."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    runtime = Runtime(make_settings(url, tmp_path / "data"))
    await runtime.start()
    try:
        assert runtime._provider_sync_task is not None and not runtime._provider_sync_task.done()
        await asyncio.to_thread(upgrade, url)
        await asyncio.wait_for(runtime._provider_sync_task, timeout=30)
        assert set(await _rows(runtime.db)) == set(runtime.providers.providers)
    finally:
        await runtime.stop()


# -- SDK and CLI -------------------------------------------------------------------------------------


def test_sdk_providers(live_server: LiveServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        page = sdk.providers.list(category=IntegrationCategory.ACCOUNTING)
        assert {p.key for p in page} >= {"xero", "quickbooks"}
        first = sdk.providers.list(limit=5)
        assert len(first) == 5 and first.has_more and first.next_cursor == first.data[-1].key
        every = list(sdk.providers.iter_all(page_size=6))
        assert [p.key for p in every] == sorted(load_catalogue().providers)
        oauth = list(sdk.providers.iter_all(auth_type="OAUTH2_CLIENT_CREDENTIALS", page_size=2))
        assert {p.key for p in oauth} >= {"xero", "microsoft-graph", "salesforce", "netsuite"}
        stripe = sdk.providers.get("stripe")
        assert isinstance(stripe, IntegrationProviderExtended)
        assert stripe == load_catalogue().providers["stripe"]
        with pytest.raises(NotFoundError):
            sdk.providers.get("nope")


async def test_async_sdk_providers(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
        page = await sdk.providers.list(status="BETA")
        assert [p.key for p in page] == ["netsuite"]
        keys = [p.key async for p in sdk.providers.iter_all(q="google", page_size=1)]
        assert keys == ["google-sheets"]
        assert (await sdk.providers.get("slack")).webhooks.header == "X-Slack-Signature"
        with pytest.raises(NotFoundError):
            await sdk.providers.get("nope")


def _cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update({"INTERLINK_API_URL": server.url, "INTERLINK_API_KEY": server.admin_key, "COLUMNS": "250"})
    result = run_interlink(args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_cli_providers(live_server: LiveServer) -> None:
    listed = _cli(live_server, "providers", "list", "--category", "ACCOUNTING", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {p["key"] for p in json.loads(listed.stdout)["data"]} >= {"xero", "quickbooks"}

    table = _cli(live_server, "providers", "list", "--auth-type", "BASIC", "--status", "ACTIVE")
    assert table.returncode == 0, table.stderr
    assert "twilio" in table.stdout and "zendesk" in table.stdout and "stripe" not in table.stdout

    shown = _cli(live_server, "providers", "show", "zendesk")
    assert shown.returncode == 0, shown.stderr
    for text in (
        "https://{subdomain}.zendesk.com/api/v2",
        "X-Zendesk-Webhook-Signature",
        "subdomain",
        "SOC 2",
    ):
        assert text in shown.stdout, text

    missing = _cli(live_server, "providers", "show", "nope")
    assert missing.returncode == 1
    assert "404" in missing.stderr and "nope" in missing.stderr

    bad = _cli(live_server, "providers", "list", "--category", "BANKING")
    assert bad.returncode == 2
