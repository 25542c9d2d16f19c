"""Connectors: declarative specs (validation with file/line/field), the declarative REST connector
against json-server (page, offset, link-header and single-page listings, the incremental filter,
every CRUD operation, cursor tampering), and ``/v1/connectors`` over REST, the SDK and the CLI."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.bootstrap import bootstrap_if_empty
from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError
from interlink.connectors import registry as registry_module
from interlink.connectors.base import (
    Connector,
    OperationNotAllowed,
    ProviderError,
    RecordNotFound,
    UnknownResource,
    flatten_form,
)
from interlink.connectors.registry import load_registry
from interlink.connectors.rest import DeclarativeRestConnector
from interlink.connectors.spec import ConnectorSpecError, load_specs
from interlink.core.errors import ValidationFailed
from interlink.outbound.client import ApiClient, OutboundService
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.runtime import Runtime
from tests.api_helpers import serve
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, make_settings
from tests.external import JsonServer, json_server_fixture  # noqa: F401  (the fixture)

SPECS = Path(__file__).resolve().parent / "fixtures" / "connectors" / "json_server.yaml"
LOCAL = [ipaddress.ip_network("127.0.0.1/32")]


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundService]:
    service = OutboundService(allowed_networks=LOCAL)
    yield service
    await service.close()


@pytest.fixture
def api(outbound: OutboundService, json_server: JsonServer) -> ApiClient:
    json_server.reset()
    config = ApiClientConfig(
        tenant_id="ten_test", base_url=json_server.url, retry=RetryPolicy(max_attempts=1)
    )
    return outbound.client(config)


def connector(key: str) -> Connector:
    found = load_registry(SPECS).get(key)
    assert found is not None
    return found


async def walk(
    conn: Connector, api: ApiClient, resource: str = "customers", **kwargs: Any
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await conn.list_records(api, resource, cursor=cursor, **kwargs)
        pages.append([r.id for r in page.records])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 20


# -- listing -------------------------------------------------------------------------------------------


async def test_page_style_walks_every_page(api: ApiClient) -> None:
    pages = await walk(connector("js-page"), api)
    assert pages == [["1", "2", "3", "4"], ["5", "6", "7", "8"], ["9", "10"]]
    invoices = await walk(connector("js-page"), api, "invoices")
    assert [len(p) for p in invoices] == [5, 5, 2]


async def test_offset_style_and_caller_limit(api: ApiClient) -> None:
    pages = await walk(connector("js-offset"), api)
    assert pages == [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["10"]]
    pages = await walk(connector("js-offset"), api, limit=5)
    # A full last page costs one more (empty) request; the listing still ends.
    assert pages == [["1", "2", "3", "4", "5"], ["6", "7", "8", "9", "10"], []]


async def test_link_header_style_follows_rel_next(api: ApiClient, json_server: JsonServer) -> None:
    pages = await walk(connector("js-link"), api)
    assert pages == [["1", "2", "3", "4"], ["5", "6", "7", "8"], ["9", "10"]]
    assert json_server.stats()["byRoute"]["GET /customers"] == 3


@pytest.mark.parametrize("key", ["js-cursor", "js-cursor-header", "js-cursor-last-id"])
async def test_cursor_styles_follow_the_token(api: ApiClient, json_server: JsonServer, key: str) -> None:
    """The token from the body (``cursor_path``), a header (``cursor_header``) or the last record's
    id (``cursor_from: last_id``) goes back as ``cursor_param``; the listing ends when there is none
    or ``has_more_path`` is false, and ``since`` is kept across pages."""
    pages = await walk(connector(key), api)
    assert pages == [["1", "2", "3", "4"], ["5", "6", "7", "8"], ["9", "10"]], key
    assert json_server.stats()["byRoute"]["GET /cursor/customers"] == 3
    pages = await walk(connector(key), api, since=datetime(2026, 1, 9, tzinfo=UTC), limit=2)
    assert [i for p in pages for i in p] == ["5", "6", "7", "8", "9", "10"], key


async def test_single_page_style(api: ApiClient) -> None:
    pages = await walk(connector("js-none"), api)
    assert pages == [[str(i) for i in range(1, 11)]]


async def test_records_carry_id_updated_at_and_data(api: ApiClient) -> None:
    page = await connector("js-page").list_records(api, "customers", limit=1)
    record = page.records[0]
    assert record.id == "1" and record.data["name"] == "Ada Lovelace"
    assert record.updated_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def test_incremental_filter_sent_and_kept_across_pages(api: ApiClient) -> None:
    since = datetime(2026, 1, 9, tzinfo=UTC)
    for key in ("js-page", "js-offset", "js-link"):
        pages = await walk(connector(key), api, since=since, limit=2)
        ids = [i for p in pages for i in p]
        assert ids == ["5", "6", "7", "8", "9", "10"], key
    with pytest.raises(ValidationFailed) as bad:
        await connector("js-page").list_records(api, "invoices", since=since)
    assert bad.value.extra["errors"][0]["field"] == "since"
    with pytest.raises(ValidationFailed) as naive:
        await connector("js-page").list_records(api, "customers", since=datetime(2026, 1, 1))
    assert naive.value.extra["errors"][0]["field"] == "since"


async def test_max_pages_caps_a_listing(api: ApiClient, tmp_path: Path) -> None:
    text = SPECS.read_text().replace("page_size: 4}", "page_size: 4, max_pages: 2}", 1)
    capped = tmp_path / "capped.yaml"
    capped.write_text(text)
    conn = load_registry(capped).get("js-page")
    assert conn is not None
    assert await walk(conn, api) == [["1", "2", "3", "4"], ["5", "6", "7", "8"]]
    first = await conn.list_records(api, "customers")
    assert first.truncated is False and first.next_cursor is not None
    second = await conn.list_records(api, "customers", cursor=first.next_cursor)
    assert second.truncated is True and second.next_cursor is None  # the provider had a third page
    # A listing that ends by itself is not cut short, even on the page that reaches the cap.
    whole = await walk(connector("js-page"), api)
    assert len(whole) == 3
    exact = tmp_path / "exact.yaml"
    exact.write_text(SPECS.read_text().replace("page_size: 4}", "page_size: 4, max_pages: 3}", 1))
    at_cap = load_registry(exact).get("js-page")
    assert at_cap is not None
    cursor = None
    for _ in range(3):
        page = await at_cap.list_records(api, "customers", cursor=cursor)
        cursor = page.next_cursor
    assert (page.truncated, page.next_cursor, [r.id for r in page.records]) == (False, None, ["9", "10"])


async def test_cursor_tampering_is_422(api: ApiClient) -> None:
    conn = connector("js-page")
    page = await conn.list_records(api, "customers")
    assert page.next_cursor is not None
    state = json.loads(base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4)))

    def encode(payload: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    bad_cursors = [
        "not-a-cursor!",
        encode([1, 2]),
        encode({**state, "r": "invoices"}),
        encode({**state, "k": "js-offset"}),
        encode({**state, "s": {**state["s"], "p": "two"}}),
        encode({**state, "s": {**state["s"], "z": 10_000}}),
        "A" * 5000,
    ]
    for cursor in bad_cursors:
        with pytest.raises(ValidationFailed) as exc:
            await conn.list_records(api, "customers", cursor=cursor)
        assert exc.value.status == 422
        assert exc.value.extra["errors"][0]["field"] == "cursor", cursor
    # Another connector's cursor is refused too.
    with pytest.raises(ValidationFailed):
        await connector("js-offset").list_records(api, "customers", cursor=page.next_cursor)


async def test_link_cursor_cannot_leave_the_list_path(api: ApiClient, json_server: JsonServer) -> None:
    """A link-header cursor keeps only the next link's query, never its host or path."""
    conn = connector("js-link")
    page = await conn.list_records(api, "customers")
    assert page.next_cursor is not None
    payload = json.loads(base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4)))
    assert set(payload["s"]) == {"q", "z", "n", "t"}
    assert all(not value.startswith("http") for _, value in payload["s"]["q"])


