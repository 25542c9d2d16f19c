"""No secret value and no API key is ever written in plaintext: not to the database, not to the logs.

A real ``interlink serve`` (embedded SQLite, generated local master keys, DEBUG logs to a file)
stores a secret and an API key over HTTP and uses them; then the database file, its write-ahead
log and the logs are scanned byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

from interlink.core.actor import system_actor
from interlink.core.models import IntegrationSecret
from interlink.core.secrets import SecretStore
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.cli_runner import run_interlink
from tests.conftest import auth, free_port

INTERLINK = str(Path(sys.executable).with_name("interlink"))


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update(
        INTERLINK_DATA_DIR=str(data_dir),
        INTERLINK_PORT=str(port),
        INTERLINK_LOG_LEVEL="DEBUG",
        INTERLINK_LOG_FORMAT="json",
        INTERLINK_KEY_USAGE_FLUSH_SECONDS="0.2",
    )
    return env


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def _admin_key(stdout_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in stdout_path.read_text().splitlines():
            if "Admin API key" in line:
                return line.rsplit(" ", 1)[1]
        time.sleep(0.05)
    raise AssertionError("no admin key printed")


def _files(db_path: Path) -> dict[str, bytes]:
    found = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db_path}{suffix}")
        if path.exists():
            found[path.name] = path.read_bytes()
    return found


def _assert_absent(blobs: dict[str, bytes], needles: dict[str, str]) -> None:
    for where, blob in blobs.items():
        for label, needle in needles.items():
            assert needle.encode() not in blob, f"{label} found in plaintext in {where}"


async def test_no_plaintext_secret_or_api_key_in_database_or_logs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db_path = data_dir / "interlink.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(data_dir, port)
    migrated = await asyncio.to_thread(run_interlink, ["migrate"], env=env)
    assert migrated.returncode == 0, migrated.stderr

    token = uuid.uuid4().hex
    value = f"plaintext-secret-{token}"
    rotated_value = f"rotated-secret-{token}"
    secret_name = f"provider-credential-{token[:12]}"
    stdout_path, log_path = tmp_path / "stdout.txt", tmp_path / "server.log"
    with stdout_path.open("wb") as out, log_path.open("wb") as err:
        process = subprocess.Popen([INTERLINK, "serve"], env=env, stdout=out, stderr=err)
    try:
        _wait_ready(url, process, log_path)
        admin_key = _admin_key(stdout_path)
        with httpx.Client(base_url=url, timeout=30) as http:
            made = http.post(
                "/v1/keys",
                json={"name": "backend", "scopes": ["secrets:read", "secrets:write", "audit:read"]},
                headers=auth(admin_key),
            )
            assert made.status_code == 201, made.text
            api_key = made.json()["key"]
            headers = auth(api_key)

            created = http.post(
                "/v1/secrets",
                json={
                    "name": secret_name,
                    "value": value,
                    "tokenType": "API_KEY",
                    "metadata": {"env": "prod"},
                },
                headers=headers,
            )
            assert created.status_code == 201, created.text
            secret_id = created.json()["id"]
            # Failed requests carry the value too; it must not leak through errors or their logs.
            refused = http.post(
                "/v1/secrets",
                json={"name": "x", "value": value, "tokenType": "NOPE", "unexpected": value},
                headers=headers,
            )
            assert refused.status_code == 422
            duplicate = http.post(
                "/v1/secrets",
                json={"name": secret_name, "value": value, "tokenType": "API_KEY"},
                headers=headers,
            )
            assert duplicate.status_code == 409
            unauthorized = http.get("/v1/secrets", headers=auth(api_key[:-3] + "xyz"))
            assert unauthorized.status_code == 401

            assert http.get("/v1/secrets", headers=headers).status_code == 200
            assert http.get(f"/v1/secrets/{secret_id}", headers=headers).status_code == 200
            rotated = http.post(
                f"/v1/secrets/{secret_id}/rotate", json={"value": rotated_value}, headers=headers
            )
            assert rotated.status_code == 200, rotated.text
            trail = http.get("/v1/audit-events", params={"resourceId": secret_id}, headers=headers)
            assert trail.status_code == 200
            responses = [made, created, refused, duplicate, unauthorized, rotated, trail]
        for response in responses:
            assert value not in response.text and rotated_value not in response.text

        needles = {"secret value": value, "rotated secret value": rotated_value, "API key": api_key}
        running = _files(db_path)
        assert "interlink.db-wal" in running  # the scan covers the write-ahead log of the live database
        _assert_absent(running, needles)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stopped = _files(db_path)
    logs = log_path.read_bytes()
    stdout = stdout_path.read_bytes()
    _assert_absent(stopped, needles)
    _assert_absent({"server log": logs}, {**needles, "admin API key": admin_key})
    _assert_absent({"server stdout": stdout}, needles)

    # The scan would see them if they were there: the name is stored, the requests were logged.
    database_bytes = b"".join(running.values()) + b"".join(stopped.values())
    assert secret_name.encode() in database_bytes
    assert api_key[:12].encode() in database_bytes  # the non-secret display prefix
    assert secret_id.encode() in logs
    assert b'"level": "debug"' in logs or b'"level":"debug"' in logs

    # And the value is really there, encrypted: the server's own keys decrypt it.
    runtime = Runtime(
        Settings(
            data_dir=data_dir,
            database_url=f"sqlite+aiosqlite:///{db_path}",
            master_keys="",
            key_pepper="",
            redis_url="",
        )
    )
    try:
        assert runtime.local_secrets.master_keys_from_file
        async with runtime.db.unit_of_work() as session:
            row = await session.get(IntegrationSecret, secret_id)
            assert row is not None
            revealed = await SecretStore.from_runtime(runtime).reveal(
                session, system_actor(row.tenant_id), secret_id
            )
            stored = await session.scalar(
                sa.select(IntegrationSecret.ciphertext).where(IntegrationSecret.id == secret_id)
            )
        assert revealed.value == rotated_value
        assert stored is not None and stored.startswith(f"v1.{runtime.keyring.primary_kid}.")
    finally:
        await runtime.stop()
