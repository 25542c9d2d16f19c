"""The Stripe connector against localstripe: customers (create with nested metadata, list across
pages with starting_after, get, update, delete), invoice items and invoices, events with the
created[gte] incremental filter, cursor tampering, and Stripe's errors as 502/404 problems."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from interlink.connectors.base import OperationNotAllowed, ProviderError, RecordNotFound
from interlink.connectors.stripe import StripeConnector
from interlink.core.errors import ValidationFailed
from interlink.outbound.client import ApiClient, OutboundService
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from tests.external import LocalStripe, localstripe_fixture  # noqa: F401  (the fixture)

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]


@pytest.fixture
async def api(localstripe: LocalStripe) -> AsyncIterator[ApiClient]:
    localstripe.flush()
    service = OutboundService(allowed_networks=LOCAL)
    config = ApiClientConfig(
        tenant_id="ten_test",
        base_url=localstripe.url,
        headers={"Authorization": f"Bearer {localstripe.api_key}"},
        retry=RetryPolicy(max_attempts=2, base_delay_seconds=0.01, max_delay_seconds=0.02),
    )
    yield service.client(config)
    await service.close()


async def test_customers_crud_and_pagination(api: ApiClient) -> None:
    stripe = StripeConnector()
    created = []
    for n in range(7):
        record = await stripe.create_record(
            api,
            "customers",
            {"email": f"c{n}@example.com", "name": f"Customer {n}", "metadata": {"tenant": "t1", "n": n}},
        )
        assert record.id.startswith("cus_") and record.updated_at is None
        assert record.data["metadata"] == {"tenant": "t1", "n": str(n)}
        created.append(record.id)

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await stripe.list_records(api, "customers", cursor=cursor, limit=3)
        pages += 1
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and sorted(seen) == sorted(created) and len(set(seen)) == 7
    everything = [r.id async for r in stripe.iter_records(api, "customers", limit=2)]
    assert sorted(everything) == sorted(created)

    got = await stripe.get_record(api, "customers", created[0])
    assert got.data["email"] == "c0@example.com"
    updated = await stripe.update_record(
        api, "customers", created[0], {"name": "Renamed", "metadata": {"plan": "pro"}}
    )
    assert updated.data["name"] == "Renamed"
    assert updated.data["metadata"] == {"tenant": "t1", "n": "0", "plan": "pro"}
    await stripe.delete_record(api, "customers", created[0])
    with pytest.raises(RecordNotFound):
        await stripe.get_record(api, "customers", created[0])
    with pytest.raises(RecordNotFound):
        await stripe.delete_record(api, "customers", created[0])


async def test_invoices_from_invoice_items(api: ApiClient, localstripe: LocalStripe) -> None:
    """localstripe invoices a customer with a subscription: card token, plan and subscription are
    set up directly; the customer, product, invoice item and invoice go through the connector."""
    stripe = StripeConnector()
    raw = httpx.Client(base_url=localstripe.url, auth=(localstripe.api_key, ""), trust_env=False)
    with raw:
        card = {
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        }
        token = raw.post("/v1/tokens", data=card).json()["id"]
        customer = await stripe.create_record(api, "customers", {"email": "inv@example.com", "source": token})
        product = await stripe.create_record(api, "products", {"name": "Seats", "type": "service"})
        plan = raw.post(
            "/v1/plans",
            data={"product": product.id, "amount": 500, "currency": "eur", "interval": "month"},
        ).json()["id"]
        raw.post(
            "/v1/subscriptions", data={"customer": customer.id, "items[0][plan]": plan}
        ).raise_for_status()
    item = await stripe.create_record(
        api,
        "invoiceitems",
        {"customer": customer.id, "amount": 1250, "currency": "eur", "description": "Extra seats"},
    )
    assert item.id.startswith("ii_")
    invoice = await stripe.create_record(api, "invoices", {"customer": customer.id})
    assert invoice.id.startswith("in_") and invoice.data["status"] == "draft"
    assert invoice.data["customer"] == customer.id and invoice.data["total"] == 1750
    listed = [r async for r in stripe.iter_records(api, "invoices", limit=1)]
    assert invoice.id in {r.id for r in listed} and len(listed) == 2  # and the subscription's first
    updated = await stripe.update_record(
        api, "invoices", invoice.id, {"description": "March seats", "metadata": {"order": "o-1"}}
    )
    assert updated.data["description"] == "March seats"
    got = await stripe.get_record(api, "invoices", invoice.id)
    assert got.data["metadata"] == {"order": "o-1"} and got.data["description"] == "March seats"
    collected = await stripe.get_record(api, "invoiceitems", item.id)
    assert collected.data["invoice"] == invoice.id
    await stripe.delete_record(api, "invoices", invoice.id)  # a draft may be deleted
    with pytest.raises(RecordNotFound):
        await stripe.get_record(api, "invoices", invoice.id)


async def test_events_with_created_filter(api: ApiClient) -> None:
    stripe = StripeConnector()
    before = datetime.now(UTC) - timedelta(minutes=5)
    for n in range(3):
        await stripe.create_record(api, "customers", {"email": f"e{n}@example.com"})
    recent = [r async for r in stripe.iter_records(api, "events", since=before, limit=2)]
    assert len(recent) >= 3
    assert {r.data["type"] for r in recent} >= {"customer.created"}
    future = await stripe.list_records(api, "events", since=datetime.now(UTC) + timedelta(hours=1))
    assert future.records == [] and future.next_cursor is None
    with pytest.raises(ValidationFailed) as bad:
        await stripe.list_records(api, "charges", since=before)
    assert bad.value.extra["errors"][0]["field"] == "since"


async def test_cursors_operations_and_errors(api: ApiClient) -> None:
    stripe = StripeConnector()
    for n in range(3):
        await stripe.create_record(api, "customers", {"email": f"x{n}@example.com"})
    page = await stripe.list_records(api, "customers", limit=2)
    assert page.next_cursor is not None
    for cursor in ("garbage", page.next_cursor[:-4] + "AAAA"):
        with pytest.raises(ValidationFailed) as exc:
            await stripe.list_records(api, "customers", cursor=cursor)
        assert exc.value.extra["errors"][0]["field"] == "cursor"
    with pytest.raises(ValidationFailed):  # a customers cursor is not an invoices cursor
        await stripe.list_records(api, "invoices", cursor=page.next_cursor)
    with pytest.raises(ValidationFailed) as changed:
        await stripe.list_records(api, "customers", cursor=page.next_cursor, since=datetime.now(UTC))
    assert changed.value.extra["errors"][0]["field"] == "since"
    with pytest.raises(OperationNotAllowed):
        await stripe.create_record(api, "charges", {"amount": 100})
    with pytest.raises(ProviderError) as upstream:
        await stripe.create_record(api, "invoices", {"customer": "cus_missing"})
    assert upstream.value.status == 502 and upstream.value.extra["upstreamStatus"] == 404
    with pytest.raises(ProviderError) as refused:
        await stripe.create_record(api, "customers", {"colour": "blue"})
    assert refused.value.extra["upstreamStatus"] == 400
