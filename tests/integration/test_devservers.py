"""The embedded servers a machine without Postgres or Redis falls back to: they listen on
a loopback TCP port (a wire proxy, the bench's network mode and the round-trip counts
need one), and a port that accepts connections without serving is not taken for a server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from devtools.devservers import postgres_serves, redis_serves

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP and never answers (a port taken by something else)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_port_that_only_accepts_is_not_a_server(silent_port: int) -> None:
    assert not postgres_serves(f"postgresql://postgres@127.0.0.1:{silent_port}/postgres", 0.5)
    assert not redis_serves(f"redis://127.0.0.1:{silent_port}/0", 0.5)


def test_the_runs_servers_serve(pg_admin_url: str, redis_url: str) -> None:
    assert postgres_serves(pg_admin_url)
    assert redis_serves(redis_url)


_PROBE = """
import json
from tests.support import servers
pg, rd = servers.admin_postgres_url(), servers.redis_url()
print(json.dumps([pg, rd, servers.postgres_serves(pg), servers.redis_serves(rd)]))
servers.stop_embedded()
print(json.dumps([servers.postgres_serves(pg, 0.5), servers.redis_serves(rd, 0.5)]))
"""


@pytest.mark.slow
def test_hidden_machine_servers_give_embedded_ones_on_loopback_tcp(tmp_path: Path) -> None:
    env = {**os.environ, "TEST_FORCE_EMBEDDED": "1", "TEST_EMBED_DIR": str(tmp_path)}
    for name in ("TEST_POSTGRES_ADMIN_URL", "TEST_REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    started, stopped = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    pg, rd, pg_ok, rd_ok = started
    for url, scheme in ((pg, "postgresql"), (rd, "redis")):
        parsed = urlparse(url)
        assert (parsed.scheme, parsed.hostname) == (scheme, "127.0.0.1"), url
        assert parsed.port not in (None, 5432, 6379), url  # its own port, not the machine's
    assert (pg_ok, rd_ok) == (True, True)
    assert stopped == [False, False]  # stop_embedded stopped both
