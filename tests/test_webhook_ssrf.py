"""SSRF guard: URL syntax, every refused address class, DNS answers, and operator exceptions."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from interlink.core.errors import ValidationFailed
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks.ssrf import (
    IPNetwork,
    TargetRefused,
    check_target,
    classify_address,
    parse_networks,
    validate_url,
)
from tests.conftest import make_settings

GOOD_URLS = [
    "https://hooks.example.com/in",
    "http://example.com",
    "https://example.com:8443/a/b?c=d",
    "https://[2606:4700:4700::1111]/x",
    "http://93.184.216.34/",
    "  https://example.com/trimmed  ",
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_valid_urls(url: str) -> None:
    assert validate_url(url) == url.strip()


BAD_URLS: list[tuple[str, str]] = [
    ("", "required"),
    ("ftp://example.com/file", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("gopher://example.com", "http or https"),
    ("example.com/path", "http or https"),
    ("https://", "must have a host"),
    ("https:///path", "must have a host"),
    ("https://user:pass@example.com/", "credentials"),
    ("https://user@example.com/", "credentials"),
    ("https://example.com:99999/", "not valid"),
    ("https://example.com:0/", "port"),
    ("https://exa mple.com/", "whitespace"),
    ("https://example.com/\x00", "control"),
    ("https://[::1/", "not valid"),
    ("https://example.com/" + "a" * 2100, "longer than"),
]


@pytest.mark.parametrize(("url", "fragment"), BAD_URLS, ids=[b[1] + ":" + b[0][:30] for b in BAD_URLS])
def test_invalid_urls(url: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_url(url)
    assert fragment in caught.value.detail
    assert caught.value.extra["errors"][0]["field"] == "url"


REFUSED: list[tuple[str, str]] = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.1.2", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("169.254.1.1", "link_local"),
    ("fe80::1", "link_local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("2001:db8::1", "reserved"),
    # IPv6 forms that embed a refused IPv4 address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_literal_addresses_are_refused(address: str, reason: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(TargetRefused) as caught:
        await check_target(f"https://{host}/hook", [])
    assert caught.value.reason == reason
    assert caught.value.address is not None
    assert caught.value.extra["reason"] == reason
    assert caught.value.extra["errors"][0]["field"] == "url"
    assert classify_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
async def test_public_literal_addresses_pass(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert await check_target(f"https://{host}/hook", []) == [ipaddress.ip_address(address)]


@pytest.mark.parametrize("url", ["http://localhost/", "http://localhost:8080/x", "https://LOCALHOST./"])
async def test_localhost_names_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        await check_target(url, [])
    assert caught.value.reason == "loopback"


async def test_allowed_networks_let_loopback_through() -> None:
    allowed = parse_networks(["127.0.0.0/8", "::1/128"])
    addresses = await check_target("http://localhost:9999/hook", allowed)
    assert addresses
    assert all(a.is_loopback for a in addresses)
    assert await check_target("http://127.0.0.1:9999/", allowed) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    ("allowed", "address", "passes"),
    [
        (["10.20.0.0/16"], "10.20.3.4", True),
        (["10.20.0.0/16"], "10.21.0.1", False),
        (["10.20.0.0/16"], "::ffff:10.20.3.4", True),
        (["169.254.169.254/32"], "169.254.169.254", True),
        (["169.254.169.254/32"], "169.254.169.253", False),
        (["fd00::/8"], "fd00:ec2::254", True),
        (["fd00::/8"], "10.0.0.1", False),
        (["10.0.0.0/8"], "fd00::1", False),
    ],
)
async def test_allowed_networks_are_exact(allowed: list[str], address: str, passes: bool) -> None:
    host = f"[{address}]" if ":" in address else address
    networks = parse_networks(allowed)
    if passes:
        assert await check_target(f"http://{host}/", networks)
    else:
        with pytest.raises(TargetRefused):
            await check_target(f"http://{host}/", networks)


def _fake_resolver(answers: list[str]) -> Any:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for a in answers:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    return getaddrinfo


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", _fake_resolver(["93.184.216.34", "10.0.0.5"]))
    with pytest.raises(TargetRefused) as caught:
        await check_target("https://rebind.example/hook", [])
    assert caught.value.reason == "private"
    assert caught.value.address == "10.0.0.5"


async def test_public_name_passes_and_returns_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    answers = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]
    monkeypatch.setattr(loop, "getaddrinfo", _fake_resolver(answers))
    addresses = await check_target("https://public.example/hook", [])
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


async def test_name_resolving_to_metadata_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", _fake_resolver(["169.254.169.254"]))
    with pytest.raises(TargetRefused) as caught:
        await check_target("http://metadata.internal/latest/meta-data/", [])
    assert caught.value.reason == "metadata"


async def test_unresolvable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(host: str, port: int, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fail)
    with pytest.raises(TargetRefused) as caught:
        await check_target("https://nowhere.example/", [])
    assert caught.value.reason == "unresolvable"


async def test_slow_resolver_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang(host: str, port: int, **kwargs: Any) -> list[Any]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", hang)
    with pytest.raises(TargetRefused) as caught:
        await check_target("https://slow.example/", [], dns_timeout=0.05)
    assert caught.value.reason == "unresolvable"


@pytest.mark.parametrize("url", ["ftp://example.com/", "https://u:p@example.com/", "https:///x"])
async def test_check_target_rejects_invalid_urls(url: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        await check_target(url, [])
    assert caught.value.reason == "invalid_url"


def test_setting_is_validated_and_parsed(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, allowed_target_networks=["127.0.0.0/8", "10.1.2.3/16", "::1"])
    networks: list[IPNetwork] = parse_networks(settings.allowed_target_networks)
    assert [str(n) for n in networks] == ["127.0.0.0/8", "10.1.0.0/16", "::1/128"]
    with pytest.raises(ValueError, match="allowed_target_networks"):
        Settings(data_dir=tmp_path, allowed_target_networks=["not-a-network"])


def test_setting_reads_json_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("INTERLINK_ALLOWED_TARGET_NETWORKS", '["192.168.0.0/16"]')
    assert Settings(data_dir=tmp_path).allowed_target_networks == ["192.168.0.0/16"]


async def test_runtime_exposes_parsed_networks_that_admit_a_local_receiver(
    db_url: str, tmp_path: Any
) -> None:
    settings = make_settings(db_url, tmp_path / "data", allowed_target_networks=["127.0.0.0/8", "::1"])
    runtime = Runtime(settings)
    try:
        assert runtime.allowed_target_networks == [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ]
        assert await check_target("http://127.0.0.1:8080/hook", runtime.allowed_target_networks)
        with pytest.raises(TargetRefused):
            await check_target("http://10.0.0.1/hook", runtime.allowed_target_networks)
    finally:
        await runtime.stop()
