"""What ``make run`` does: ``interlink migrate`` (in-process through ``tests.cli_runner``) then
``interlink serve`` as a real process.

The first start prints the URL and an admin key once; the key works against the API; a second
start prints no new key. ``serve`` refuses an unmigrated PostgreSQL database with a clear message.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from interlink.client import InterlinkClient
from tests.cli_runner import run_interlink
from tests.conftest import TEST_MASTER_KEYS, TEST_PEPPER, free_port
from tests.services import POSTGRES_ADMIN_URL, need, postgres_available

INTERLINK = str(Path(sys.executable).parent / "interlink")
STARTING = re.compile(r"^Interlink is starting at (http://\S+)")
ADMIN_KEY = re.compile(r"^Admin API key \(shown once, store it now\): (il_\w+)$")


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env["INTERLINK_DATA_DIR"] = str(data_dir)
    env["INTERLINK_KEY_USAGE_FLUSH_SECONDS"] = "0.2"
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_interlink(["migrate"], env=env)


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str] | None:
        """The first stdout line matching ``pattern`` (None once the stream ends or time runs out)."""
        for earlier in self.seen:
            if match := pattern.match(earlier):
                return match
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.seen.append(line)
            if match := pattern.match(line):
                return match
        return None


@contextmanager
def serve(cwd: Path, env: dict[str, str], port: int, *options: str) -> Iterator[Served]:
    """``interlink serve`` in its own process group, always stopped (TERM, then KILL) afterwards."""
    stderr = (cwd / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [INTERLINK, "serve", "--port", str(port), *options],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    served = Served(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.lines.put(line.rstrip("\n"))
        served.lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
        reader.join(timeout=10)
        stderr.close()


def wait_ready(url: str, served: Served, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert served.process.poll() is None, "interlink serve exited early"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


def test_migrate_then_serve_on_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _environment(data_dir)
    migrated = migrate(env)
    assert migrated.returncode == 0, migrated.stderr
    assert "database migrated to" in migrated.stdout
    assert (data_dir / "interlink.db").is_file()

    port = free_port()
    with serve(tmp_path, env, port) as first:
        started = first.wait_for(STARTING)
        assert started, first.seen
        url = started.group(1)
        assert url == f"http://127.0.0.1:{port}"
        key_line = first.wait_for(ADMIN_KEY, timeout=10)
        assert key_line, first.seen
        admin_key = key_line.group(1)
        wait_ready(url, first)

        with InterlinkClient(url, admin_key) as client:
            tenants = client.tenants.list().data
            assert [t.slug for t in tenants] == ["default"]
            made = client.keys.create("from-test", ["keys:verify"])
            assert client.keys.verify(made.key).valid
            admin = [k for k in client.keys.list() if k.id != made.id]
            assert [(k.kind, k.scopes) for k in admin] == [("platform", ["admin"])]
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}

    assert first.process.returncode is not None
    again = migrate(env)  # idempotent
    assert again.returncode == 0, again.stderr

    port = free_port()
    with serve(tmp_path, env, port) as second:
        started = second.wait_for(STARTING)
        assert started, second.seen
        url = started.group(1)
        wait_ready(url, second)
        with InterlinkClient(url, admin_key) as client:  # the first start's key still works
            assert [t.slug for t in client.tenants.list()] == ["default"]
            assert len(client.keys.list().data) == 2
    assert not any(ADMIN_KEY.match(line) or "Admin API key" in line for line in second.seen), second.seen
    assert admin_key not in "\n".join(second.seen)


def test_serve_and_worker_refuse_an_unmigrated_postgres_database(tmp_path: Path) -> None:
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    name = f"interlink_unmigrated_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        env = _environment(tmp_path / "data", INTERLINK_DATABASE_URL=f"{base}/{name}")
        refused = subprocess.run(
            [INTERLINK, "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert refused.returncode != 0
        assert "refusing to start" in refused.stderr
        assert "interlink migrate" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert "Admin API key" not in refused.stdout
        worker_refused = subprocess.run(
            [INTERLINK, "worker"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert worker_refused.returncode == 2
        assert "refusing to start" in worker_refused.stderr and "interlink migrate" in worker_refused.stderr

        # Migrated, it still refuses until master keys and pepper are set: they are generated
        # only for the embedded SQLite database.
        migrated = migrate(env)
        assert migrated.returncode == 0, migrated.stderr
        no_secrets = subprocess.run(
            [INTERLINK, "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert no_secrets.returncode == 2
        assert "INTERLINK_MASTER_KEYS" in no_secrets.stderr and "Traceback" not in no_secrets.stderr
        assert not (tmp_path / "data" / "local-secrets.json").exists()

        # With them set, the same database serves.
        env.update(INTERLINK_MASTER_KEYS=TEST_MASTER_KEYS, INTERLINK_KEY_PEPPER=TEST_PEPPER)
        port = free_port()
        with serve(tmp_path, env, port) as served:
            started = served.wait_for(STARTING)
            key_line = served.wait_for(ADMIN_KEY, timeout=10)
            assert started and key_line, served.seen
            wait_ready(started.group(1), served)
            with InterlinkClient(started.group(1), key_line.group(1)) as client:
                assert [t.slug for t in client.tenants.list()] == ["default"]
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_invalid_settings_are_named_without_a_traceback(tmp_path: Path) -> None:
    env = _environment(
        tmp_path / "data",
        INTERLINK_SERVE_PROCESSES="0",
        INTERLINK_PORT="eighty",
        INTERLINK_MASTER_KEYS="not-a-key-but-maybe-a-secret",
        INTERLINK_SMTP_FROM="nobody",
    )
    for command in (["serve"], ["migrate"], ["worker"]):
        refused = subprocess.run(
            [INTERLINK, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2, (command, refused.stderr)
        lines = refused.stderr.splitlines()
        assert (
            "interlink: invalid setting INTERLINK_SERVE_PROCESSES: Input should be greater than or equal to 1"
            in lines
        )
        assert any(line.startswith("interlink: invalid setting INTERLINK_PORT: ") for line in lines), lines
        assert any(line.startswith("interlink: invalid setting INTERLINK_SMTP_FROM: ") for line in lines), (
            lines
        )
        assert "Traceback" not in refused.stderr and "eighty" not in refused.stderr
        assert "not-a-key-but-maybe-a-secret" not in refused.stderr


def test_cidr_settings_take_comma_separated_text_or_a_json_list() -> None:
    from interlink.core.settings import Settings

    parsed = Settings(allowed_target_networks=" 127.0.0.1/32, 10.0.0.0/8 ,")  # type: ignore[arg-type]
    assert parsed.allowed_target_networks == ["127.0.0.1/32", "10.0.0.0/8"]
    as_json = Settings(trusted_proxies='["10.1.0.0/16", "::1/128"]')  # type: ignore[arg-type]
    assert as_json.trusted_proxies == ["10.1.0.0/16", "::1/128"]
    assert Settings(trusted_proxies="").trusted_proxies == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/8,nope", "'nope' does not appear to be an IPv4 or IPv6 network"),
        ('["10.0.0.0/8"', "not a JSON list; give CIDRs as a JSON list or comma-separated"),
        ("[1]", "Input should be a valid string"),
    ],
)
def test_bad_cidr_settings_are_named_without_a_traceback(tmp_path: Path, value: str, message: str) -> None:
    env = _environment(tmp_path / "data", INTERLINK_ALLOWED_TARGET_NETWORKS=value)
    for command in (["migrate"], ["admin", "create-key"]):
        refused = subprocess.run(
            [INTERLINK, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2, (command, refused.stderr)
        assert "Traceback" not in refused.stderr and "╭" not in refused.stderr, refused.stderr
        assert refused.stderr.startswith("interlink: invalid setting INTERLINK_ALLOWED_TARGET_NETWORKS: "), (
            refused.stderr
        )
        assert message in refused.stderr
