"""Local stand-ins for external systems, started once per test session (per xdist worker).

* ``json_server``: json-server 0.17 (npm) over ``tests/fixtures/npm/db.json`` (customers and
  invoices with ``id`` and ``updatedAt``), in memory; control routes ``/__reset``, ``/__stats``
  and ``/__faults`` (see ``tests/fixtures/npm/json-server.js``).
* ``oauth2_server``: oauth2-mock-server (npm) with control routes to set token lifetimes, require
  client credentials, fail the next token requests, delay them, and count token-endpoint calls
  (see ``tests/fixtures/npm/oauth2-server.js``).
* ``localstripe``: localstripe (PyPI), a Stripe API look-alike, in memory on 127.0.0.1.

Test modules import the fixture functions (``json_server_fixture``, ``oauth2_server_fixture``,
``localstripe_fixture``) and ask for the fixtures by name (``json_server``, ...). Each runs as a
subprocess on 127.0.0.1 and a free port, is waited for until it answers HTTP, and
is stopped at the end of the session. The npm packages are installed by ``make test`` (``npm ci``
into ``tests/fixtures/npm/node_modules``); when a tool is missing the fixture skips with the
reason, or fails under ``INTERLINK_REQUIRE_SERVICES=1`` (see tests/services.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.services import need

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NPM_DIR = FIXTURES / "npm"
NODE_MODULES = NPM_DIR / "node_modules"
READY_TIMEOUT = 30.0


def node_binary() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def npm_package_installed(name: str) -> bool:
    return (NODE_MODULES / name / "package.json").is_file()


def need_npm_package(name: str) -> str:
    """The node binary, after skipping (or failing) unless node and the package are installed."""
    node = node_binary()
    need(node is not None, f"{name}: Node.js is not installed (`.ci/run` installs nodejs and npm)")
    need(
        npm_package_installed(name),
        f"{name}: npm package not installed in {NODE_MODULES} (run `make test`, which runs `npm ci` there)",
    )
    assert node is not None
    return node


class ExternalProcess:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], url: str, probe: str, log: Path, cwd: Path) -> None:
        self.name = name
        self.url = url
        self.log = log
        self._log_file = log.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
        env.pop("NODE_OPTIONS", None)
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(probe)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, probe: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(
                        f"{self.name} exited with code {self.process.returncode} before answering:\n"
                        f"{self.output_tail()}",
                        pytrace=False,
                    )
                try:
                    client.get(self.url + probe)
                    return
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        pytest.fail(
            f"{self.name} did not answer within {READY_TIMEOUT:.0f} s ({last_error}):\n{self.output_tail()}",
            pytrace=False,
        )

    def output_tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log_file.close()


@dataclass
class JsonServer:
    """json-server at ``url``; resources ``customers`` and ``invoices``."""

    url: str
    seed: dict[str, list[dict[str, Any]]]
    process: ExternalProcess = field(repr=False)

    def reset(self) -> None:
        """Back to the seed data; request counters and pending faults cleared."""
        httpx.post(f"{self.url}/__reset", trust_env=False).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/__stats", trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def inject(self, *faults: dict[str, Any]) -> None:
        """Answer the next matching requests with a status (``{"path": "/customers",
        "status": 429, "retryAfter": 1, "times": 2}``) or delay them (``"delayMs"``)."""
        httpx.post(f"{self.url}/__faults", json={"faults": list(faults)}, trust_env=False).raise_for_status()


@dataclass
class OAuth2MockServer:
    """oauth2-mock-server at ``url`` (issuer); the token endpoint is ``token_url``."""

    url: str
    process: ExternalProcess = field(repr=False)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    def configure(self, **settings: Any) -> dict[str, Any]:
        """``expires_in``/``expiresIn``, ``clients`` ({id: secret}), ``delay_ms``, ``refresh_tokens``,
        ``failures`` ([{"status": 400, "body": {...}}]); names in snake_case or camelCase."""
        names = {"expires_in": "expiresIn", "delay_ms": "delayMs", "refresh_tokens": "refreshTokens"}
        body = {names.get(k, k): v for k, v in settings.items()}
        response = httpx.post(f"{self.url}/_control/configure", json=body, trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        """``tokenRequests`` (every POST /token), ``tokensIssued``, ``grants`` by type, ``last``."""
        response = httpx.get(f"{self.url}/_control/state", trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        httpx.post(f"{self.url}/_control/reset", trust_env=False).raise_for_status()


@dataclass
class LocalStripe:
    """localstripe at ``url`` (use it as the Stripe API base URL with any ``sk_test_`` key)."""

    url: str
    process: ExternalProcess = field(repr=False)
    api_key: str = "sk_test_interlink"

    def flush(self) -> None:
        """Remove every object."""
        httpx.delete(f"{self.url}/_config/data", trust_env=False).raise_for_status()


@pytest.fixture(scope="session", name="json_server")
def json_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServer]:
    node = need_npm_package("json-server")
    seed = json.loads((NPM_DIR / "db.json").read_text())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("json-server") / "json-server.log"
    command = [node, str(NPM_DIR / "json-server.js"), "--db", str(NPM_DIR / "db.json"), "--port", str(port)]
    process = ExternalProcess("json-server", command, url, "/__stats", log, NPM_DIR)
    try:
        yield JsonServer(url, seed, process)
    finally:
        process.stop()


@pytest.fixture(scope="session", name="oauth2_server")
def oauth2_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuth2MockServer]:
    node = need_npm_package("oauth2-mock-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("oauth2-server") / "oauth2-server.log"
    command = [node, str(NPM_DIR / "oauth2-server.js"), "--port", str(port)]
    process = ExternalProcess("oauth2-mock-server", command, url, "/_control/state", log, NPM_DIR)
    try:
        yield OAuth2MockServer(url, process)
    finally:
        process.stop()


@pytest.fixture(scope="session", name="localstripe")
def localstripe_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    need(
        importlib.util.find_spec("localstripe") is not None,
        "localstripe is not installed (it is in the dev extras: pip install -e '.[dev]')",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    command = [sys.executable, str(FIXTURES / "run_localstripe.py"), "--port", str(port)]
    process = ExternalProcess("localstripe", command, url, "/v1/customers", log, FIXTURES)
    try:
        yield LocalStripe(url, process)
    finally:
        process.stop()
