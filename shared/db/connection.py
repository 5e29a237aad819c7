"""Opening pg8000 connections from a ``postgresql://`` URL.

Supports TCP (``postgresql://user:pass@host:5432/db``) and Unix sockets
(``postgresql://user@/db?host=/path/to/dir``, the form pgserver prints). ``sslmode=require``
(or ``verify-full``) turns on TLS with a default context: pg8000 silently falls back to
plain text when ``ssl_context`` is None.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.native

__all__ = ["PgParams", "connect", "parse_database_url"]


@dataclass(frozen=True, slots=True)
class PgParams:
    user: str
    password: str | None
    database: str
    host: str | None
    port: int
    unix_sock: str | None
    ssl: bool

    def with_database(self, database: str) -> PgParams:
        return PgParams(
            self.user, self.password, database, self.host, self.port, self.unix_sock, self.ssl
        )

    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        if self.unix_sock:
            return f"postgresql://{auth}@/{self.database}?host={Path(self.unix_sock).parent}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"


def parse_database_url(url: str) -> PgParams:
    """Parse a Postgres URL; raises ``ValueError`` naming what is wrong."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    query = parse_qs(parsed.query)
    socket_dir = query.get("host", [None])[0]
    port = parsed.port or 5432
    unix_sock = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None
    return PgParams(
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password) if parsed.password else None,
        database=unquote(parsed.path.lstrip("/") or "postgres"),
        host=None if unix_sock else (parsed.hostname or "127.0.0.1"),
        port=port,
        unix_sock=unix_sock,
        ssl=query.get("sslmode", ["disable"])[0] in ("require", "verify-ca", "verify-full"),
    )


def connect(url: str | PgParams, timeout_s: float = 10.0) -> pg8000.native.Connection:
    """A new autocommit-by-default pg8000 native connection."""
    p = parse_database_url(url) if isinstance(url, str) else url
    return pg8000.native.Connection(
        user=p.user,
        password=p.password,
        database=p.database,
        host=p.host or "localhost",
        port=p.port,
        unix_sock=p.unix_sock,
        ssl_context=ssl.create_default_context() if p.ssl else None,
        timeout=timeout_s,
        application_name="reel-content",
    )
