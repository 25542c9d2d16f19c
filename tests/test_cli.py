"""The client commands (``interlink tenants|keys|audit``) as a user runs them: the command talking
to a real server, configured through environment variables (in-process through
``tests.cli_runner``; ``real=True`` runs the installed executable)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, free_port

KEY_LINE = re.compile(r"^API key \(shown once, store it now\): (il_live_\w+)$", re.MULTILINE)


def run(
    server: LiveServer | None,
    *args: str,
    key: str | None = None,
    tenant: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    real: bool = False,
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTERLINK_") or k.startswith("INTERLINK_TEST")
    }
    environment["COLUMNS"] = "250"
    if server is not None:
        environment["INTERLINK_API_URL"] = server.url
        environment["INTERLINK_API_KEY"] = key or server.admin_key
    if tenant:
        environment["INTERLINK_TENANT_ID"] = tenant
    environment.update(env or {})
    result = run_interlink(args, env=environment, input=stdin, real=real)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok_json(server: LiveServer, *args: str, **kwargs: Any) -> Any:
    result = run(server, *args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_tenant_commands(live_server: LiveServer) -> None:
    made = ok_json(live_server, "tenants", "create", "Acme Inc", "--metadata", '{"plan": "pro"}')
    assert made["slug"] == "acme-inc" and made["metadata"] == {"plan": "pro"}
    assert made["id"].startswith("ten_")

    table = run(live_server, "tenants", "list")
    assert table.returncode == 0
    assert made["id"] in table.stdout and "acme-inc" in table.stdout and "default" in table.stdout

    shown = run(live_server, "tenants", "show", made["id"])
    assert shown.returncode == 0 and "Acme Inc" in shown.stdout and '{"plan": "pro"}' in shown.stdout

    changed = ok_json(live_server, "tenants", "update", made["id"], "--name", "Acme Corp")
    assert (changed["name"], changed["metadata"]) == ("Acme Corp", {"plan": "pro"})
    assert ok_json(live_server, "tenants", "show", made["id"])["name"] == "Acme Corp"

    clash = run(live_server, "tenants", "create", "Other", "--slug", "acme-inc")
    assert clash.returncode == 1 and clash.stdout == ""
    assert "409 Conflict" in clash.stderr and "acme-inc" in clash.stderr
    assert "correlation id: " in clash.stderr

    nothing = run(live_server, "tenants", "update", made["id"])
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


def test_key_lifecycle_commands(live_server: LiveServer) -> None:
    tenant = ok_json(live_server, "tenants", "create", "Keyed")["id"]
    created = run(
        live_server,
        "keys",
        "create",
        "--name",
        "backend",
        "--scope",
        "keys:read",
        "--scope",
        "keys:write",
        "--scope",
        "keys:verify",
        "--metadata",
        '{"team": "core"}',
        tenant=tenant,
    )
    assert created.returncode == 0, created.stderr
    match = KEY_LINE.search(created.stdout)
    assert match, created.stdout
    key = match.group(1)
    assert created.stdout.count(key) == 1  # shown once, not also in the table
    title = re.search(r"Created key (key_\w+)", created.stdout)
    assert title, created.stdout
    key_id = title.group(1)

    listed = ok_json(live_server, "keys", "list", tenant=tenant)
    assert [k["id"] for k in listed["data"]] == [key_id]
    assert "key" not in listed["data"][0]
    assert [k["id"] for k in ok_json(live_server, "keys", "list")["data"]] != [key_id]  # admin's own tenant

    shown = run(live_server, "keys", "show", key_id, key=key)  # the tenant key itself, no header
    assert shown.returncode == 0 and "backend" in shown.stdout and "keys:verify" in shown.stdout

    updated = ok_json(
        live_server, "keys", "update", key_id, "--name", "backend-2", "--rate-limit", "50", key=key
    )
    assert updated["name"] == "backend-2" and updated["rateLimit"] == {"limit": 50, "periodSeconds": 60}
    cleared = ok_json(live_server, "keys", "update", key_id, "--no-rate-limit", key=key)
    assert cleared["rateLimit"] is None and cleared["name"] == "backend-2"

    rotated = run(live_server, "keys", "rotate", key_id, "--grace", "600", key=key)
    assert rotated.returncode == 0, rotated.stderr
    new_key = re.search(r"^New API key \(shown once, store it now\): (il_live_\w+)$", rotated.stdout, re.M)
    assert new_key and new_key.group(1) != key
    assert "ROTATING" in rotated.stdout

    valid = run(live_server, "keys", "verify", new_key.group(1), "--scope", "keys:read", key=key)
    assert valid.returncode == 0 and valid.stdout.startswith("valid: ")
    missing = run(live_server, "keys", "verify", new_key.group(1), "--scope", "audit:read", key=key)
    assert missing.returncode == 1
    assert missing.stdout.strip() == "invalid: insufficient_scope (missing audit:read)"

    revoked = run(live_server, "keys", "revoke", key_id, "--reason", "leaked", key=new_key.group(1))
    assert revoked.returncode == 0 and "REVOKED" in revoked.stdout
    verdict = json.loads(
        run(live_server, "keys", "verify", "-", "--json", key=new_key.group(1), stdin=key + "\n").stdout
    )
    assert verdict["valid"] is False and verdict["code"] == "revoked"
    invalid = run(live_server, "keys", "verify", "-", key=new_key.group(1), stdin=key + "\n")
    assert invalid.returncode == 1 and invalid.stdout.strip() == "invalid: revoked"

    refused = run(live_server, "keys", "list", key=key)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "401 Unauthorized" in refused.stderr and "reason: revoked" in refused.stderr


def test_create_key_json_keeps_stdout_clean(live_server: LiveServer) -> None:
    made = run(live_server, "keys", "create", "--name", "ci", "--scope", "keys:verify", "--json", real=True)
    assert made.returncode == 0
    body = json.loads(made.stdout)
    assert body["key"].startswith("il_live_") and body["scopes"] == ["keys:verify"]
    assert "store it now" in made.stderr


def test_audit_commands(live_server: LiveServer) -> None:
    made = ok_json(live_server, "keys", "create", "--name", "watched", "--scope", "keys:read")
    run(live_server, "keys", "revoke", made["id"])
    bad = run(live_server, "keys", "list", key="il_live_" + "x" * 38)
    assert bad.returncode == 1

    events = ok_json(live_server, "audit", "events", "--resource-id", made["id"])
    assert [e["action"] for e in events["data"]] == ["key.revoked", "key.created"]
    created_only = ok_json(live_server, "audit", "events", "--action", "key.created", "--all")
    assert made["id"] in [e["resourceId"] for e in created_only["data"]]
    assert created_only["hasMore"] is False

    table = run(live_server, "audit", "events", "--resource-type", "api_key")
    assert table.returncode == 0 and "key.revoked" in table.stdout and made["id"] in table.stdout

    security = ok_json(live_server, "audit", "security", "--type", "auth.failed")
    assert security["data"] and {e["eventType"] for e in security["data"]} == {"auth.failed"}
    by_key = run(live_server, "audit", "security", "--key", made["id"])
    assert by_key.returncode == 0 and "key.revoked" in by_key.stdout and "key.created" in by_key.stdout
    future = run(live_server, "audit", "security", "--since", "2999-01-01T00:00:00")
    assert future.returncode == 0 and future.stdout.strip() == "no security events"
    wrong = run(live_server, "audit", "events", "--since", "yesterday")
    assert wrong.returncode == 2 and "ISO 8601" in wrong.stderr


def test_list_pagination(live_server: LiveServer) -> None:
    ids = [
        ok_json(live_server, "keys", "create", "--name", f"k{i}", "--scope", "keys:read")["id"]
        for i in range(3)
    ]
    first = run(live_server, "keys", "list", "--limit", "2")
    assert first.returncode == 0
    assert ids[2] in first.stdout and ids[1] in first.stdout and ids[0] not in first.stdout
    assert f"more: pass --after {ids[1]}" in first.stderr
    second = ok_json(live_server, "keys", "list", "--limit", "2", "--after", ids[1])
    assert [k["id"] for k in second["data"]][:1] == [ids[0]]
    every = ok_json(live_server, "keys", "list", "--limit", "1", "--all")
    assert [k["id"] for k in every["data"]][:3] == ids[::-1] and len(every["data"]) == 4


def test_errors_are_messages_not_tracebacks(live_server: LiveServer) -> None:
    no_key = run(None, "keys", "list", env={"INTERLINK_API_URL": live_server.url})
    assert no_key.returncode == 2 and "no API key" in no_key.stderr

    flagged = run(
        live_server, "tenants", "list", "--url", f"http://127.0.0.1:{free_port()}", "--api-key", "il_live_x"
    )
    assert flagged.returncode == 1 and "cannot reach Interlink" in flagged.stderr

    invalid = run(live_server, "keys", "create", "--name", "", "--scope", "keys:read")
    assert invalid.returncode == 1
    assert "422 Validation failed" in invalid.stderr and "name:" in invalid.stderr

    missing = run(live_server, "keys", "show", "key_00000000000000000000000000")
    assert missing.returncode == 1 and "404 Not found" in missing.stderr
    for command in (["keys", "show", ""], ["connections", "show", ""], ["endpoints", "show", ""]):
        empty = run(live_server, *command)
        assert empty.returncode == 2, (command, empty.stdout, empty.stderr)
        assert empty.stderr.strip() == "interlink: an id must not be empty", (command, empty.stderr)

    forbidden_key = ok_json(live_server, "keys", "create", "--name", "r", "--scope", "keys:read")["key"]
    forbidden = run(live_server, "tenants", "create", "Nope", key=forbidden_key)
    assert forbidden.returncode == 1 and "403 Forbidden" in forbidden.stderr

    bad_json = run(live_server, "keys", "create", "--name", "x", "--scope", "keys:read", "--metadata", "[1]")
    assert bad_json.returncode == 2 and "JSON object" in bad_json.stderr
    bad_scope = run(live_server, "keys", "create", "--name", "x", "--scope", "nope")
    assert bad_scope.returncode == 2
    no_scope = run(live_server, "keys", "create", "--name", "x")
    assert no_scope.returncode == 2 and "--scope" in no_scope.stderr


@pytest.mark.parametrize("group", ["tenants", "keys", "audit"])
def test_help_lists_the_commands(group: str) -> None:
    result = run(None, group, "--help")
    assert result.returncode == 0
    expected = {
        "tenants": ["create", "list", "show", "update"],
        "keys": ["create", "list", "show", "update", "rotate", "revoke", "verify"],
        "audit": ["events", "security"],
    }[group]
    assert all(re.search(rf"\b{name}\b", result.stdout) for name in expected)
