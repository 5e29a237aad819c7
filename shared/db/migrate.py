"""Apply ``schema.sql`` and ``migrations/NNNN_*.sql``, each exactly once.

``schema.sql`` is version ``0000_schema``; then every ``migrations/NNNN_name.sql`` in
number order, its version being the file stem. Each version runs in its own transaction
together with its ``schema_migrations`` row, so a failed file leaves nothing behind.
Everything happens under one ``pg_advisory_lock``: N instances starting at once apply
each version once and the others wait, then find nothing to do.

``python -m shared.db.migrate`` migrates the configured ``DATABASE_URL``; ``make migrate``
runs it through ``devtools.compose``, which points it at the embedded Postgres in
development when nothing is configured.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Final

import pg8000.native

from shared.db.connection import connect
from shared.db.session import translate
from shared.errors import ServiceUnavailable

__all__ = ["MIGRATIONS_DIR", "SCHEMA_PATH", "MigrationError", "main", "migrate", "pending_files"]

_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH: Final = _ROOT / "schema.sql"
MIGRATIONS_DIR: Final = _ROOT / "migrations"
SCHEMA_VERSION: Final = "0000_schema"
_MIGRATION_RE: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works as long as every migrator uses the same one and nothing else in
# the application takes an advisory lock with this key.
_LOCK_KEY: Final = 0x5EE1_C0DE

_DRIVER_ERRORS = (pg8000.exceptions.Error, OSError)


class MigrationError(RuntimeError):
    """A schema version failed to apply; the message names it."""


def pending_files(migrations_dir: Path = MIGRATIONS_DIR) -> list[tuple[str, Path]]:
    """(version, path) of every migration file, in number order; bad names are refused."""
    if not migrations_dir.is_dir():
        return []
    found: list[tuple[str, Path]] = []
    for path in sorted(migrations_dir.glob("*.sql")):
        if not _MIGRATION_RE.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        found.append((path.stem, path))
    return found


def migrate(
    url: str, *, schema_path: Path = SCHEMA_PATH, migrations_dir: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply what is missing; returns the versions this call applied (often none)."""
    versions = [(SCHEMA_VERSION, schema_path), *pending_files(migrations_dir)]
    try:
        conn = connect(url)
    except _DRIVER_ERRORS as exc:
        raise ServiceUnavailable("The database is unreachable; cannot migrate.") from exc
    try:
        conn.run("SELECT pg_advisory_lock(CAST(:k AS bigint))", k=_LOCK_KEY)
        try:
            return _apply_missing(conn, versions)
        finally:
            conn.run("SELECT pg_advisory_unlock(CAST(:k AS bigint))", k=_LOCK_KEY)
    except _DRIVER_ERRORS as exc:
        raise translate(exc) from exc
    finally:
        conn.close()


def _apply_missing(conn: pg8000.native.Connection, versions: list[tuple[str, Path]]) -> list[str]:
    # The table must exist before we can ask what is applied; schema.sql declares it too.
    conn.run(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY CHECK (char_length(version) BETWEEN 1 AND 200),"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in conn.run("SELECT version FROM schema_migrations")}
    applied: list[str] = []
    for version, path in versions:
        if version in done:
            continue
        _apply_one(conn, version, path.read_text(encoding="utf-8"))
        applied.append(version)
    return applied


def _apply_one(conn: pg8000.native.Connection, version: str, sql: str) -> None:
    conn.run("BEGIN")
    try:
        conn.run(sql)  # no parameters: simple protocol, several statements allowed
        conn.run("INSERT INTO schema_migrations (version) VALUES (:v)", v=version)
        conn.run("COMMIT")
    except pg8000.exceptions.DatabaseError as exc:
        conn.run("ROLLBACK")
        raise MigrationError(f"{version}: {exc.args[0] if exc.args else exc}") from exc


def _database_url() -> str:
    from shared.config import get_settings

    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.is_development:
        raise MigrationError(
            "DATABASE_URL: not set; `make migrate` (python -m devtools.compose "
            "shared.db.migrate) migrates the embedded Postgres"
        )
    raise MigrationError("DATABASE_URL: required when APP_ENV=production")


def main() -> int:
    """CLI: migrate the configured database and print what was applied."""
    applied = migrate(_database_url())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
