"""``interlink admin create-key`` recovers access without an existing key, on both databases."""

from __future__ import annotations

import asyncio
import os

import httpx

from interlink.bootstrap import BootstrapResult
from interlink.core.settings import Settings
from tests.cli_runner import run_interlink
from tests.conftest import TEST_MASTER_KEYS, TEST_PEPPER, auth


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "INTERLINK_DATABASE_URL": settings.effective_database_url,
        "INTERLINK_DATA_DIR": str(settings.data_dir),
        "INTERLINK_MASTER_KEYS": TEST_MASTER_KEYS,
        "INTERLINK_KEY_PEPPER": TEST_PEPPER,
    }


async def test_recovery_key_works_and_is_audited(
    client: httpx.AsyncClient, admin: BootstrapResult, settings: Settings
) -> None:
    done = await asyncio.to_thread(
        run_interlink, ["admin", "create-key", "--name", "break-glass"], env=_env(settings)
    )
    assert done.returncode == 0, done.stderr
    line = next(li for li in done.stdout.splitlines() if "shown once" in li)
    key = line.rsplit(" ", 1)[1]

    listed = await client.get("/v1/tenants", headers=auth(key))
    assert listed.status_code == 200
    assert admin.tenant_id in [t["id"] for t in listed.json()["data"]]

    trail = await client.get("/v1/audit-events", params={"action": "key.created"}, headers=auth(admin.key))
    created = [e for e in trail.json()["data"] if e["changes"].get("name", {}).get("new") == "break-glass"]
    assert len(created) == 1
    assert created[0]["actorType"] == "system"


def test_unknown_tenant_and_scope_fail_cleanly(settings: Settings) -> None:
    no_tenant = run_interlink(
        ["admin", "create-key", "--tenant", "ten_01M89XPD3TD96A2CX5AP2F3M6Q"], env=_env(settings), real=True
    )
    assert no_tenant.returncode == 1
    assert "no such tenant" in no_tenant.stderr
    assert "Traceback" not in no_tenant.stderr

    bad_scope = run_interlink(["admin", "create-key", "--scope", "root"], env=_env(settings))
    assert bad_scope.returncode == 2
    assert "unknown scope" in bad_scope.stderr
