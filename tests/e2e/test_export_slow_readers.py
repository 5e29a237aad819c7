"""Slow readers of GET /v1/me/export hold no pooled connection (nor a transaction) while
they are not reading: with twice the pool's size of stalled exports open, another user's
library page answers within its normal time."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest

from shared.bootstrap import Container
from tests.e2e.api_support import raw, sql
from tests.support.e2e import Api

ASSETS = 1500  # ~8 MB of export: far more than the socket buffers hold
SCRIPT_WORDS = 800


def _seed_big_library(database_url: str, owner: str) -> None:
    from shared.db.connection import connect

    conn = connect(database_url)
    try:
        conn.run("INSERT INTO users (id) VALUES (:o) ON CONFLICT DO NOTHING", o=owner)
        conn.run(
            "INSERT INTO assets (id, owner_id, title, platform, hook, script, caption) "
            "SELECT gen_random_uuid(), :o, 'Big ' || i, 'tiktok', 'hook', "
            "repeat('water ', CAST(:w AS int)), 'caption' FROM generate_series(1, :n) AS i",
            o=owner,
            n=ASSETS,
            w=SCRIPT_WORDS,
        )
    finally:
        conn.close()


def _stalled_export(url: str, token: str) -> socket.socket:
    """Send the request, read the status line and headers, then stop reading."""
    parsed = urlparse(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parsed.hostname, parsed.port))
    request = (
        f"GET /v1/me/export HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1024)
        assert chunk, "connection closed before the headers"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


@pytest.fixture
def stalled() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def _page_ms(b: Api) -> float:
    started = time.perf_counter()
    r = b.get("/v1/library/assets", params={"limit": 20})
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status_code == 200, r.text
    return elapsed


def test_stalled_exports_hold_no_connection(
    api: Callable[..., Api],
    token: Callable[..., str],
    container: Container,
    database_url: str,
    stalled: list[socket.socket],
) -> None:
    a, b = api(), api()
    _seed_big_library(database_url, a.user_id)
    for i in range(3):
        assert (
            b.post(
                "/v1/library/assets", {"raw": raw(f"B {i}"), "platform": "tiktok", "title": f"B{i}"}
            ).status_code
            == 201
        )
    normal = [_page_ms(b) for _ in range(5)]

    pool_size = container.db.max_connections
    n = pool_size * 2
    url = str(container.settings.effective_worker_url)
    for _ in range(n):
        stalled.append(_stalled_export(url, token(a.user_id)))
    time.sleep(1.0)  # the server fills its socket buffers and blocks on every export

    during = [_page_ms(b) for _ in range(5)]
    idle = sql(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle in transaction'",
    )[0][0]
    print(
        f"\npool={pool_size} stalled exports={n}: library page p50 "
        f"{statistics.median(normal):.1f} ms before, {statistics.median(during):.1f} ms "
        f"during (max {max(during):.1f} ms); sessions idle in transaction: {idle}"
    )
    assert max(during) < max(1000.0, 10 * statistics.median(normal)), (normal, during)
    assert idle == 0
    # The exports were really stalled mid-stream: far more was still to come than the
    # socket buffers hold (the server's send buffer is at most 4 MiB here).
    rest = _drain(stalled[0])
    assert len(rest) > 5_000_000, len(rest)
    assert rest.rstrip(b"\r\n0").endswith(b"]}")


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