# -- one record ------------------------------------------------------------------------------------------


async def test_crud_through_the_declarative_connector(api: ApiClient, json_server: JsonServer) -> None:
    for key in ("js-page", "js-link"):  # PATCH and PUT updates
        json_server.reset()
        conn = connector(key)
        created = await conn.create_record(
            api,
            "customers",
            {"name": "Annie Easley", "email": "annie@example.com", "updatedAt": "2026-02-01T00:00:00Z"},
        )
        assert created.id == "11" and created.data["name"] == "Annie Easley"
        got = await conn.get_record(api, "customers", created.id)
        assert got.data["email"] == "annie@example.com"
        updated = await conn.update_record(
            api, "customers", created.id, {"name": "Annie J. Easley", "email": "annie@example.com"}
        )
        assert updated.data["name"] == "Annie J. Easley"
        assert updated.updated_at is None or key == "js-page"
        await conn.delete_record(api, "customers", created.id)
        with pytest.raises(RecordNotFound):
            await conn.get_record(api, "customers", created.id)
        with pytest.raises(RecordNotFound):
            await conn.delete_record(api, "customers", created.id)


async def test_unknown_resources_operations_and_provider_errors(
    api: ApiClient, json_server: JsonServer
) -> None:
    conn = connector("js-page")
    with pytest.raises(UnknownResource):
        await conn.list_records(api, "orders")
    with pytest.raises(OperationNotAllowed) as not_allowed:
        await conn.create_record(api, "invoices", {"number": "X"})
    assert not_allowed.value.status == 405 and not_allowed.value.extra["allowed"] == ["list", "get"]
    with pytest.raises(ValidationFailed) as bad_id:
        await conn.get_record(api, "customers", "a/b")
    assert bad_id.value.extra["errors"][0]["field"] == "recordId"
    json_server.inject({"method": "GET", "path": "/customers", "status": 500, "body": {"error": "boom"}})
    with pytest.raises(ProviderError) as upstream:
        await conn.list_records(api, "customers")
    assert upstream.value.status == 502
    assert upstream.value.extra["upstreamStatus"] == 500 and "boom" in upstream.value.detail


