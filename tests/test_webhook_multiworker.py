"""Several ``interlink worker`` processes share one PostgreSQL queue: every event arrives exactly once.

The workers are real subprocesses, as deployed; they coordinate only through ``FOR UPDATE SKIP
LOCKED`` claims and leases. No lease expires here, so any duplicate at the receiver is a defect.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.core.enums import DeliveryStatus
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.conftest import make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.1/32"]
TOTAL = 5000
WORKERS = 2
ROUTES = ("a", "b", "c", "d")
BATCH = 100
START_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


def worker_env(runtime: Runtime, settings: Settings, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "INTERLINK_DATABASE_URL": runtime.db.url,
        "INTERLINK_DATA_DIR": str(data_dir),
        "INTERLINK_MASTER_KEYS": settings.master_keys,
        "INTERLINK_KEY_PEPPER": settings.key_pepper,
        "INTERLINK_REDIS_URL": "",
        "INTERLINK_ALLOWED_TARGET_NETWORKS": json.dumps(LOCAL),
        "INTERLINK_WORKER_POLL_SECONDS": "0.2",
        "INTERLINK_LOG_LEVEL": "INFO",
        "INTERLINK_LOG_FORMAT": "json",
    }


async def start_worker(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    """An ``interlink worker`` process, returned once it says it is running."""
    with log_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "interlink",
            "worker",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT):
        line = await process.stdout.readline()
    assert b"running" in line, (line, log_path.read_text(errors="replace")[-2000:])
    return process


async def stop_worker(process: asyncio.subprocess.Process) -> int:
    """SIGTERM and wait: in-flight deliveries finish and are recorded. Returns the exit status."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            return await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


def delivered_by(log_path: Path) -> int:
    """The ``delivered`` count a worker logs when it stops."""
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "delivery_worker_stopped":
                return int(entry["delivered"])
    raise AssertionError(f"no delivery_worker_stopped line in {log_path}")


async def delivery_counts(runtime: Runtime) -> dict[DeliveryStatus, int]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.execute(
            sa.select(WebhookDelivery.status, sa.func.count()).group_by(WebhookDelivery.status)
        )
        return {status: int(n) for status, n in rows.all()}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_worker_processes_deliver_every_event_exactly_once(
    runtime: Runtime,
    settings: Settings,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    for route in ROUTES:
        path = f"/{route}"
        created = await client.post(
            "/v1/endpoints",
            json={
                "url": receiver.script(path, Answer(200)),
                "eventTypes": [f"load.{route}"],
                "maxInFlight": 64,
            },
            headers=admin_headers,
        )
        assert created.status_code == 201, created.text
        secret = await client.get(f"/v1/endpoints/{created.json()['id']}/secret", headers=admin_headers)
        assert secret.status_code == 200, secret.text
        receiver.secrets[path] = [secret.json()["key"]]

    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    processes: list[asyncio.subprocess.Process] = []
    try:
        for n, log_path in enumerate(logs):
            processes.append(await start_worker(worker_env(runtime, settings, tmp_path / f"w{n}"), log_path))

        started = time.monotonic()
        event_ids: list[str] = []
        for start in range(0, TOTAL, BATCH):
            events: list[dict[str, Any]] = [
                {"type": f"load.{ROUTES[n % len(ROUTES)]}", "payload": {"n": n, "pad": "x" * 200}}
                for n in range(start, start + BATCH)
            ]
            answer = await client.post("/v1/events/batch", json={"events": events}, headers=admin_headers)
            assert answer.status_code == 201, answer.text
            event_ids += [e["id"] for e in answer.json()["data"]]
        ingested = time.monotonic() - started

        await receiver.wait_for(
            lambda: len({r.webhook_id for r in receiver.requests}) >= TOTAL, timeout=DELIVERY_TIMEOUT
        )
        received_at = time.monotonic() - started
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            while (await delivery_counts(runtime)).get(DeliveryStatus.DELIVERED, 0) < TOTAL:
                await asyncio.sleep(0.1)
        recorded_at = time.monotonic() - started
    finally:
        codes = [await stop_worker(p) for p in processes]
    assert codes == [0] * WORKERS, codes

    assert await delivery_counts(runtime) == {DeliveryStatus.DELIVERED: TOTAL}
    async with runtime.db.unit_of_work(write=False) as session:
        attempts = await session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt))
    assert attempts == TOTAL

    bad = [(r.path, r.verify_error) for r in receiver.requests if r.verified is not True]
    assert not bad, bad[:5]
    seen = Counter(r.webhook_id for r in receiver.requests)
    assert set(seen) == set(event_ids)
    duplicates = {webhook_id: n for webhook_id, n in seen.items() if n > 1}
    per_worker = [delivered_by(log_path) for log_path in logs]
    print(
        f"\nmulti-worker: {TOTAL} events, {WORKERS} worker processes; ingest {ingested:.1f} s, all received"
        f" {received_at:.1f} s, all recorded {recorded_at:.1f} s; per worker {per_worker};"
        f" {sum(n - 1 for n in duplicates.values())} duplicates"
    )
    assert not duplicates, list(duplicates.items())[:5]
    assert all(n > 0 for n in per_worker), per_worker  # both processes took part
    assert sum(per_worker) == TOTAL
    for route in ROUTES:
        assert len(receiver.received(f"/{route}")) == TOTAL // len(ROUTES)
