"""``interlink serve --processes N``: several API processes on one port, as a real process tree.

On SQLite and PostgreSQL: the supervisor runs N processes that each accept connections on the
port (seen from which process holds which accepted socket), every ``/metrics`` answer sums the
counters of all of them, a process that dies is started again, and SIGTERM stops them all and
removes the metrics folder.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from interlink.client import InterlinkClient
from tests.conftest import TEST_MASTER_KEYS, TEST_PEPPER, free_port
from tests.test_run_command import ADMIN_KEY, STARTING, _environment, serve, wait_ready

SERVING = re.compile(r"^Serving with (\d+) processes \(metrics summed in (\S+)\)$")


def _serving_children(parent: int) -> set[int]:
    """The supervisor's children that run the app (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    serving = set()
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            serving.add(child)
    return serving


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _accepting_process(port: int, client_port: int, children: set[int]) -> int | None:
    """Which of ``children`` holds the server end of the connection from ``client_port``."""
    wanted = f"0100007F:{client_port:04X}"
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == wanted:
            inode = fields[9]
            for child in children:
                if inode in _socket_inodes(child):
                    return child
    return None


def _get_on(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def _healthz_count(url: str) -> float:
    """The scrape's count of GET /healthz answered 200 (and no metric family twice in it)."""
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text
    families = list(text_string_to_metric_families(text))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert "interlink_webhook_queue_depth" in names and "interlink_outbound_circuits" in names
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "interlink_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/healthz", "status": "200"}
    )


def test_serve_runs_several_processes_on_one_port(db_url: str, tmp_path: Path) -> None:
    env = _environment(
        tmp_path / "data",
        INTERLINK_DATABASE_URL=db_url,
        INTERLINK_MASTER_KEYS=TEST_MASTER_KEYS,
        INTERLINK_KEY_PEPPER=TEST_PEPPER,
    )
    port = free_port()
    with serve(tmp_path, env, port, "--processes", "2") as served:
        started = served.wait_for(STARTING)
        assert started, served.seen
        url = started.group(1)
        key_line = served.wait_for(ADMIN_KEY, timeout=10)
        assert key_line, served.seen
        serving = served.wait_for(SERVING, timeout=10)
        assert serving and serving.group(1) == "2", served.seen
        metrics_dir = Path(serving.group(2))
        wait_ready(url, served)
        supervisor = served.process.pid
        deadline = time.monotonic() + 30
        while len(children := _serving_children(supervisor)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(children) == 2, children

        with InterlinkClient(url, key_line.group(1)) as client:
            made = client.keys.create("served", ["keys:verify"])
            assert client.keys.verify(made.key).valid

        # Connections until each process has accepted one (the kernel picks; a process still
        # starting accepts none yet): one kept open per process, the others closed at once.
        before = _healthz_count(url)
        held: dict[int, socket.socket] = {}
        sent = 0
        try:
            deadline = time.monotonic() + 60
            while len(held) < len(children) and time.monotonic() < deadline:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                _get_on(sock, "/healthz")
                sent += 1
                owner = _accepting_process(port, sock.getsockname()[1], children)
                assert owner is not None
                if owner in held:
                    sock.close()
                    time.sleep(0.01)
                else:
                    held[owner] = sock
            assert set(held) == children, (held, children)
            for sock in held.values():  # more requests on a connection of each process
                for _ in range(3):
                    _get_on(sock, "/healthz")
                    sent += 1
        finally:
            for sock in held.values():
                sock.close()
        # Whichever process answers a scrape, it counts the requests of both (one scrape per new
        # connection, its own /healthz-free request).
        for _ in range(6):
            assert _healthz_count(url) - before == sent

        # A process that dies is replaced; the port keeps answering.
        victim = next(iter(children))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _serving_children(supervisor)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and victim not in now, now
        wait_ready(url, served)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}

        served.process.send_signal(signal.SIGTERM)  # the supervisor: stops them all
        assert served.process.wait(timeout=30) == 0
    for child in now:
        assert (
            not Path(f"/proc/{child}").exists()
            or b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ), child
    assert not metrics_dir.exists()