def test_flatten_form_nests_with_brackets() -> None:
    assert flatten_form({"email": "a@b.c", "metadata": {"plan": "pro", "seats": 3}, "tags": ["x", "y"]}) == {
        "email": "a@b.c",
        "metadata[plan]": "pro",
        "metadata[seats]": 3,
        "tags[0]": "x",
        "tags[1]": "y",
    }
    assert flatten_form({"description": None, "lines": [{"amount": 5, "live": True}]}) == {
        "description": "",
        "lines[0][amount]": 5,
        "lines[0][live]": True,
    }


# -- spec validation -------------------------------------------------------------------------------------


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConnectorSpecError) as exc:
        load_specs([path])
    return exc.value.problems


def test_spec_errors_name_file_line_and_field(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """version: 1
connectors:
  - key: acme
    name: Acme
    resources:
      - name: customers
        list_path: /customers
        get_path: /customers/{key}
        pagination: {style: offset, offset_param: start}
      - name: invoices
        list_path: invoices
        pagination: {style: sideways}
        colour: blue
""",
    )
    text = "\n".join(problems)
    assert "bad.yaml:8: connector 'acme': resources[0].get_path:" in text and "{id}" in text
    assert "bad.yaml:9: connector 'acme': resources[0].pagination:" in text and "size_param" in text
    assert "bad.yaml:11: connector 'acme': resources[1].list_path:" in text
    assert "bad.yaml:12: connector 'acme': resources[1].pagination.style:" in text
    assert "bad.yaml:13: connector 'acme': resources[1].colour: unknown field" in text


def test_spec_errors_for_structure(tmp_path: Path) -> None:
    assert "missing field 'connectors'" in _problems(tmp_path, "version: 1\n")[0]
    dup = _problems(
        tmp_path,
        "connectors:\n  - {key: a, name: A, resources: [{name: r, list_path: /r}]}\n"
        "  - {key: a, name: B, resources: [{name: r, list_path: /r}]}\n",
    )
    assert "bad.yaml:3: duplicate connector key 'a'" in dup[0]
    empty = _problems(tmp_path, "connectors:\n  - {key: a, name: A, resources: [{name: r}]}\n")
    assert "resources[0]" in empty[0] and "at least one operation" in empty[0]
    ops = _problems(
        tmp_path,
        "connectors:\n  - {key: a, name: A, resources: [{name: r, list_path: /r, operations: [delete]}]}\n",
    )
    assert "resources[0]" in ops[0] and "delete" in ops[0]
    cursor = _problems(
        tmp_path,
        "connectors:\n  - {key: a, name: A, resources: [{name: r, list_path: /r, "
        "pagination: {style: cursor, cursor_param: after}}]}\n",
    )
    assert "resources[0].pagination" in cursor[0] and "cursor_path" in cursor[0]
    syntax = _problems(tmp_path, "connectors: [\n")
    assert syntax[0].startswith(str(tmp_path / "bad.yaml")) and "not valid YAML" in syntax[0]


