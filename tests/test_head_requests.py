"""HEAD requests: every GET resource answers HEAD as its GET would, without the body (RFC 9110,
9.3.2), in process and on the wire; routes that take HEAD themselves (the passthrough proxy) keep
it (tests/test_connection_passthrough.py)."""

from __future__ import annotations

import socket

import httpx

from tests.conftest import LiveServer


async def test_a_get_resource_answers_head_without_its_body(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for path, headers in (("/healthz", {}), ("/v1/providers", admin_headers), ("/v1/keys", admin_headers)):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert got.status_code == 200 and head.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers["content-length"] == str(len(got.content)), path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert "x-correlation-id" in head.headers

    # The GET's own answers: its problems (without their body), and 405 where there is no GET.
    refused = await client.head("/v1/keys")
    assert refused.status_code == 401 and refused.content == b""
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["content-length"]) > 0
    post_only = await client.head("/v1/inbound/src_x")
    assert post_only.status_code == 405 and post_only.content == b""


def test_head_on_the_wire_sends_no_body(live_server: LiveServer) -> None:
    """A HEAD answer pipelined before a GET: the GET's answer follows the HEAD's blank line at once."""
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    get_head, _, get_body = rest.partition(b"\r\n\r\n")
    assert get_head.startswith(b"HTTP/1.1 200 OK"), rest[:200]
    assert int(fields[b"content-length"]) == len(get_body) > 0
