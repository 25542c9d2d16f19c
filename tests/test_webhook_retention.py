"""The webhook retention purge on SQLite and PostgreSQL: attempts and payloads age with the clock
(``interlink.core.clock``), each endpoint's RetentionPolicy decides, and every purge is audited."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.jobs import schedules
from interlink.jobs.models import Job
from interlink.jobs.registry import BUILTIN_SCHEDULES, WEBHOOK_RETENTION_PURGE, ensure_builtin_schedules
from interlink.runtime import Runtime
from interlink.webhooks import retention
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from tests.api_helpers import assert_problem
from tests.cli_runner import run_interlink
from tests.conftest import make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=["127.0.0.0/8"])


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    config = DeliveryConfig(concurrency=16, batch_size=16, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


class Api:
    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver) -> None:
        self.client, self.headers, self.receiver = client, headers, receiver

    async def endpoint(self, path: str, retention_policy: str, *answers: Answer, **fields: Any) -> str:
        url = self.receiver.script(path, *answers)
        body = {"url": url, "retention": retention_policy, **fields}
        made = await self.client.post("/v1/endpoints", json=body, headers=self.headers)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def event(self, *endpoint_ids: str, **payload: Any) -> str:
        body = {"type": "invoice.paid", "payload": payload or {"n": 1}, "endpointIds": list(endpoint_ids)}
        sent = await self.client.post("/v1/events", json=body, headers=self.headers)
        assert sent.status_code == 201, sent.text
        assert len(sent.json()["deliveries"]) == len(endpoint_ids)
        return str(sent.json()["id"])

    async def get_event(self, event_id: str) -> dict[str, Any]:
        got = await self.client.get(f"/v1/events/{event_id}", headers=self.headers)
        assert got.status_code == 200, got.text
        result: dict[str, Any] = got.json()
        return result


@pytest.fixture
def api(client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver) -> Api:
    return Api(client, admin_headers, receiver)


async def kept_payloads(runtime: Runtime) -> set[str]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(WebhookEvent.id).where(WebhookEvent.payload_purged_at.is_(None))
        )
        return set(rows.all())


async def attempts_by_endpoint(runtime: Runtime) -> dict[str, int]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.execute(
            sa.select(WebhookAttempt.endpoint_id, sa.func.count()).group_by(WebhookAttempt.endpoint_id)
        )
        return {endpoint_id: int(n) for endpoint_id, n in rows.all()}


async def purge_audits(runtime: Runtime) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == retention.AUDIT_ACTION).order_by(AuditEvent.id)
        )
        return list(rows.all())


async def test_attempts_and_payloads_age_out_per_endpoint_policy(
    api: Api, admin: BootstrapResult, runtime: Runtime, worker: DeliveryWorker
) -> None:
    one_day = await api.endpoint("/one-day", "DAYS_1")
    seven = await api.endpoint("/seven", "DAYS_7")
    none = await api.endpoint("/none", "NONE")
    forever = await api.endpoint("/forever", "FOREVER")
    stuck = await api.endpoint("/stuck", "DAYS_1", Answer(500), retrySchedule=[604_800])
    e1 = await api.event(one_day)
    e2 = await api.event(one_day, seven)
    e3 = await api.event(none)
    e4 = await api.event(forever, one_day)
    e5 = await api.event(stuck)  # never final: its payload is needed for the next attempt
    e0 = await api.event()  # went nowhere: the tenant default (DAYS_30) applies
    await worker.drain()
    everything = {e0, e1, e2, e3, e4, e5}
    assert await kept_payloads(runtime) == everything
    assert await attempts_by_endpoint(runtime) == {one_day: 3, seven: 1, none: 1, forever: 1, stuck: 1}
    async with runtime.db.unit_of_work(write=False) as session:
        deliveries = int(await session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) or 0)

    # NONE: gone as soon as final.
    first = await retention.purge(runtime.db)
    assert (first.attempts, first.payloads) == (1, 1)
    assert await kept_payloads(runtime) == everything - {e3}
    assert none not in await attempts_by_endpoint(runtime)
    purged = await api.get_event(e3)
    assert purged["payload"] is None and purged["payloadPurgedAt"] is not None
    assert purged["deliveries"][0]["status"] == "DELIVERED"  # the event and its deliveries stay
    kept = await api.get_event(e1)
    assert kept["payload"] == {"n": 1} and kept["payloadPurgedAt"] is None
    # A purged event cannot be sent again.
    refused = await api.client.post(
        "/v1/replays", json={"requestId": "r-e3", "eventId": e3}, headers=api.headers
    )
    assert "purged" in assert_problem(refused, 409)["detail"]
    retried = await api.client.post(
        f"/v1/deliveries/{purged['deliveries'][0]['id']}/retry", headers=api.headers
    )
    assert "purged" in assert_problem(retried, 409)["detail"]

    clock.shift(timedelta(days=2))
    second = await retention.purge(runtime.db)
    # DAYS_1 attempts (stuck's too: attempts age whatever the delivery's state); e1 only went to
    # a DAYS_1 endpoint; e2 and e4 also went to longer-lived ones; e5 is not final.
    assert (second.attempts, second.payloads) == (4, 1)
    assert await kept_payloads(runtime) == {e0, e2, e4, e5}
    assert await attempts_by_endpoint(runtime) == {seven: 1, forever: 1}

    clock.shift(timedelta(days=6))
    third = await retention.purge(runtime.db)
    assert (third.attempts, third.payloads) == (1, 1)
    assert await kept_payloads(runtime) == {e0, e4, e5}

    again = await retention.purge(runtime.db)  # idempotent: nothing new, nothing audited
    assert again.tenants == {}

    clock.shift(timedelta(days=23))
    fourth = await retention.purge(runtime.db)
    assert (fourth.attempts, fourth.payloads) == (0, 1)
    assert await kept_payloads(runtime) == {e4, e5}
    assert await attempts_by_endpoint(runtime) == {forever: 1}
    assert (await api.get_event(e4))["payload"] == {"n": 1}

    audits = await purge_audits(runtime)
    assert [(a.changes["attempts"]["new"], a.changes["payloads"]["new"]) for a in audits] == [
        (1, 1),
        (4, 1),
        (1, 1),
        (0, 1),
    ]
    assert {a.tenant_id for a in audits} == {admin.tenant_id}
    assert all(a.actor_type == "system" and a.resource_type == "retention" for a in audits)
    async with runtime.db.unit_of_work(write=False) as session:
        still = int(await session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) or 0)
    assert still == deliveries


async def test_forever_keeps_everything(api: Api, runtime: Runtime, worker: DeliveryWorker) -> None:
    forever = await api.endpoint("/forever", "FOREVER")
    failing = await api.endpoint("/failing", "FOREVER", Answer(500), retrySchedule=[1])
    event_id = await api.event(forever, failing)
    for _ in range(3):
        await worker.drain()
        clock.shift(timedelta(seconds=2))
    before = await attempts_by_endpoint(runtime)
    assert before == {forever: 1, failing: 2}
    clock.shift(timedelta(days=3650))
    result = await retention.purge(runtime.db)
    assert result.tenants == {}
    assert await attempts_by_endpoint(runtime) == before
    assert (await api.get_event(event_id))["payload"] == {"n": 1}
    assert await purge_audits(runtime) == []


async def test_concurrent_purges_count_each_row_once(
    api: Api, runtime: Runtime, worker: DeliveryWorker
) -> None:
    none = await api.endpoint("/none", "NONE")
    events = [await api.event(none, i=i) for i in range(30)]
    await worker.drain()
    results = await asyncio.gather(*(retention.purge(runtime.db, batch=7) for _ in range(3)))
    assert sum(r.payloads for r in results) == 30 and sum(r.attempts for r in results) == 30
    assert await kept_payloads(runtime) == set()
    audits = await purge_audits(runtime)
    assert sum(a.changes["payloads"]["new"] for a in audits) == 30
    assert sum(a.changes["attempts"]["new"] for a in audits) == 30
    assert 1 <= len(audits) <= 3  # one per run that purged something
    assert len(set(events)) == 30


async def test_the_hourly_schedule_runs_the_purge(api: Api, runtime: Runtime, worker: DeliveryWorker) -> None:
    assert BUILTIN_SCHEDULES["webhooks.retention"] == (WEBHOOK_RETENTION_PURGE, "41 * * * *")
    await ensure_builtin_schedules(runtime.db)
    none = await api.endpoint("/none", "NONE")
    event_id = await api.event(none)
    await worker.drain()
    clock.shift(timedelta(hours=1, minutes=1))
    assert await schedules.fire_due(runtime.db) >= 1
    await runtime.make_worker().drain()
    async with runtime.db.unit_of_work(write=False) as session:
        jobs = (await session.scalars(sa.select(Job).where(Job.kind == WEBHOOK_RETENTION_PURGE))).all()
    assert [j.status for j in jobs] == ["succeeded"]
    assert (await api.get_event(event_id))["payload"] is None
    assert len(await purge_audits(runtime)) == 1


async def test_retention_run_command(
    api: Api, admin: BootstrapResult, runtime: Runtime, worker: DeliveryWorker, db_url: str, tmp_path: Path
) -> None:
    none = await api.endpoint("/none", "NONE")
    event_id = await api.event(none)
    await worker.drain()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    environment["INTERLINK_DATABASE_URL"] = db_url
    environment["INTERLINK_DATA_DIR"] = str(tmp_path / ".interlink")

    def run(*args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
        return run_interlink(["retention", "run", *args], env=environment, real=real)

    result = await asyncio.to_thread(run, "--json", real=True)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["webhooks"] == {admin.tenant_id: {"attempts": 1, "payloads": 1}}
    assert "audit" in counts
    assert (await api.get_event(event_id))["payload"] is None
    assert len(await purge_audits(runtime)) == 1

    text = await asyncio.to_thread(run, "--no-audit")
    assert text.returncode == 0, text.stderr
    assert "webhooks: 0 attempt(s) and 0 payload(s) purged" in text.stdout and "audit:" not in text.stdout