def test_operator_file_merges_by_key_and_providers_are_checked(tmp_path: Path) -> None:
    from interlink.connections.catalogue import load_catalogue

    override = tmp_path / "mine.yaml"
    override.write_text(
        "connectors:\n"
        "  - key: zendesk\n    description: Our Zendesk.\n"
        "  - key: acme\n    name: Acme\n    providers: [hubspot]\n"
        "    resources: [{name: contacts, list_path: /contacts}]\n"
    )
    registry = load_registry(override, load_catalogue())
    zendesk = registry.get("zendesk")
    assert zendesk is not None and zendesk.info().description == "Our Zendesk."
    assert [r.name for r in zendesk.info().resources] == ["users", "organizations", "tickets"]
    assert zendesk.info().source == "custom"
    assert registry.for_provider("hubspot") is registry.get("acme")
    assert registry.for_provider("stripe") is registry.get("stripe")
    assert [i.key for i in registry.infos("zendesk")] == ["zendesk"]
    override.write_text(
        "connectors:\n  - key: acme\n    name: Acme\n    providers: [nope]\n"
        "    resources: [{name: contacts, list_path: /contacts}]\n"
    )
    with pytest.raises(ConnectorSpecError) as exc:
        load_registry(override, load_catalogue())
    assert "providers[0]: 'nope' is not in the provider catalogue" in str(exc.value)


def test_builtin_registry_is_valid_against_the_catalogue() -> None:
    from interlink.connections.catalogue import load_catalogue

    registry = load_registry(None, load_catalogue())
    assert {"stripe", "zendesk"} <= set(registry.connectors)
    assert isinstance(registry.get("zendesk"), DeclarativeRestConnector)


PLUGIN_MODULE = """
from interlink.connectors.base import (
    Connector, ConnectorResourceInfo, IntegrationConnectorInfo, Record, RecordPage,
)


class LedgerConnector(Connector):
    key = "ledger"

    def __init__(self, providers=("stripe",)):
        self._info = IntegrationConnectorInfo(
            key=self.key, name="Ledger", version="2", kind="python", source="builtin",
            providers=list(providers),
            resources=[ConnectorResourceInfo(
                name="entries", operations=["list"], pagination="none", incremental=False, id_field="id",
            )],
        )

    def info(self):
        return self._info

    async def list_records(self, transport, resource, *, cursor=None, since=None, limit=None):
        self.require(resource, "list")
        return RecordPage([Record(id="e1", updated_at=None, data={"id": "e1", "amount": 7})])

    async def get_record(self, transport, resource, record_id):
        raise AssertionError("not offered")

    create_record = update_record = delete_record = get_record


def unknown_provider():
    return LedgerConnector(providers=("nope",))


def not_a_connector():
    return object()
"""


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed package (module plus dist-info) on sys.path whose entry points name connectors;
    write ``entry_points.txt`` to choose them. The registry cache is cleared around the test."""
    root = tmp_path / "site"
    (root / "ledger_connectors-1.0.dist-info").mkdir(parents=True)
    (root / "ledger_connectors-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ledger-connectors\nVersion: 1.0\n"
    )
    (root / "ledger_connectors.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(root))
    registry_module._load_cached.cache_clear()
    yield root / "ledger_connectors-1.0.dist-info" / "entry_points.txt"
    registry_module._load_cached.cache_clear()


def test_python_connectors_of_installed_packages_are_registered(plugin_package: Path) -> None:
    from interlink.connections.catalogue import load_catalogue

    plugin_package.write_text("[interlink.connectors]\nledger = ledger_connectors:LedgerConnector\n")
    registry = load_registry(None, load_catalogue())
    ledger = registry.get("ledger")
    assert ledger is not None
    info = ledger.info()
    assert (info.kind, info.source, info.providers) == ("python", "custom", ["stripe"])
    assert registry.for_provider("stripe") is ledger  # the operator's connector first
    assert {"stripe", "zendesk", "ledger"} <= set(registry.connectors)
    with pytest.raises(OperationNotAllowed):
        asyncio.run(ledger.get_record(None, "entries", "e1"))  # type: ignore[arg-type]

    plugin_package.write_text(
        "[interlink.connectors]\n"
        "a-missing = ledger_connectors:Missing\n"
        "b-object = ledger_connectors:not_a_connector\n"
        "c-provider = ledger_connectors:unknown_provider\n"
    )
    registry_module._load_cached.cache_clear()  # entry points are read once per process otherwise
    with pytest.raises(ConnectorSpecError) as caught:
        load_registry(None, load_catalogue())
    message = str(caught.value)
    assert (
        "entry point 'a-missing' (ledger_connectors:Missing): cannot load the connector: AttributeError"
        in message
    )
    assert "entry point 'b-object' (ledger_connectors:not_a_connector): does not make" in message
    assert (
        "entry point 'c-provider' (ledger_connectors:unknown_provider): connector 'ledger': providers: 'nope'"
        in (message)
    )


async def test_a_python_connector_of_a_package_serves_records(
    plugin_package: Path, db_url: str, tmp_path: Path
) -> None:
    plugin_package.write_text("[interlink.connectors]\nledger = ledger_connectors:LedgerConnector\n")
    async with serve(make_settings(db_url, tmp_path / "data")) as (runtime, client):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        headers = {"Authorization": f"Bearer {admin.key}"}
        shown = (await client.get("/v1/connectors/ledger", headers=headers)).json()
        assert (shown["kind"], shown["source"], shown["version"]) == ("python", "custom", "2")
        body = {"providerKey": "stripe", "name": "pay", "credentials": {"apiKey": "sk_test_1"}}
        made = await client.post("/v1/connections", json=body, headers=headers)
        assert made.status_code == 201, made.text
        base = f"/v1/connections/{made.json()['id']}/resources/entries"
        page = await client.get(base, headers=headers)
        assert page.status_code == 200, page.text
        assert page.json()["data"] == [{"id": "e1", "updatedAt": None, "data": {"id": "e1", "amount": 7}}]
        refused = await client.get(f"{base}/e1", headers=headers)
        assert refused.status_code == 405 and refused.json()["allowed"] == ["list"]


# -- /v1/connectors --------------------------------------------------------------------------------------


async def test_connectors_api(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    listed = await client.get("/v1/connectors", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    keys = [c["key"] for c in listed.json()["data"]]
    assert keys == sorted(keys) and {"stripe", "zendesk"} <= set(keys)
    only = await client.get("/v1/connectors", params={"provider": "stripe"}, headers=admin_headers)
    assert [c["key"] for c in only.json()["data"]] == ["stripe"]
    shown = await client.get("/v1/connectors/stripe", headers=admin_headers)
    body = shown.json()
    assert body["kind"] == "python" and body["providers"] == ["stripe"]
    customers = next(r for r in body["resources"] if r["name"] == "customers")
    assert customers["operations"] == ["list", "get", "create", "update", "delete"]
    assert customers["pagination"] == "cursor" and customers["incremental"] is True
    assert customers["incrementalField"] == "created"
    missing = await client.get("/v1/connectors/nope", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/v1/connectors", params={"provider": "Not A Key"}, headers=admin_headers)
    assert bad.status_code == 422
    anonymous = await client.get("/v1/connectors")
    assert anonymous.status_code == 401


def test_sdk_connectors(live_server: LiveServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        infos = sdk.connectors.list()
        assert {"stripe", "zendesk"} <= {c.key for c in infos}
        assert [c.key for c in sdk.connectors.list(provider="zendesk")] == ["zendesk"]
        zendesk = sdk.connectors.get("zendesk")
        assert zendesk.kind == "declarative" and zendesk.resources[0].name == "users"
        with pytest.raises(NotFoundError):
            sdk.connectors.get("nope")


async def test_async_sdk_connectors(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
        infos = await sdk.connectors.list(provider="stripe")
        assert [c.key for c in infos] == ["stripe"]
        stripe = await sdk.connectors.get("stripe")
        assert "invoices" in {r.name for r in stripe.resources}


def _cli(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    options = [*args, "--url", server.url, "--api-key", server.admin_key]
    return run_interlink(options, real=real)


def test_cli_connectors(live_server: LiveServer) -> None:
    listed = _cli(live_server, "connectors", "list", "--json", real=True)
    assert listed.returncode == 0, listed.stderr
    assert {"stripe", "zendesk"} <= {c["key"] for c in json.loads(listed.stdout)}
    table = _cli(live_server, "connectors", "list", "--provider", "zendesk")
    assert table.returncode == 0 and "zendesk" in table.stdout and "stripe" not in table.stdout
    shown = _cli(live_server, "connectors", "show", "stripe")
    assert shown.returncode == 0, shown.stderr
    assert "invoices" in shown.stdout and "cursor" in shown.stdout
    missing = _cli(live_server, "connectors", "show", "nope")
    assert missing.returncode == 1


def test_an_invalid_operator_file_stops_the_process_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from interlink.cli.common import refuse_bad_catalogue
    from interlink.connectors.spec import ConnectorSpecError
    from tests.conftest import make_settings

    bad = tmp_path / "mine.yaml"
    bad.write_text(
        "connectors:\n  - key: acme\n    name: Acme\n    resources: [{name: r, list_path: nope}]\n"
    )
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path / "data", connectors_file=bad
    )
    with pytest.raises(ConnectorSpecError) as exc:
        Runtime(settings)
    assert any("mine.yaml:4: connector 'acme': resources[0].list_path" in p for p in exc.value.problems)

    # What `interlink serve` and `interlink worker` run before anything starts.
    with pytest.raises(typer.Exit) as stopped:
        refuse_bad_catalogue(settings)
    assert stopped.value.exit_code == 2
    printed = capsys.readouterr().err
    assert "refusing to start" in printed and "mine.yaml:4" in printed
